#include "sensor/http_parser.h"

#include <cstring>

#include <algorithm>
#include <array>
#include <limits>

namespace nfq::sensor {
namespace {

using namespace http_limits;

// Longer than any header name we keep ("x-aws-ec2-metadata-token-ttl-seconds" is 36).
constexpr size_t kMaxKeptName = 40;

// RFC 9110 5.6.2 token characters, as a table: this runs once per request-line byte.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[static_cast<size_t>(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[static_cast<size_t>(c)] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<uint8_t>(c)] = true;
  return table;
}();

constexpr bool IsTchar(uint8_t c) { return kTchar[c]; }

constexpr bool IsSpace(uint8_t c) { return c == ' ' || c == '\t'; }
constexpr bool IsSpaceChar(char c) { return c == ' ' || c == '\t'; }

constexpr uint8_t Lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + ('a' - 'A')) : c;
}

std::string_view TrimRight(std::string_view text) {
  while (!text.empty() && (IsSpaceChar(text.back()) || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

std::string_view TrimLeft(std::string_view text) {
  while (!text.empty() && IsSpaceChar(text.front())) text.remove_prefix(1);
  return text;
}

bool ContainsChunked(std::string_view value) {
  constexpr std::string_view kChunked = "chunked";
  if (value.size() < kChunked.size()) return false;
  for (size_t i = 0; i + kChunked.size() <= value.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < kChunked.size() && match; ++j) {
      match = Lower(static_cast<uint8_t>(value[i + j])) == static_cast<uint8_t>(kChunked[j]);
    }
    if (match) return true;
  }
  return false;
}

// Digits only, no sign, no list: what a server that frames by it would accept.
bool ParseContentLength(std::string_view text, uint64_t& value) {
  text = TrimRight(text);
  if (text.empty()) return false;
  uint64_t result = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (result > (std::numeric_limits<uint64_t>::max() - digit) / 10) return false;
    result = result * 10 + digit;
  }
  value = result;
  return true;
}

struct SplitLine {
  std::string_view method, target, version;
  bool has_version = false;  // at least three words
};

// "METHOD SP+ target [SP+ version]": the version is the last word, the target everything
// between (so a target with a raw space is kept whole rather than misread as a version).
SplitLine SplitRequestLine(std::string_view line) {
  SplitLine split;
  line = TrimRight(line);
  size_t method_end = 0;
  while (method_end < line.size() && !IsSpaceChar(line[method_end])) ++method_end;
  split.method = line.substr(0, method_end);
  const std::string_view rest = TrimLeft(line.substr(method_end));
  size_t last_space = rest.size();
  while (last_space > 0 && !IsSpaceChar(rest[last_space - 1])) --last_space;
  if (last_space == 0) {
    split.target = rest;
  } else {
    split.target = TrimRight(rest.substr(0, last_space));
    split.version = rest.substr(last_space);
    split.has_version = true;
  }
  return split;
}

void AssignCapped(std::string& field, std::string_view text, size_t cap) {
  field.assign(text.substr(0, std::min(text.size(), cap)));
}

}  // namespace

void HttpRequestParser::ClearValue() noexcept {
  value_.clear();
  value_cut_ = false;
}

void HttpRequestParser::AppendValue(std::string_view bytes) {
  const size_t room = kMaxHeaderValue - std::min(value_.size(), kMaxHeaderValue);
  if (bytes.size() > room && bytes.substr(room).find_first_not_of(" \t\r") != std::string_view::npos) {
    value_cut_ = true;
  }
  value_.append(bytes.substr(0, std::min(bytes.size(), room)));
}

