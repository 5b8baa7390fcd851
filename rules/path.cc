#include "rules/path.h"

#include <array>

namespace nfq::rules {
namespace {

constexpr std::array<std::string_view, 11> kFlagNames = {
    "dotdot",         "dot",           "encoded",      "encoded_slash",   "double_encoded",
    "repeated_slash", "absolute_form", "bad_encoding", "not_origin_form", "fragment",
    "truncated"};

constexpr bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 3986 unreserved: the only encodings a server must treat as equal to the plain byte.
constexpr bool IsUnreserved(char c) {
  return IsAlpha(c) || IsDigit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

constexpr int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr bool IsHexPair(std::string_view s, size_t i) {
  return i + 1 < s.size() && HexValue(s[i]) >= 0 && HexValue(s[i + 1]) >= 0;
}

bool ListHasName(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Length of "scheme://" when the target is in absolute form, else 0.
size_t AbsoluteFormPrefix(std::string_view t) {
  if (t.empty() || !IsAlpha(t[0])) return 0;
  size_t i = 1;
  while (i < t.size() &&
         (IsAlpha(t[i]) || IsDigit(t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.')) {
    ++i;
  }
  return t.substr(i).starts_with("://") ? i + 3 : 0;
}

// Decodes unreserved encodings, upper-cases the hex of the ones kept, into *out (replaced),
// which then starts with '/'.
void DecodeOnce(std::string_view raw, uint32_t* flags, std::string* out_string) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string& out = *out_string;
  out.clear();
  out.reserve(raw.size() + 1);
  if (raw.empty() || raw[0] != '/') out.push_back('/');
  for (size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (!IsHexPair(raw, i + 1)) {
      *flags |= path_flag::kBadEncoding;
      out.push_back('%');
      continue;
    }
    const int value = HexValue(raw[i + 1]) * 16 + HexValue(raw[i + 2]);
    const char decoded = static_cast<char>(value);
    i += 2;
    if (IsUnreserved(decoded)) {
      *flags |= path_flag::kEncoded;
      out.push_back(decoded);
      continue;
    }
    if (decoded == '/') *flags |= path_flag::kEncodedSlash;
    if (decoded == '%' && IsHexPair(raw, i + 1)) *flags |= path_flag::kDoubleEncoded;
    out.push_back('%');
    out.push_back(kHex[value >> 4]);
    out.push_back(kHex[value & 0xf]);
  }
}

// RFC 3986 5.2.4 over a path starting with '/', except that empty segments are dropped first
// (so "/a//../b" is "/b"): a ".." then removes a named segment, as slash-merging servers do.
// Into *out (replaced).
void RemoveDotSegments(std::string_view in, uint32_t* flags, std::string* out_string) {
  std::string& out = *out_string;
  out.clear();
  out.reserve(in.size());
  bool trailing_slash = false;
  size_t begin = 1;
  while (true) {
    size_t end = in.find('/', begin);
    const bool last = end == std::string_view::npos;
    if (last) end = in.size();
    const std::string_view segment = in.substr(begin, end - begin);
    if (segment.empty()) {
      if (last) {
        trailing_slash = true;
      } else {
        *flags |= path_flag::kRepeatedSlash;
      }
    } else if (segment == ".") {
      *flags |= path_flag::kDot;
      trailing_slash = last;
    } else if (segment == "..") {
      *flags |= path_flag::kDotDot;
      const size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      trailing_slash = last;
    } else {
      out.push_back('/');
      out.append(segment);
    }
    if (last) break;
    begin = end + 1;
  }
  if (out.empty() || trailing_slash) out.push_back('/');
}

}  // namespace

std::string PathFlagNames(uint32_t flags) {
  std::string names;
  AppendPathFlagNames(flags, &names);
  return names;
}

void AppendPathFlagNames(uint32_t flags, std::string* names) {
  for (size_t bit = 0; bit < kFlagNames.size(); ++bit) {
    if ((flags & (1u << bit)) == 0 || ListHasName(*names, kFlagNames[bit])) continue;
    if (!names->empty()) names->push_back(',');
    names->append(kFlagNames[bit]);
  }
}

ResolvedPath ResolveTarget(std::string_view target) {
  ResolvedPath result;
  std::string scratch;
  ResolveTargetInto(target, &result, &scratch);
  return result;
}

void ResolveTargetInto(std::string_view target, ResolvedPath* out, std::string* scratch) {
  ResolvedPath& result = *out;
  result.flags = 0;
  result.query.clear();
  if (target.size() > kMaxTargetBytes) {
    target = target.substr(0, kMaxTargetBytes);
    result.flags |= path_flag::kTruncated;
  }
  // '#' is never valid in a request target; like a URL parser, everything after it goes.
  if (const size_t hash = target.find('#'); hash != std::string_view::npos) {
    target = target.substr(0, hash);
    result.flags |= path_flag::kFragment;
  }
  if (!target.starts_with('/')) {
    // The cap includes the '/' added below, so a resolved path always fits in it again.
    if (target.size() >= kMaxTargetBytes) {
      target = target.substr(0, kMaxTargetBytes - 1);
      result.flags |= path_flag::kTruncated;
    }
    if (const size_t scheme = AbsoluteFormPrefix(target); scheme != 0) {
      result.flags |= path_flag::kAbsoluteForm;
      const size_t path_start = target.find_first_of("/?", scheme);
      target =
          path_start == std::string_view::npos ? std::string_view() : target.substr(path_start);
    } else {
      // "*", authority form or a bare "latest/...": read as if it had a leading '/'.
      result.flags |= path_flag::kNotOriginForm;
    }
  }
  std::string_view raw_path = target;
  if (const size_t question = target.find('?'); question != std::string_view::npos) {
    raw_path = target.substr(0, question);
    result.query.assign(target.substr(question + 1));
  }
  DecodeOnce(raw_path, &result.flags, scratch);
  RemoveDotSegments(*scratch, &result.flags, &result.path);
}

}  // namespace nfq::rules
