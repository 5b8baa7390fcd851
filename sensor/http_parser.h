// Incremental HTTP/1.x request-head parser for one direction of one TCP flow.
// Byte-at-a-time semantics: any split of the same bytes into Feed calls reports the same
// requests. Memory is bounded by the caps below whatever the input (a few KiB per parser).
// Never copies the value of X-aws-ec2-metadata-token. Not thread-safe: one parser per flow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sensor/function_ref.h"
#include "sensor/http_request.h"

namespace nfq::sensor {

namespace http_limits {
inline constexpr size_t kMaxRequestLine = 8 * 1024;   // bytes before the LF, CR included
inline constexpr size_t kMaxHeaderBlock = 16 * 1024;  // after the request line, CRLFs included
inline constexpr size_t kMaxHeaderValue = 512;        // per stored value (and joined forwarded)
inline constexpr size_t kMaxMethod = 64;              // longer "methods" are not HTTP
}  // namespace http_limits

class HttpRequestParser {
 public:
  using OnRequest = FunctionRef<void(const HttpRequest&)>;

  HttpRequestParser() = default;
  HttpRequestParser(const HttpRequestParser&) = delete;
  HttpRequestParser& operator=(const HttpRequestParser&) = delete;
  HttpRequestParser(HttpRequestParser&&) noexcept = default;
  HttpRequestParser& operator=(HttpRequestParser&&) noexcept = default;

  // Consumes bytes (any split); calls on_request once per complete request head, in order.
  // Bodies announced by Content-Length are skipped, across calls. Once not following(), bytes
  // are ignored. The reference passed to on_request is valid only during the call.
  // REQUIRES: on_request does not call back into this parser.
  void Feed(std::string_view bytes, OnRequest on_request);

  // No more bytes will come for now (end of one segment's payload in stateless use, FIN,
  // eviction): a head in progress is reported with request_flag::kTruncated, then Reset().
  void Finish(OnRequest on_request);

  // False after non-HTTP bytes, a chunked (or otherwise unframed) body, an oversized head,
  // an HTTP/0.9 request or an unusable Content-Length. The number of requests on a
  // flow is not capped: a cap would be a blind spot, and each request costs bounded work.
  bool following() const noexcept { return state_ != State::kIgnore; }

  // Inside a request (its head or its body) rather than between requests: where a flow
  // forgotten now would be misread if its bytes came back.
  bool inside_request() const noexcept {
    return state_ != State::kLineStart && state_ != State::kIgnore;
  }

  // Back to the start of a flow (following again, request count zero).
  void Reset() noexcept;

  // Requests reported since the last Reset().
  uint32_t requests_reported() const noexcept { return requests_; }

  // Heap bytes held by the parser's buffers (for tests of the memory bound).
  size_t buffered_capacity() const noexcept;

 private:
  enum class State : uint8_t {
    kLineStart,         // before a request line: blank lines are skipped
    kMethod,            // in the method token
    kLineRest,          // after the method: target and version, up to LF
    kHeaderLineStart,   // first byte of a header line (or of the blank line ending the head)
    kHeaderName,        // up to the colon
    kHeaderValueSpace,  // whitespace after the colon
    kHeaderValue,       // up to LF
    kHeaderSkipLine,    // a header line without a name and colon: ignored
    kHeadEndCr,         // CR at the start of a header line: LF ends the head
    kBody,              // skipping body_remaining_ bytes
    kIgnore,            // not following the flow
  };
  enum class Header : uint8_t {
    kNone,  // no header pending (or one we do not keep)
    kHost,
    kUserAgent,
    kImdsToken,  // value discarded
    kTokenTtl,   // value discarded
    kForwarded,  // X-Forwarded-For, Via, Forwarded
    kContentLength,
    kTransferEncoding,
  };

  // Consumes a run of bytes that cannot change the state (inside a request line or a header
  // value); returns how many (0: the next byte needs Step).
  size_t TakeRun(std::string_view rest);
  void Step(uint8_t byte, OnRequest on_request);
  void StepHeader(uint8_t byte, OnRequest on_request);
  void CompleteRequestLine(OnRequest on_request);
  void StartHeaderValue(Header header);
  void CommitHeader();
  void NoteHostCut() noexcept;  // at a cut of the head: a Host value being read was cut
  void EndOfHead(OnRequest on_request);
  void Emit(OnRequest on_request);  // reports current_, then clears it
  void ReportNonHttp(OnRequest on_request);
  void StopFollowing() noexcept;
  bool StoresValue() const noexcept;
  void ClearValue() noexcept;
  // Appends to the kept header value up to kMaxHeaderValue; notes when more than trailing
  // whitespace had to be left out (value_cut_).
  void AppendValue(std::string_view bytes);

  State state_ = State::kLineStart;
  Header header_ = Header::kNone;
  bool name_too_long_ = false;
  bool content_length_seen_ = false;
  bool content_length_bad_ = false;
  bool transfer_encoding_seen_ = false;
  bool value_cut_ = false;  // the kept header value lost bytes at kMaxHeaderValue
  uint8_t previous_byte_ = 0;
  uint32_t requests_ = 0;
  size_t header_bytes_ = 0;
  uint64_t body_remaining_ = 0;
  std::string line_;   // the request line so far (<= kMaxRequestLine)
  std::string name_;   // lower-cased header name so far (short)
  std::string value_;  // value of a kept header so far (<= kMaxHeaderValue)
  HttpRequest current_;
};

}  // namespace nfq::sensor