void AppendRequestFlagNames(uint32_t flags, std::string* names) {
  static constexpr std::array<std::pair<uint32_t, const char*>, 13> kNames = {{
      {request_flag::kTruncated, "truncated"},
      {request_flag::kOversized, "oversized"},
      {request_flag::kChunked, "chunked"},
      {request_flag::kNonHttp, "non_http"},
      {request_flag::kBareLf, "bare_lf"},
      {request_flag::kHttp09, "http09"},
      {request_flag::kInconsistent, "inconsistent"},
      {request_flag::kProxyHeaders, "proxy_headers"},
      {request_flag::kUnframed, "unframed"},
      {request_flag::kLateData, "late_data"},
      {request_flag::kIpFragment, "ip_fragment"},
      {request_flag::kUrgent, "urgent"},
      {request_flag::kMidstream, "midstream"},
  }};
  for (const auto& [bit, name] : kNames) {
    if ((flags & bit) == 0) continue;
    if (!names->empty()) names->push_back(',');
    names->append(name);
  }
}

std::string RequestFlagNames(uint32_t flags) {
  std::string names;
  AppendRequestFlagNames(flags, &names);
  return names;
}

void HttpRequestParser::Reset() noexcept {
  state_ = State::kLineStart;
  header_ = Header::kNone;
  name_too_long_ = false;
  content_length_seen_ = false;
  content_length_bad_ = false;
  transfer_encoding_seen_ = false;
  previous_byte_ = 0;
  requests_ = 0;
  header_bytes_ = 0;
  body_remaining_ = 0;
  line_.clear();
  name_.clear();
  ClearValue();
  current_ = HttpRequest{};
}

size_t HttpRequestParser::buffered_capacity() const noexcept {
  return line_.capacity() + name_.capacity() + value_.capacity() + current_.method.capacity() +
         current_.target.capacity() + current_.version.capacity() + current_.host.capacity() +
         current_.user_agent.capacity() + current_.forwarded.capacity();
}

void HttpRequestParser::Feed(std::string_view bytes, OnRequest on_request) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (state_ == State::kIgnore) return;
    if (state_ == State::kBody) {
      const uint64_t take = std::min<uint64_t>(body_remaining_, bytes.size() - i);
      i += static_cast<size_t>(take);
      body_remaining_ -= take;
      if (body_remaining_ == 0) state_ = State::kLineStart;
      continue;
    }
    // Runs of ordinary bytes inside a line are taken in bulk; Step sees only the bytes that
    // can change state. Exactly what byte-by-byte Step would do, within the same caps.
    if (const size_t run = TakeRun(bytes.substr(i)); run > 0) {
      i += run;
      continue;
    }
    Step(static_cast<uint8_t>(bytes[i]), on_request);
    ++i;
  }
}

size_t HttpRequestParser::TakeRun(std::string_view rest) {
  if (state_ == State::kLineRest) {
    if (line_.empty() || line_.back() == '\r' || line_.size() >= kMaxRequestLine) return 0;
    const size_t max = std::min(rest.size(), kMaxRequestLine - line_.size());
    size_t n = 0;
    while (n < max) {
      const auto b = static_cast<uint8_t>(rest[n]);
      if ((b < 0x20 && b != '\t') || b == 0x7f) break;
      ++n;
    }
    if (n == 0) return 0;
    line_.append(rest.substr(0, n));
    previous_byte_ = static_cast<uint8_t>(rest[n - 1]);
    return n;
  }
  if (state_ == State::kHeaderValue || state_ == State::kHeaderSkipLine) {
    if (header_bytes_ >= kMaxHeaderBlock) return 0;
    const size_t max = std::min(rest.size(), kMaxHeaderBlock - header_bytes_);
    const void* lf = std::memchr(rest.data(), '\n', max);
    const size_t n = lf == nullptr ? max : static_cast<size_t>(static_cast<const char*>(lf) - rest.data());
    if (n == 0) return 0;
    header_bytes_ += n;
    if (state_ == State::kHeaderValue && StoresValue()) AppendValue(rest.substr(0, n));
    previous_byte_ = static_cast<uint8_t>(rest[n - 1]);
    return n;
  }
  return 0;
}

