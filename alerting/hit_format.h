// Renderings of a Hit: the console's GET query, the JSON event-log line and the text one.
// Pure functions; thread-safe. Every rendering is one line whatever bytes the hit carries.
#pragma once

#include <string>
#include <string_view>

#include "alerting/hit.h"

namespace nfq::alerting {

// "2026-12-03T19:00:00.123Z" (UTC, milliseconds).
std::string FormatIsoTime(Hit::Clock::time_point t);

// RFC 3986 percent-encoding: unreserved characters (ALPHA DIGIT - . _ ~) stay, every other
// byte becomes %XX (upper-case hex).
std::string UrlEncode(std::string_view s);

// The contract's query (without the '?'): url, norm, method, imds, src, uid, pid, owner,
// cmdline, count, first, last, flags. Unknown uid/pid (-1) are sent empty.
std::string HitQueryString(const Hit& hit);

// One JSON object, no trailing newline: the hit's fields plus time, queue, hook (and host,
// user_agent when known). Invalid UTF-8 is replaced by U+FFFD; control characters escaped.
std::string HitJsonLine(const Hit& hit);
// The same line appended to *out (no newline), with no string of its own in between.
void AppendHitJsonLine(const Hit& hit, std::string* out);

// "time method url norm=.. src=.. imds=.. uid=.. pid=.. owner=.. count=.. flags=.. hook=..
// cmdline=".."", no trailing newline. Control, non-ASCII, space, '"' and '\' bytes in values
// are written as \xNN so a hostile path cannot forge a second line or field.
std::string HitTextLine(const Hit& hit);

// Union of two comma-separated flag lists, order of first appearance, no duplicates.
std::string MergeFlags(std::string_view a, std::string_view b);

// The \xNN escaping used by HitTextLine (controls, non-ASCII, '"', '\\', and spaces unless
// the value is printed inside quotes); also handy for diagnostics.
std::string EscapeForLog(std::string_view s, bool quoted = false);

}  // namespace nfq::alerting
