#include "rules/path_filter.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "rules/path.h"

namespace nfq::rules {
namespace {

PathFilter MustCreate(FilterMode mode, std::string_view items, FilterOptions options = {}) {
  std::string error;
  std::optional<PathFilter> filter = PathFilter::Create(mode, items, options, &error);
  EXPECT_TRUE(filter.has_value()) << error;
  EXPECT_TRUE(error.empty());
  return filter.value_or(*PathFilter::Create(FilterMode::kAll, "", &error));
}

std::string CreateError(FilterMode mode, std::string_view items) {
  std::string error;
  EXPECT_FALSE(PathFilter::Create(mode, items, &error).has_value()) << "items '" << items << "'";
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  return error;
}

TEST(PathFilterCreate, ParsesItems) {
  const PathFilter f = MustCreate(FilterMode::kBlacklist, " /a , /b ,, \t/c/\t,");
  EXPECT_EQ(f.prefixes(), (std::vector<std::string>{"/a", "/b", "/c/"}));
  EXPECT_EQ(f.mode(), FilterMode::kBlacklist);
  EXPECT_EQ(f.Describe(), "blacklist: /a, /b, /c/");
}

TEST(PathFilterCreate, ResolvesItemsLikeRequests) {
  const PathFilter f =
      MustCreate(FilterMode::kWhitelist,
                 "//latest//meta-data,latest/user-data,/latest/meta%2ddata/x,"
                 "http://169.254.169.254/latest/api/token,/latest/./a/../b,/latest/meta-data");
  EXPECT_EQ(f.prefixes(),
            (std::vector<std::string>{"/latest/meta-data", "/latest/user-data",
                                      "/latest/meta-data/x", "/latest/api/token", "/latest/b"}));
  EXPECT_EQ(f.Describe(),
            "whitelist: /latest/meta-data, /latest/user-data, /latest/meta-data/x, "
            "/latest/api/token, /latest/b");
}

TEST(PathFilterCreate, AllTakesNoItems) {
  const PathFilter f = MustCreate(FilterMode::kAll, " , ");
  EXPECT_TRUE(f.prefixes().empty());
  EXPECT_EQ(f.Describe(), "all");
  EXPECT_NE(CreateError(FilterMode::kAll, "/a").find("all"), std::string::npos);
}

TEST(PathFilterCreate, EmptyListsAreErrors) {
  for (const std::string_view items : {"", ",", " , ,", "\t", " \r\n "}) {
    EXPECT_NE(CreateError(FilterMode::kBlacklist, items).find("empty blacklist"),
              std::string::npos);
    EXPECT_NE(CreateError(FilterMode::kWhitelist, items).find("empty whitelist"),
              std::string::npos);
  }
}

TEST(PathFilterCreate, BadItemsAreErrors) {
  EXPECT_NE(CreateError(FilterMode::kBlacklist, "/a,/b?x=1").find("'/b?x=1'"), std::string::npos);
  EXPECT_NE(CreateError(FilterMode::kWhitelist, "/a#b").find("whitelist item '/a#b'"),
            std::string::npos);
  // Control bytes never break the one-line message.
  CreateError(FilterMode::kBlacklist, "/a\nb?");
  const std::string long_item = "/" + std::string(kMaxTargetBytes, 'a');
  EXPECT_NE(CreateError(FilterMode::kBlacklist, "/a," + long_item).find("longer than"),
            std::string::npos);
}

TEST(PathFilterCreate, ThreeArgumentCreateUsesDefaults) {
  std::string error;
  const auto f = PathFilter::Create(FilterMode::kBlacklist, "/a", &error);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->options().treat_dated_versions_as_latest);
}

TEST(PathFilterCreate, SharedAcrossReloads) {
  // The daemon's reload: build anew, swap a shared_ptr<const PathFilter>.
  auto current = std::make_shared<const PathFilter>(MustCreate(FilterMode::kBlacklist, "/a"));
  const auto old = current;
  current = std::make_shared<const PathFilter>(MustCreate(FilterMode::kBlacklist, "/b"));
  EXPECT_TRUE(old->ShouldAlert(ResolveTarget("/a")));
  EXPECT_FALSE(current->ShouldAlert(ResolveTarget("/a")));
}

TEST(VersionSegment, Recognises) {
  EXPECT_TRUE(IsVersionSegment("2021-03-23"));
  EXPECT_TRUE(IsVersionSegment("1.0"));
  EXPECT_TRUE(IsVersionSegment("2007-01-19"));
  for (const std::string_view s : {"", "latest", "2021-03-2", "2021-03-233", "2021/03/23",
                                   "2021-0a-23", "1.1", "1.0.0", "20210323xx", "2021-03-23 "}) {
    EXPECT_FALSE(IsVersionSegment(s)) << s;
  }
}

enum class Dated { kOn, kOff, kBoth };

struct AlertCase {
  FilterMode mode;
  std::string items;
  std::string target;
  bool alert;
  Dated dated = Dated::kBoth;  // which option settings the expectation holds for
};

void PrintTo(const AlertCase& c, std::ostream* os) {
  *os << "items '" << c.items << "' target '" << c.target << "'";
}

class ShouldAlertTest : public testing::TestWithParam<AlertCase> {};

TEST_P(ShouldAlertTest, Decides) {
  const AlertCase& c = GetParam();
  for (const bool dated : {true, false}) {
    if ((c.dated == Dated::kOn && !dated) || (c.dated == Dated::kOff && dated)) continue;
    const PathFilter f =
        MustCreate(c.mode, c.items, FilterOptions{.treat_dated_versions_as_latest = dated});
    EXPECT_EQ(f.ShouldAlert(ResolveTarget(c.target)), c.alert) << "dated-as-latest " << dated;
  }
}

constexpr auto kB = FilterMode::kBlacklist;
constexpr auto kW = FilterMode::kWhitelist;
constexpr auto kA = FilterMode::kAll;
const std::string kIam = "/latest/meta-data/iam";

INSTANTIATE_TEST_SUITE_P(All, ShouldAlertTest,
                         testing::Values(AlertCase{kA, "", "/", true},
                                         AlertCase{kA, "", "/latest/meta-data/", true},
                                         AlertCase{kA, "", "", true},
                                         AlertCase{kA, "", "*", true}));

// R3 and R4 against a blacklist of the credentials API.
INSTANTIATE_TEST_SUITE_P(
    Blacklist, ShouldAlertTest,
    testing::Values(
        AlertCase{kB, kIam, "/latest/meta-data/iam/security-credentials/", true},
        AlertCase{kB, kIam, "/latest/meta-data/iam", true},
        AlertCase{kB, kIam, "/latest/meta-data/ami-id", false},
        AlertCase{kB, kIam, "/latest/meta-data/", false}, AlertCase{kB, kIam, "/", false},
        AlertCase{kB, kIam, "/latest/meta-data/iamx", true},  // plain prefix, as Apeeper
        AlertCase{kB, kIam, "//latest//meta-data//iam/", true},
        AlertCase{kB, kIam, "/latest/meta%2Ddata/iam", true},
        AlertCase{kB, kIam, "/latest/meta%2ddata/%69am", true},
        AlertCase{kB, kIam, "/latest/./meta-data/iam", true},
        AlertCase{kB, kIam, "/latest/meta-data/ami-id/../iam/security-credentials/", true},
        AlertCase{kB, kIam, "http://169.254.169.254/latest/meta-data/iam/", true},
        AlertCase{kB, kIam, "HTTP://x:80//latest/meta-data/iam", true},
        AlertCase{kB, kIam, "latest/meta-data/iam", true},
        AlertCase{kB, kIam, "/latest/meta-data/iam?x=1", true},
        AlertCase{kB, kIam, "/latest/meta-data/?iam", false},
        AlertCase{kB, kIam, "/latest/meta-data/#iam", true},  // "#" always alerts
        // ".." always alerts, even when it resolves away from every item.
        AlertCase{kB, kIam, "/latest/meta-data/ami-id/..", true},
        AlertCase{kB, kIam, "/latest/user-data/../meta-data/ami-id", true},
        AlertCase{kB, kIam, "/../", true}, AlertCase{kB, kIam, "/latest/%2e%2e/x", true},
        // Readings of a server that decodes once more.
        AlertCase{kB, kIam, "/latest/meta-data%2Fiam/", true},
        AlertCase{kB, kIam, "/latest/meta-data%2fiam", true},
        AlertCase{kB, kIam, "/latest/meta-data/%2569am", true},
        AlertCase{kB, kIam, "/latest/meta-data/x/%252e%252e/ami-id", true},
        AlertCase{kB, kIam, "/latest/meta-data/x%2F..%2Fami-id", true},
        AlertCase{kB, kIam, "/latest/meta-data/x%2Fy", false},
        AlertCase{kB, kIam, "/latest/meta-data/%252F", false},
        AlertCase{kB, kIam, "/latest/meta-data/iam%", true},
        AlertCase{kB, kIam, "/latest/meta-data/%zziam", false},
        // Dated versions (R3).
        AlertCase{kB, kIam, "/2021-03-23/meta-data/iam/", true, Dated::kOn},
        AlertCase{kB, kIam, "/2021-03-23/meta-data/iam/", false, Dated::kOff},
        AlertCase{kB, kIam, "/1.0/meta-data/iam", true, Dated::kOn},
        AlertCase{kB, kIam, "/1.0/meta-data/iam", false, Dated::kOff},
        AlertCase{kB, kIam, "//2021-03-23//meta-data/iam", true, Dated::kOn},
        AlertCase{kB, kIam, "/%32021-03-23/meta-data/iam", true, Dated::kOn},
        AlertCase{kB, kIam, "/2021-03-23x/meta-data/iam", false},
        AlertCase{kB, kIam, "/2021-03-23/meta-data/ami-id", false},
        AlertCase{kB, kIam, "/2021-03-23/latest/meta-data/iam", false},
        AlertCase{kB, "/2021-03-23/meta-data/iam", "/latest/meta-data/iam", true, Dated::kOn},
        AlertCase{kB, "/2021-03-23/meta-data/iam", "/2009-04-04/meta-data/iam", true, Dated::kOn},
        AlertCase{kB, "/2021-03-23/meta-data/iam", "/latest/meta-data/iam", false, Dated::kOff},
        AlertCase{kB, "/2021-03-23/meta-data/iam", "/2021-03-23/meta-data/iam/x", true},
        AlertCase{kB, "/2021", "/2021-03-23/meta-data", true},
        AlertCase{kB, "/latest", "/2021-03-23", true, Dated::kOn},
        AlertCase{kB, "/latest/", "/2021-03-23", true, Dated::kOn},
        AlertCase{kB, "/latest/", "/2021-03-23", false, Dated::kOff},
        // Item spelling and trailing slashes.
        AlertCase{kB, "/latest/meta-data/", "/latest/meta-data", true},
        AlertCase{kB, "/latest/meta-data/", "/latest/meta-data/ami-id", true},
        AlertCase{kB, "/latest/meta-data/", "/latest/meta-database", false},
        AlertCase{kB, "/latest/meta-data", "/latest/meta-database", true},
        AlertCase{kB, "/latest/meta-data/", "/latest/meta-dat", false},
        AlertCase{kB, "/latest/meta-data/", "/latest/user-data", false},
        AlertCase{kB, "latest/meta-data/", "/latest/meta-data/x", true},
        AlertCase{kB, "//latest//meta-data", "/latest/meta-data/x", true},
        AlertCase{kB, "/a,/b", "/b/c", true}, AlertCase{kB, "/a,/b", "/c", false},
        AlertCase{kB, "/", "/anything", true}));

INSTANTIATE_TEST_SUITE_P(
    Whitelist, ShouldAlertTest,
    testing::Values(
        AlertCase{kW, "/latest/meta-data/placement/,/latest/api/token",
                  "/latest/meta-data/placement/availability-zone", false},
        AlertCase{kW, "/latest/meta-data/placement/,/latest/api/token", "/latest/api/token", false},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/placement", false},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/iam/", true},
        AlertCase{kW, "/latest/meta-data/placement/", "/", true},
        AlertCase{kW, "/latest/meta-data/placement/", "//latest//meta-data/placement/", false},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/placement/../iam/", true},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/placement/..", true},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/placement/%2e%2e/", true},
        AlertCase{kW, "/latest/meta-data/placement/",
                  "/latest/meta-data/placement/x%2F..%2F..%2F..%2Fiam", true},
        AlertCase{kW, "/latest/meta-data/placement/",
                  "/latest/meta-data/placement/%252e%252e/%252e%252e/iam", true},
        AlertCase{kW, "/latest/meta-data/placement/", "/latest/meta-data/placement/x%2Fy", false},
        AlertCase{kW, "/latest/meta-data/placement/", "/2021-03-23/meta-data/placement/region",
                  false, Dated::kOn},
        AlertCase{kW, "/latest/meta-data/placement/", "/2021-03-23/meta-data/placement/region",
                  true, Dated::kOff},
        AlertCase{kW, "/2021-03-23/", "/2021-03-23/meta-data/x", false},
        AlertCase{kW, "/2021-03-23/", "/latest/meta-data/x", false, Dated::kOn},
        AlertCase{kW, "/2021-03-23/", "/latest/meta-data/x", true, Dated::kOff},
        AlertCase{kW, "/", "/anything", false}, AlertCase{kW, "/", "/a/../b", true}));

}  // namespace
}  // namespace nfq::rules

namespace nfq::rules {
namespace {

TEST(PathFilterAlwaysAlerts, FragmentsAndOddTargetFormsAlertWhateverTheLists) {
  std::string error;
  const auto black = PathFilter::Create(FilterMode::kBlacklist, "/latest/meta-data/iam", &error);
  const auto white = PathFilter::Create(FilterMode::kWhitelist, "/latest/meta-data/", &error);
  ASSERT_TRUE(black && white) << error;
  for (const char* target : {"/latest/meta-data/#/../iam/security-credentials/",
                             "http:/latest/meta-data/iam/security-credentials/",
                             "latest/meta-data/iam/", "*"}) {
    const ResolvedPath resolved = ResolveTarget(target);
    EXPECT_TRUE(black->ShouldAlert(resolved)) << target;
    EXPECT_TRUE(white->ShouldAlert(resolved)) << target;
  }
  EXPECT_FALSE(black->ShouldAlert(ResolveTarget("/latest/meta-data/instance-id")));
  EXPECT_FALSE(white->ShouldAlert(ResolveTarget("/latest/meta-data/instance-id")));
}

}  // namespace
}  // namespace nfq::rules
