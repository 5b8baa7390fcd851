#include "rules/path_filter.h"

#include <algorithm>
#include <utility>

#include "rules/path.h"

namespace nfq::rules {
namespace {

constexpr std::string_view kLatest = "/latest";

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// For error messages: one line, bounded, no control bytes.
std::string Printable(std::string_view s) {
  constexpr size_t kMax = 80;
  std::string out;
  for (const char c : s.substr(0, kMax)) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(byte < 0x20 || byte >= 0x7f ? '?' : c);
  }
  if (s.size() > kMax) out.append("...");
  return out;
}

std::string_view ModeName(FilterMode mode) {
  switch (mode) {
    case FilterMode::kAll:
      return "all";
    case FilterMode::kBlacklist:
      return "blacklist";
    case FilterMode::kWhitelist:
      return "whitelist";
  }
  return "?";
}

// A path seen as head + tail without copying: the path with its version segment read as
// "/latest" is kLatest + the rest.
struct SplitPath {
  std::string_view head;
  std::string_view tail;
  size_t size() const { return head.size() + tail.size(); }
};

SplitPath LatestForm(std::string_view path) {
  const size_t end = std::min(path.find('/', 1), path.size());
  if (path.size() < 2 || !IsVersionSegment(path.substr(1, end - 1))) return {{}, path};
  return {kLatest, path.substr(end)};
}

bool StartsWith(const SplitPath& path, std::string_view item) {
  if (item.size() > path.size()) return false;
  const size_t in_head = std::min(item.size(), path.head.size());
  return path.head.substr(0, in_head) == item.substr(0, in_head) &&
         path.tail.starts_with(item.substr(in_head));
}

// Apeeper's startswith, plus: an item ending in '/' also matches the path without that
// slash ("/latest/meta-data/" matches "/latest/meta-data": the service answers both alike).
bool ItemMatches(const SplitPath& path, std::string_view item) {
  if (StartsWith(path, item)) return true;
  if (item.size() < 2 || item.back() != '/') return false;
  const std::string_view bare = item.substr(0, item.size() - 1);
  return path.size() == bare.size() && StartsWith(path, bare);
}

// The reading of a server that decodes once more than we do: %2F is a separator and %25XX
// is an encoding of XX. Dot segments that appear then are resolved (and flagged) again.
ResolvedPath DecodedOnceMore(std::string_view path) {
  std::string alt;
  alt.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string_view rest = path.substr(i);
    if (rest.starts_with("%2F")) {
      alt.push_back('/');
      i += 2;
    } else if (rest.starts_with("%25")) {
      alt.push_back('%');
      i += 2;
    } else {
      alt.push_back(path[i]);
    }
  }
  return ResolveTarget(alt);
}

}  // namespace

bool IsVersionSegment(std::string_view s) {
  if (s == "1.0") return true;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
  }
  return true;
}

PathFilter::PathFilter(FilterMode mode, std::vector<std::string> prefixes, FilterOptions options)
    : mode_(mode), prefixes_(std::move(prefixes)), options_(options) {
  latest_prefixes_.reserve(prefixes_.size());
  for (const std::string& item : prefixes_) {
    const SplitPath latest = LatestForm(item);
    latest_prefixes_.push_back(std::string(latest.head) + std::string(latest.tail));
  }
}

std::optional<PathFilter> PathFilter::Create(FilterMode mode, std::string_view items,
                                             std::string* error) {
  return Create(mode, items, FilterOptions{}, error);
}

std::optional<PathFilter> PathFilter::Create(FilterMode mode, std::string_view items,
                                             const FilterOptions& options, std::string* error) {
  const std::string_view name = ModeName(mode);
  std::vector<std::string> prefixes;
  while (true) {
    const size_t comma = items.find(',');
    const std::string_view item = Trim(items.substr(0, comma));
    if (!item.empty()) {
      if (mode == FilterMode::kAll) {
        *error = "mode all takes no path list, got '" + Printable(item) + "'";
        return std::nullopt;
      }
      if (item.find_first_of("?#") != std::string_view::npos) {
        *error = std::string(name) + " item '" + Printable(item) +
                 "' has a '?' or '#': items are matched against the path only";
        return std::nullopt;
      }
      ResolvedPath resolved = ResolveTarget(item);
      if ((resolved.flags & path_flag::kTruncated) != 0) {
        *error = std::string(name) + " item '" + Printable(item) + "' is longer than " +
                 std::to_string(kMaxTargetBytes) + " bytes";
        return std::nullopt;
      }
      if (std::find(prefixes.begin(), prefixes.end(), resolved.path) == prefixes.end()) {
        prefixes.push_back(std::move(resolved.path));
      }
    }
    if (comma == std::string_view::npos) break;
    items.remove_prefix(comma + 1);
  }
  if (mode != FilterMode::kAll && prefixes.empty()) {
    *error = "empty " + std::string(name) +
             ": give one or more comma-separated path prefixes, e.g. /latest/meta-data/iam";
    return std::nullopt;
  }
  return PathFilter(mode, std::move(prefixes), options);
}

bool PathFilter::MatchesAnyItem(std::string_view path) const {
  const SplitPath as_resolved{{}, path};
  for (const std::string& item : prefixes_) {
    if (ItemMatches(as_resolved, item)) return true;
  }
  if (!options_.treat_dated_versions_as_latest) return false;
  const SplitPath as_latest = LatestForm(path);
  for (const std::string& item : latest_prefixes_) {
    if (ItemMatches(as_latest, item)) return true;
  }
  return false;
}

bool PathFilter::ReadingAlerts(std::string_view path) const {
  const bool matches = MatchesAnyItem(path);
  return mode_ == FilterMode::kBlacklist ? matches : !matches;
}

bool PathFilter::ShouldAlert(const ResolvedPath& path) const {
  if (mode_ == FilterMode::kAll) return true;
  // No legitimate client sends these, and servers disagree on how to read them: "#" in a
  // request target (some keep it as a path character, then resolve "/../" after it), and
  // targets in neither origin nor absolute form ("http:/x", "latest/x", "*").
  if ((path.flags & (path_flag::kDotDot | path_flag::kFragment | path_flag::kNotOriginForm)) != 0) {
    return true;
  }
  if (ReadingAlerts(path.path)) return true;
  if ((path.flags & (path_flag::kEncodedSlash | path_flag::kDoubleEncoded)) == 0) return false;
  const ResolvedPath alt = DecodedOnceMore(path.path);
  return (alt.flags & path_flag::kDotDot) != 0 || ReadingAlerts(alt.path);
}

std::string PathFilter::Describe() const {
  std::string out(ModeName(mode_));
  if (mode_ == FilterMode::kAll) return out;
  out.append(": ");
  for (size_t i = 0; i < prefixes_.size(); ++i) {
    if (i != 0) out.append(", ");
    out.append(prefixes_[i]);
  }
  return out;
}

}  // namespace nfq::rules
