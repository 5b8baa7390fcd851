// The Apeeper path filter: all, blacklist or whitelist of path prefixes.
// Immutable after Create; share it across threads by shared_ptr<const PathFilter> and swap
// the pointer on reload.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nfq::rules {

struct ResolvedPath;

enum class FilterMode { kAll, kBlacklist, kWhitelist };

class PathFilter {
 public:
  // items: the comma-separated list as typed after -b/-w. Items are resolved like request
  // paths. An empty list (or one with only empty items) is an error for kBlacklist and
  // kWhitelist; on error returns nullopt and sets *error to one line naming the problem.
  static std::optional<PathFilter> Create(FilterMode mode, std::string_view items,
                                          std::string* error);

  // True when a request with this resolved path raises a hit. A ".." segment always does.
  bool ShouldAlert(const ResolvedPath& path) const;

  FilterMode mode() const { return mode_; }
  const std::vector<std::string>& prefixes() const { return prefixes_; }
  std::string Describe() const;  // "all", "blacklist: /a, /b", ...

 private:
  PathFilter(FilterMode mode, std::vector<std::string> prefixes)
      : mode_(mode), prefixes_(std::move(prefixes)) {}
  FilterMode mode_;
  std::vector<std::string> prefixes_;
};

}  // namespace nfq::rules