void HttpRequestParser::Finish(OnRequest on_request) {
  switch (state_) {
    case State::kMethod:
    case State::kLineRest: {
      const SplitLine split = SplitRequestLine(line_);
      current_.method.assign(split.method);
      current_.target.assign(split.target);
      current_.version.assign(split.version);
      current_.flags |= request_flag::kTruncated;
      current_.target_cut = !IsHttpVersion(split.version);  // else the target was whole
      Emit(on_request);
      break;
    }
    case State::kHeaderLineStart:
    case State::kHeaderName:
    case State::kHeaderValueSpace:
    case State::kHeaderValue:
    case State::kHeaderSkipLine:
    case State::kHeadEndCr:
      NoteHostCut();
      CommitHeader();
      current_.flags |= request_flag::kTruncated;
      Emit(on_request);
      break;
    case State::kLineStart:
    case State::kBody:
    case State::kIgnore:
      break;
  }
  Reset();
}

void HttpRequestParser::Emit(OnRequest on_request) {
  on_request(current_);
  ++requests_;
  current_.method.clear();
  current_.target.clear();
  current_.version.clear();
  current_.host.clear();
  current_.user_agent.clear();
  current_.forwarded.clear();
  current_.has_imds_token = false;
  current_.has_token_ttl = false;
  current_.content_length = 0;
  current_.flags = 0;
  current_.target_cut = false;
  current_.host_cut = false;
  header_ = Header::kNone;
  content_length_seen_ = false;
  content_length_bad_ = false;
  transfer_encoding_seen_ = false;
  header_bytes_ = 0;
  line_.clear();
  ClearValue();
  name_.clear();
}

void HttpRequestParser::StopFollowing() noexcept {
  state_ = State::kIgnore;
  line_.clear();
  name_.clear();
  ClearValue();
}

void HttpRequestParser::ReportNonHttp(OnRequest on_request) {
  current_ = HttpRequest{};
  current_.flags = request_flag::kNonHttp;
  Emit(on_request);
  StopFollowing();
}

void HttpRequestParser::Step(uint8_t byte, OnRequest on_request) {
  switch (state_) {
    case State::kLineStart:
      // RFC 9112 2.2: blank lines before a request line are ignored (e.g. after a body).
      if (byte == '\r' || byte == '\n') break;
      if (!IsTchar(byte)) {
        ReportNonHttp(on_request);
        return;
      }
      line_.clear();
      line_.push_back(static_cast<char>(byte));
      state_ = State::kMethod;
      break;

    case State::kMethod:
      if (IsTchar(byte)) {
        if (line_.size() >= kMaxMethod) {
          ReportNonHttp(on_request);
          return;
        }
        line_.push_back(static_cast<char>(byte));
      } else if (IsSpace(byte)) {
        line_.push_back(static_cast<char>(byte));
        state_ = State::kLineRest;
      } else {
        ReportNonHttp(on_request);  // a method must be a token followed by a space
        return;
      }
      break;

    case State::kLineRest:
      if (byte == '\n') {
        if (line_.back() == '\r') {
          line_.pop_back();
        } else {
          current_.flags |= request_flag::kBareLf;
        }
        CompleteRequestLine(on_request);
        return;
      }
      if (line_.back() == '\r' || (byte < 0x20 && byte != '\t' && byte != '\r') || byte == 0x7f) {
        ReportNonHttp(on_request);  // control bytes (or a CR inside the line)
        return;
      }
      if (line_.size() >= kMaxRequestLine) {
        const SplitLine split = SplitRequestLine(line_);
        current_.method.assign(split.method);
        current_.target.assign(split.target);
        current_.version.assign(split.version);
        current_.flags |= request_flag::kOversized;
        current_.target_cut = true;
        Emit(on_request);
        StopFollowing();
        return;
      }
      line_.push_back(static_cast<char>(byte));
      break;

    case State::kBody:
    case State::kIgnore:
      break;  // handled in Feed

    default:
      StepHeader(byte, on_request);
      return;
  }
  previous_byte_ = byte;
}

