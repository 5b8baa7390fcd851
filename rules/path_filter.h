// The Apeeper path filter: all, blacklist or whitelist of path prefixes.
// Immutable after Create; share it across threads by shared_ptr<const PathFilter> and swap
// the pointer on reload. docs/paths.md is the user-facing description.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nfq::rules {

struct ResolvedPath;

enum class FilterMode { kAll, kBlacklist, kWhitelist };

struct FilterOptions {
  // A first segment that is a metadata API version ("2021-03-23", "1.0") reads as "latest"
  // when matching, in requests and in list items alike; the resolved path (norm) is not
  // changed. On by default: an attacker picks the spelling, so a blacklist of
  // /latest/meta-data/iam must also catch /2021-03-23/meta-data/iam.
  bool treat_dated_versions_as_latest = true;
};

// True for "YYYY-MM-DD" (digits only, ranges not checked) and "1.0".
bool IsVersionSegment(std::string_view segment);

class PathFilter {
 public:
  // items: the comma-separated list as typed after -b/-w. Items are resolved like request
  // paths. An empty list (or one with only empty items) is an error for kBlacklist and
  // kWhitelist; on error returns nullopt and sets *error to one line naming the problem.
  // kAll takes no items (a non-empty list is an error). An item with "?" or "#" is an error
  // (matching ignores the query), as is one longer than kMaxTargetBytes.
  // REQUIRES: error != nullptr.
  static std::optional<PathFilter> Create(FilterMode mode, std::string_view items,
                                          std::string* error);
  static std::optional<PathFilter> Create(FilterMode mode, std::string_view items,
                                          const FilterOptions& options, std::string* error);

  // True when a request with this resolved path raises a hit. A ".." segment, a "#" and a
  // target in neither origin nor absolute form always do.
  // A path with %2F or %25XX is also matched as a server that decodes once more would read
  // it; if any reading alerts, the request alerts.
  // REQUIRES: path came from ResolveTarget (its flags describe its path).
  bool ShouldAlert(const ResolvedPath& path) const;

  FilterMode mode() const { return mode_; }
  const std::vector<std::string>& prefixes() const { return prefixes_; }
  const FilterOptions& options() const { return options_; }
  std::string Describe() const;  // "all", "blacklist: /a, /b", ...

 private:
  PathFilter(FilterMode mode, std::vector<std::string> prefixes, FilterOptions options);

  // True when some item is a prefix of path (as resolved or, with the option, with its
  // version segment read as "latest").
  bool MatchesAnyItem(std::string_view path) const;
  bool ReadingAlerts(std::string_view path) const;

  FilterMode mode_;
  std::vector<std::string> prefixes_;         // resolved items, as reported
  std::vector<std::string> latest_prefixes_;  // the same with a version segment as "latest"
  FilterOptions options_;
};

}  // namespace nfq::rules
