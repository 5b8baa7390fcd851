// Userinfo ("user:password@") in what a request names as its server is redacted before a hit
// leaves the packet thread: in the request target and in the Host value. Pure functions;
// thread-safe. They allocate only when the text grows (a userinfo shorter than "<redacted>").
#pragma once

#include <string>

namespace nfq::sensor {

// "http://user:pw@host/p" -> "http://<redacted>@host/p". An authority begins after "//" at
// the start of the target or after ':' or '=' ("http://", "?next=//"); after "%2F%2F" (any
// case) at the start or after "%3A" or '=' (a URL encoded into the query); and at the start
// of a target that is neither a path nor "scheme://" ("admin:pw@host:80/...", authority form).
// It ends at '/', '?' or '#' (encoded: also "%2F", "%3F", "%23" or '&'), so quotes, spaces or
// tabs in a password do not end it early; everything before its last '@' ("%40" when
// encoded) goes. Then, wherever a '@' follows a ':' within one segment (since the last '/',
// '?' or '#': "http:/admin:pw@h", "/x/admin:pw@h", "?proxy=admin:pw@h"), all before the '@'
// in that segment goes. target_cut: the request line ended in a cut (FIN, hole, cap) inside
// the target; an authority that runs to the cut goes whole, and so does a last segment that
// holds a ':', since the cut may have fallen anywhere in a password.
// Returns whether anything was redacted.
bool RedactTargetInPlace(std::string* target, bool target_cut);

// "user:pw@host" -> "<redacted>@host"; with host_cut (the value was cut by its cap or by the
// end of the head), all of it.
void RedactHostInPlace(std::string* host, bool host_cut);

}  // namespace nfq::sensor
