// Resolving a request target to the path that the filter matches (contract: "Path filter").
// Pure functions; thread-safe.
#pragma once

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
}  // namespace path_flag

// Comma-separated names of the set bits, e.g. "dotdot,encoded".
std::string PathFlagNames(uint32_t flags);

struct ResolvedPath {
  std::string path;   // resolved, always starts with "/"
  std::string query;  // after "?", without it; not used for matching
  uint32_t flags = 0;
};

ResolvedPath ResolveTarget(std::string_view target);

}  // namespace nfq::rules
