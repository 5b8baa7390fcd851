#include "sensor/userinfo.h"

#include <string_view>

namespace nfq::sensor {
namespace {

constexpr std::string_view kRedacted = "<redacted>";

char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// text[at...] starts with `lower`, compared without case.
bool HasAt(std::string_view text, size_t at, std::string_view lower) {
  if (at > text.size() || text.size() - at < lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (LowerAscii(text[at + i]) != lower[i]) return false;
  }
  return true;
}

struct Intro {
  size_t length = 0;  // of the "//" or "%2F%2F"; 0: no authority begins here
  bool encoded = false;
};

Intro AuthorityIntroAt(std::string_view text, size_t at) {
  Intro intro;
  if (HasAt(text, at, "//")) {
    intro = {2, false};
  } else if (HasAt(text, at, "%2f%2f")) {
    intro = {6, true};
  } else {
    return {};
  }
  if (at == 0 || text[at - 1] == '=') return intro;
  if (!intro.encoded && text[at - 1] == ':') return intro;
  if (intro.encoded && at >= 3 && HasAt(text, at - 3, "%3a")) return intro;
  return {};
}

bool EndsAuthority(std::string_view text, size_t at, bool encoded) {
  const char c = text[at];
  if (c == '/' || c == '?' || c == '#') return true;
  return encoded && (c == '&' || HasAt(text, at, "%2f") || HasAt(text, at, "%3f") || HasAt(text, at, "%23"));
}

// Redacts the userinfo of the authority that begins at `start`; returns where it now ends.
size_t RedactAuthority(std::string& text, size_t start, bool encoded, bool cut, bool* redacted) {
  size_t end = start;
  size_t at_sign = std::string::npos;
  for (; end < text.size() && !EndsAuthority(text, end, encoded); ++end) {
    if (text[end] == '@' || (encoded && HasAt(text, end, "%40"))) at_sign = end;
  }
  if (cut && end == text.size() && end > start) {
    // The cut may have fallen anywhere in the userinfo, also after a raw '@' in a password.
    text.replace(start, end - start, kRedacted);
    *redacted = true;
    return start + kRedacted.size();
  }
  if (at_sign != std::string::npos) {
    text.replace(start, at_sign - start, kRedacted);
    *redacted = true;
    return start + kRedacted.size() + (end - at_sign);
  }
  return end;
}

size_t SegmentStart(const std::string& text, size_t before) {
  // '=', '&' and ';' may stand in a password: only '/', '?' and '#' end a segment here.
  const size_t boundary = before == 0 ? std::string::npos : text.find_last_of("/?#", before - 1);
  return boundary == std::string::npos ? 0 : boundary + 1;
}

// "user:pw@" anywhere else: a '@' whose segment holds a ':'; with `cut`, a last segment that
// holds a ':' goes whole (the cut may have fallen before its '@', or after one in a password).
void RedactColonSegments(std::string& text, bool cut, bool* redacted) {
  if (cut) {
    const size_t last = SegmentStart(text, text.size());
    if (std::string_view(text).substr(last).find(':') != std::string_view::npos) {
      text.replace(last, text.size() - last, kRedacted);
      *redacted = true;
    }
  }
  for (size_t at_sign = text.find('@'); at_sign != std::string::npos; at_sign = text.find('@', at_sign + 1)) {
    const size_t segment = SegmentStart(text, at_sign);
    const std::string_view before(text.data() + segment, at_sign - segment);
    if (before.find(':') == std::string_view::npos) continue;
    text.replace(segment, at_sign - segment, kRedacted);
    at_sign = segment + kRedacted.size();
    *redacted = true;
  }
}

}  // namespace

bool RedactTargetInPlace(std::string* target, bool target_cut) {
  std::string& text = *target;
  bool redacted = false;
  size_t i = 0;
  // Authority form. Before "scheme://" it finds "scheme:" and no '@', and stops at the '/'.
  if (!text.empty() && text[0] != '/' && AuthorityIntroAt(text, 0).length == 0) {
    i = RedactAuthority(text, 0, /*encoded=*/false, target_cut, &redacted);
  }
  while (i < text.size()) {
    const Intro intro = AuthorityIntroAt(text, i);
    if (intro.length == 0) {
      ++i;
      continue;
    }
    i = RedactAuthority(text, i + intro.length, intro.encoded, target_cut, &redacted);
  }
  RedactColonSegments(text, target_cut, &redacted);
  return redacted;
}

void RedactHostInPlace(std::string* host, bool host_cut) {
  if (host_cut && !host->empty()) {
    host->assign(kRedacted);  // the cut may have fallen before an '@', or after one in a password
  } else if (const size_t at_sign = host->rfind('@'); at_sign != std::string::npos) {
    host->replace(0, at_sign, kRedacted);
  }
}

}  // namespace nfq::sensor
