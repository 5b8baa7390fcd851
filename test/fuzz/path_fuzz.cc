// Fuzzes ResolveTarget and PathFilter. Input: a request target, or "items\ntarget" to also
// build a blacklist and a whitelist from the first line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rules/path.h"
#include "rules/path_filter.h"

namespace {

using nfq::rules::FilterMode;
using nfq::rules::PathFilter;
using nfq::rules::ResolvedPath;
using nfq::rules::ResolveTarget;
namespace flag = nfq::rules::path_flag;

void Check(bool ok) {
  if (!ok) std::abort();
}

void CheckResolved(const ResolvedPath& r) {
  const std::string& p = r.path;
  Check(!p.empty() && p[0] == '/');
  Check(p.size() <= nfq::rules::kMaxTargetBytes);
  Check(p.find("//") == std::string::npos);
  Check(p.find("/./") == std::string::npos);
  Check(p.find("/../") == std::string::npos);
  Check(!p.ends_with("/.") && !p.ends_with("/.."));
  Check(p.find_first_of("?#") == std::string::npos);
  if ((r.flags & flag::kBadEncoding) != 0) return;  // see docs/paths.md: no fixed point then
  const ResolvedPath again = ResolveTarget(p);
  Check(again.path == p);
  Check((again.flags & ~(flag::kEncodedSlash | flag::kDoubleEncoded)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view target =
      newline == std::string_view::npos ? input : input.substr(newline + 1);
  const ResolvedPath r = ResolveTarget(target);
  CheckResolved(r);
  Check(!nfq::rules::PathFlagNames(r.flags).empty() || r.flags == 0);

  static std::string default_error;
  static const PathFilter kDefault =
      *PathFilter::Create(FilterMode::kBlacklist, "/latest/meta-data/iam", &default_error);
  const bool hit = kDefault.ShouldAlert(r);
  if ((r.flags & flag::kDotDot) != 0) Check(hit);

  if (newline != std::string_view::npos) {
    const std::string_view items = input.substr(0, newline);
    for (const FilterMode mode : {FilterMode::kBlacklist, FilterMode::kWhitelist}) {
      std::string error;
      const auto filter = PathFilter::Create(mode, items, &error);
      if (!filter) {
        Check(!error.empty() && error.find('\n') == std::string::npos);
        continue;
      }
      for (const std::string& prefix : filter->prefixes()) Check(prefix.starts_with('/'));
      const bool alert = filter->ShouldAlert(r);
      if ((r.flags & flag::kDotDot) != 0) Check(alert);
    }
  }
  return 0;
}