void HttpRequestParser::CompleteRequestLine(OnRequest on_request) {
  const SplitLine split = SplitRequestLine(line_);
  if (split.target.empty()) {
    ReportNonHttp(on_request);  // "METHOD" alone
    return;
  }
  current_.method.assign(split.method);
  current_.target.assign(split.target);
  current_.version.assign(split.version);
  line_.clear();
  if (!split.has_version) {
    // HTTP/0.9: no headers, and the server closes after its answer.
    current_.flags |= request_flag::kHttp09;
    Emit(on_request);
    StopFollowing();
    return;
  }
  state_ = State::kHeaderLineStart;
  header_ = Header::kNone;
  header_bytes_ = 0;
  previous_byte_ = '\n';
}

bool HttpRequestParser::StoresValue() const noexcept {
  switch (header_) {
    case Header::kHost:
    case Header::kUserAgent:
    case Header::kForwarded:
    case Header::kContentLength:
    case Header::kTransferEncoding:
      return true;
    case Header::kNone:
    case Header::kImdsToken:  // presence only: the value is never copied
    case Header::kTokenTtl:
      return false;
  }
  return false;
}

void HttpRequestParser::StartHeaderValue(Header header) {
  header_ = header;
  ClearValue();
  switch (header) {
    case Header::kImdsToken:
      current_.has_imds_token = true;
      break;
    case Header::kTokenTtl:
      current_.has_token_ttl = true;
      break;
    case Header::kForwarded:
      current_.flags |= request_flag::kProxyHeaders;
      break;
    default:
      break;
  }
  state_ = State::kHeaderValueSpace;
}

void HttpRequestParser::NoteHostCut() noexcept {
  // Only while the value itself is being read: a complete "Host: x" line waits for its commit
  // in kHeaderLineStart (a folded line may still continue it) and was not cut.
  if (header_ == Header::kHost && current_.host.empty() &&
      (state_ == State::kHeaderValueSpace || state_ == State::kHeaderValue)) {
    current_.host_cut = true;
  }
}

void HttpRequestParser::CommitHeader() {
  const std::string_view value = TrimRight(value_);
  switch (header_) {
    case Header::kHost:
      if (current_.host.empty()) {
        AssignCapped(current_.host, value, kMaxHeaderValue);
        current_.host_cut = current_.host_cut || value_cut_;
      }
      break;
    case Header::kUserAgent:
      if (current_.user_agent.empty()) AssignCapped(current_.user_agent, value, kMaxHeaderValue);
      break;
    case Header::kForwarded: {
      std::string& joined = current_.forwarded;
      if (!joined.empty() && joined.size() + 2 < kMaxHeaderValue) joined += ", ";
      const size_t room = kMaxHeaderValue - std::min(joined.size(), kMaxHeaderValue);
      joined.append(value.substr(0, std::min(value.size(), room)));
      break;
    }
    case Header::kContentLength: {
      // A value longer than what is kept (say 600 leading zeros, then 47) is read by the
      // server in full: a cut copy would frame the body differently, so it is unusable.
      uint64_t length = 0;
      if (value_cut_ || !ParseContentLength(value, length) ||
          (content_length_seen_ && length != current_.content_length)) {
        content_length_bad_ = true;
      } else {
        current_.content_length = length;
        content_length_seen_ = true;
      }
      break;
    }
    case Header::kTransferEncoding:
      transfer_encoding_seen_ = true;
      if (ContainsChunked(value)) current_.flags |= request_flag::kChunked;
      break;
    case Header::kNone:
    case Header::kImdsToken:
    case Header::kTokenTtl:
      break;
  }
  header_ = Header::kNone;
  ClearValue();
}

