// Resolving a request target to the path that the filter matches (contract: "Path filter").
// Pure functions; thread-safe. docs/paths.md describes every step and flag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nfq::rules {

namespace path_flag {
inline constexpr uint32_t kDotDot = 1u << 0;         // a ".." segment was present
inline constexpr uint32_t kDot = 1u << 1;            // a "." segment was present
inline constexpr uint32_t kEncoded = 1u << 2;        // percent-encoding of unreserved chars decoded
inline constexpr uint32_t kEncodedSlash = 1u << 3;   // %2F (kept encoded: not a separator)
inline constexpr uint32_t kDoubleEncoded = 1u << 4;  // %25XX: encoding of an encoding
inline constexpr uint32_t kRepeatedSlash = 1u << 5;  // "//" collapsed
inline constexpr uint32_t kAbsoluteForm = 1u << 6;   // "http://host/path" reduced to "/path"
inline constexpr uint32_t kBadEncoding = 1u << 7;    // "%" not followed by two hex digits
inline constexpr uint32_t kNotOriginForm = 1u << 8;  // target did not start with "/" (e.g. "*")
inline constexpr uint32_t kFragment = 1u << 9;       // "#..." dropped (never valid in a target)
inline constexpr uint32_t kTruncated = 1u << 10;     // target longer than kMaxTargetBytes; cut
}  // namespace path_flag

// Bytes of a target that are looked at; the rest is ignored (and kTruncated set). The HTTP
// parser caps the request line at the same size, so only direct callers ever hit it.
inline constexpr size_t kMaxTargetBytes = 8192;

// Comma-separated names of the set bits in bit order, e.g. "dotdot,encoded". Names are
// stable (they reach the console): dotdot, dot, encoded, encoded_slash, double_encoded,
// repeated_slash, absolute_form, bad_encoding, not_origin_form, fragment, truncated.
// Unknown bits are ignored.
std::string PathFlagNames(uint32_t flags);
// The same appended to *names, a comma-separated list that may hold other flags' names
// (request flags share "truncated"): a name already in it is not added again. Allocates only
// when *names outgrows its capacity.
void AppendPathFlagNames(uint32_t flags, std::string* names);

struct ResolvedPath {
  std::string path;   // resolved, always starts with "/"
  std::string query;  // after "?", without it, as sent; not used for matching
  uint32_t flags = 0;
};

// Never fails: any bytes give a path. Linear in min(target.size(), kMaxTargetBytes).
// The path never contains "//", a "." or ".." segment, and is a fixed point
// (ResolveTarget(r.path).path == r.path) unless kBadEncoding is set.
ResolvedPath ResolveTarget(std::string_view target);

// The same into *out, every field set, reusing the capacity of out's strings and of *scratch
// (working space, left unspecified): called again and again with the same two, it allocates
// only when a target is longer than any before. REQUIRES: target does not point into *out
// or *scratch.
void ResolveTargetInto(std::string_view target, ResolvedPath* out, std::string* scratch);

}  // namespace nfq::rules