void HttpRequestParser::StepHeader(uint8_t byte, OnRequest on_request) {
  if (++header_bytes_ > kMaxHeaderBlock) {
    NoteHostCut();
    CommitHeader();
    current_.flags |= request_flag::kOversized;
    Emit(on_request);
    StopFollowing();
    return;
  }
  const bool bare_lf = byte == '\n' && previous_byte_ != '\r';
  previous_byte_ = byte;
  switch (state_) {
    case State::kHeaderLineStart:
      if (IsSpace(byte) && header_ != Header::kNone) {
        // obs-fold: the line continues the previous header's value.
        if (StoresValue() && !value_.empty()) AppendValue(" ");
        state_ = State::kHeaderValueSpace;
        return;
      }
      CommitHeader();
      if (byte == '\r') {
        state_ = State::kHeadEndCr;
      } else if (byte == '\n') {
        current_.flags |= request_flag::kBareLf;
        EndOfHead(on_request);
      } else if (IsTchar(byte)) {
        name_.assign(1, static_cast<char>(Lower(byte)));
        name_too_long_ = false;
        state_ = State::kHeaderName;
      } else {
        state_ = State::kHeaderSkipLine;
      }
      return;

    case State::kHeadEndCr:
      if (byte == '\n') {
        EndOfHead(on_request);
      } else {
        state_ = State::kHeaderSkipLine;  // a lone CR: ignore the line
      }
      return;

    case State::kHeaderName:
      if (IsTchar(byte)) {
        if (name_.size() < kMaxKeptName) {
          name_.push_back(static_cast<char>(Lower(byte)));
        } else {
          name_too_long_ = true;
        }
        return;
      }
      if (byte == ':') {
        Header header = Header::kNone;
        if (!name_too_long_) {
          const std::string_view name = name_;
          if (name == "host")
            header = Header::kHost;
          else if (name == "user-agent")
            header = Header::kUserAgent;
          else if (name == "x-aws-ec2-metadata-token")
            header = Header::kImdsToken;
          else if (name == "x-aws-ec2-metadata-token-ttl-seconds")
            header = Header::kTokenTtl;
          else if (name == "x-forwarded-for" || name == "via" || name == "forwarded")
            header = Header::kForwarded;
          else if (name == "content-length")
            header = Header::kContentLength;
          else if (name == "transfer-encoding")
            header = Header::kTransferEncoding;
        }
        name_.clear();
        StartHeaderValue(header);
        return;
      }
      name_.clear();
      if (byte == '\n') {
        if (bare_lf) current_.flags |= request_flag::kBareLf;
        state_ = State::kHeaderLineStart;  // a line without a colon: ignored
      } else {
        state_ = State::kHeaderSkipLine;  // e.g. "Name :" or a control byte: ignored
      }
      return;

    case State::kHeaderSkipLine:
      if (byte == '\n') {
        if (bare_lf) current_.flags |= request_flag::kBareLf;
        state_ = State::kHeaderLineStart;
      }
      return;

    case State::kHeaderValueSpace:
      if (IsSpace(byte)) return;
      state_ = State::kHeaderValue;
      [[fallthrough]];
    case State::kHeaderValue:
      if (byte == '\n') {
        if (bare_lf) current_.flags |= request_flag::kBareLf;
        value_.resize(TrimRight(value_).size());
        state_ = State::kHeaderLineStart;  // header_ stays pending for a folded line
        return;
      }
      if (StoresValue()) {
        if (value_.size() < kMaxHeaderValue) {
          value_.push_back(static_cast<char>(byte));
        } else if (!IsSpace(byte) && byte != '\r') {
          value_cut_ = true;
        }
      }
      return;

    default:
      return;
  }
}

void HttpRequestParser::EndOfHead(OnRequest on_request) {
  CommitHeader();
  const bool unframed = transfer_encoding_seen_ || content_length_bad_;
  const uint64_t body = current_.content_length;
  if (unframed) current_.flags |= request_flag::kUnframed;
  Emit(on_request);
  if (unframed) {
    // Chunked (or unknown) framing: the next request's start cannot be found cheaply.
    StopFollowing();
  } else if (body > 0) {
    body_remaining_ = body;
    state_ = State::kBody;
  } else {
    state_ = State::kLineStart;
  }
}

}  // namespace nfq::sensor
