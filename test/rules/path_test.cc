#include "rules/path.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace nfq::rules {
namespace {

using namespace path_flag;

struct ResolveCase {
  std::string target;
  std::string path;
  std::string query;
  uint32_t flags;
};

void PrintTo(const ResolveCase& c, std::ostream* os) { *os << "target '" << c.target << "'"; }

class ResolveTest : public testing::TestWithParam<ResolveCase> {};

TEST_P(ResolveTest, Resolves) {
  const ResolveCase& c = GetParam();
  const ResolvedPath r = ResolveTarget(c.target);
  EXPECT_EQ(r.path, c.path);
  EXPECT_EQ(r.query, c.query);
  EXPECT_EQ(PathFlagNames(r.flags), PathFlagNames(c.flags));
}

using namespace std::string_literals;

INSTANTIATE_TEST_SUITE_P(
    Plain, ResolveTest,
    testing::Values(ResolveCase{"/latest/meta-data/", "/latest/meta-data/", "", 0},
                    ResolveCase{"/latest/meta-data", "/latest/meta-data", "", 0},
                    ResolveCase{"/", "/", "", 0},
                    ResolveCase{"/latest/meta-data/iam/", "/latest/meta-data/iam/", "", 0},
                    ResolveCase{"/.../..a/a..", "/.../..a/a..", "", 0},
                    ResolveCase{"/a%20b", "/a%20b", "", 0},
                    ResolveCase{"/a b\tc", "/a b\tc", "", 0}));

INSTANTIATE_TEST_SUITE_P(
    TargetForms, ResolveTest,
    testing::Values(
        ResolveCase{"", "/", "", kNotOriginForm}, ResolveCase{"*", "/*", "", kNotOriginForm},
        ResolveCase{"latest/meta-data/", "/latest/meta-data/", "", kNotOriginForm},
        ResolveCase{"169.254.169.254:80", "/169.254.169.254:80", "", kNotOriginForm},
        ResolveCase{"http:/latest", "/http:/latest", "", kNotOriginForm},
        ResolveCase{"?x", "/", "x", kNotOriginForm},
        ResolveCase{"http://169.254.169.254/latest/meta-data/iam/?x=1", "/latest/meta-data/iam/",
                    "x=1", kAbsoluteForm},
        ResolveCase{"HTTP://169.254.169.254:80/latest", "/latest", "", kAbsoluteForm},
        ResolveCase{"hTtPs://h", "/", "", kAbsoluteForm},
        ResolveCase{"http://h?q", "/", "q", kAbsoluteForm},
        ResolveCase{"x-y.z+1://h/a", "/a", "", kAbsoluteForm},
        ResolveCase{"http://[fd00:ec2::254]/latest/", "/latest/", "", kAbsoluteForm},
        ResolveCase{"http://user@h//latest//x", "/latest/x", "", kAbsoluteForm | kRepeatedSlash},
        ResolveCase{"http://h/%2e%2e/x", "/x", "", kAbsoluteForm | kDotDot | kEncoded},
        ResolveCase{"1http://h/a", "/1http:/h/a", "", kNotOriginForm | kRepeatedSlash}));

INSTANTIATE_TEST_SUITE_P(QueryAndFragment, ResolveTest,
                         testing::Values(ResolveCase{"/latest?", "/latest", "", 0},
                                         ResolveCase{"/latest?a=b?c", "/latest", "a=b?c", 0},
                                         ResolveCase{"/latest?a=/../x", "/latest", "a=/../x", 0},
                                         ResolveCase{"/latest?a=b#frag", "/latest", "a=b",
                                                     kFragment},
                                         ResolveCase{"/latest#x?y", "/latest", "", kFragment},
                                         ResolveCase{"/a%3fb?c", "/a%3Fb", "c", 0},
                                         ResolveCase{"/a%23b", "/a%23b", "", 0}));

// Field case R4 and its relatives.
INSTANTIATE_TEST_SUITE_P(
    DotSegments, ResolveTest,
    testing::Values(ResolveCase{"/latest/meta-data/ami-id/../iam/security-credentials/",
                                "/latest/meta-data/iam/security-credentials/", "", kDotDot},
                    ResolveCase{"/latest/./meta-data/", "/latest/meta-data/", "", kDot},
                    ResolveCase{"/.", "/", "", kDot}, ResolveCase{"/a/.", "/a/", "", kDot},
                    ResolveCase{"/a/./", "/a/", "", kDot}, ResolveCase{"/a/..", "/", "", kDotDot},
                    ResolveCase{"/a/b/..", "/a/", "", kDotDot},
                    ResolveCase{"/a/b/../", "/a/", "", kDotDot},
                    ResolveCase{"/..", "/", "", kDotDot},
                    ResolveCase{"/../../..", "/", "", kDotDot},
                    ResolveCase{"/../latest", "/latest", "", kDotDot},
                    ResolveCase{"/../../latest/../../meta-data", "/meta-data", "", kDotDot},
                    ResolveCase{"..", "/", "", kNotOriginForm | kDotDot},
                    ResolveCase{"/a/./../b", "/b", "", kDot | kDotDot},
                    ResolveCase{"/a//../b", "/b", "", kRepeatedSlash | kDotDot}));

INSTANTIATE_TEST_SUITE_P(
    Encoding, ResolveTest,
    testing::Values(
        ResolveCase{"/latest/meta%2Ddata/", "/latest/meta-data/", "", kEncoded},
        ResolveCase{"/latest/meta%2ddata/", "/latest/meta-data/", "", kEncoded},
        ResolveCase{"/%6c%61%74%65%73%74", "/latest", "", kEncoded},
        ResolveCase{"/%7e%5F%2E%30%5a", "/~_.0Z", "", kEncoded},
        ResolveCase{"/latest/meta-data%2Fiam", "/latest/meta-data%2Fiam", "", kEncodedSlash},
        ResolveCase{"/latest/meta-data%2fiam", "/latest/meta-data%2Fiam", "", kEncodedSlash},
        ResolveCase{"/a%2F..%2Fb", "/a%2F..%2Fb", "", kEncodedSlash},
        ResolveCase{"/a%3f%3F%c3%a9", "/a%3F%3F%C3%A9", "", 0},
        ResolveCase{"/a%00b", "/a%00b", "", 0},
        // %2e%2e is ".." once decoded: it counts as a dot-dot segment.
        ResolveCase{"/latest/meta-data/x/%2e%2e/iam", "/latest/meta-data/iam", "",
                    kDotDot | kEncoded},
        ResolveCase{"/latest/meta-data/x/%2E%2E/iam", "/latest/meta-data/iam", "",
                    kDotDot | kEncoded},
        ResolveCase{"/latest/meta-data/x/.%2e/iam", "/latest/meta-data/iam", "",
                    kDotDot | kEncoded},
        ResolveCase{"/latest/%2e/meta-data", "/latest/meta-data", "", kDot | kEncoded},
        // Decoded once only: %252e is the text "%2e", not a dot.
        ResolveCase{"/latest/%252e%252e/iam", "/latest/%252e%252e/iam", "", kDoubleEncoded},
        ResolveCase{"/%252F", "/%252F", "", kDoubleEncoded},
        ResolveCase{"/%2541", "/%2541", "", kDoubleEncoded}, ResolveCase{"/%25", "/%25", "", 0},
        ResolveCase{"/%25zz", "/%25zz", "", 0}, ResolveCase{"/a%zz", "/a%zz", "", kBadEncoding},
        ResolveCase{"/a%", "/a%", "", kBadEncoding}, ResolveCase{"/a%4", "/a%4", "", kBadEncoding},
        ResolveCase{"/a%4?q", "/a%4", "q", kBadEncoding},
        ResolveCase{"/%%41", "/%A", "", kBadEncoding | kEncoded},
        ResolveCase{"/%%34%31", "/%41", "", kBadEncoding | kEncoded}));

// Field case R3.
INSTANTIATE_TEST_SUITE_P(
    Slashes, ResolveTest,
    testing::Values(ResolveCase{"//latest//meta-data/", "/latest/meta-data/", "", kRepeatedSlash},
                    ResolveCase{"//", "/", "", kRepeatedSlash},
                    ResolveCase{"///", "/", "", kRepeatedSlash},
                    ResolveCase{"/a//", "/a/", "", kRepeatedSlash},
                    ResolveCase{"/2021-03-23/meta-data/iam/", "/2021-03-23/meta-data/iam/", "", 0},
                    ResolveCase{"/latest/meta-data/iam", "/latest/meta-data/iam", "", 0}));

INSTANTIATE_TEST_SUITE_P(Bytes, ResolveTest,
                         testing::Values(ResolveCase{"/a\0b"s, "/a\0b"s, "", 0},
                                         ResolveCase{"\0"s, "/\0"s, "", kNotOriginForm},
                                         ResolveCase{"/\xff\xfe/\x80", "/\xff\xfe/\x80", "", 0},
                                         ResolveCase{"/\r\n", "/\r\n", "", 0}));

TEST(PathFlagNames, StableNamesInBitOrder) {
  EXPECT_EQ(PathFlagNames(0), "");
  EXPECT_EQ(PathFlagNames(kDotDot | kEncoded), "dotdot,encoded");
  EXPECT_EQ(PathFlagNames(0xffffffffu),
            "dotdot,dot,encoded,encoded_slash,double_encoded,repeated_slash,absolute_form,"
            "bad_encoding,not_origin_form,fragment,truncated");
  EXPECT_EQ(PathFlagNames(kNotOriginForm), "not_origin_form");
  EXPECT_EQ(PathFlagNames(1u << 31), "");
}

TEST(PathFlagNames, AppendedOnceToAnotherList) {
  std::string names = "truncated,oversized";
  AppendPathFlagNames(kDotDot | kTruncated, &names);
  EXPECT_EQ(names, "truncated,oversized,dotdot");  // "truncated" was there already
  std::string empty;
  AppendPathFlagNames(kTruncated, &empty);
  EXPECT_EQ(empty, "truncated");
  std::string prefix_only = "truncatedx,dot_x";
  AppendPathFlagNames(kTruncated | kDot, &prefix_only);
  EXPECT_EQ(prefix_only, "truncatedx,dot_x,dot,truncated");  // whole names only
}

TEST(ResolveHostile, AllPercent) {
  const std::string target(kMaxTargetBytes, '%');
  const ResolvedPath r = ResolveTarget(target);
  EXPECT_EQ(r.path, "/" + std::string(kMaxTargetBytes - 1, '%'));
  EXPECT_EQ(r.flags, kNotOriginForm | kBadEncoding | kTruncated);
}

TEST(ResolveHostile, ManyDotDots) {
  std::string target = "/";
  while (target.size() < kMaxTargetBytes - 3) target += "../";
  const ResolvedPath r = ResolveTarget(target + "x");
  EXPECT_EQ(r.path, "/x");
  EXPECT_EQ(r.flags, kDotDot);
}

TEST(ResolveHostile, DeepPathThenDotDots) {
  std::string target;
  for (int i = 0; i < 1000; ++i) target += "/a";
  for (int i = 0; i < 999; ++i) target += "/..";
  const ResolvedPath r = ResolveTarget(target);
  EXPECT_EQ(r.path, "/a/");  // a final ".." leaves a directory, as in RFC 3986
  EXPECT_EQ(r.flags, kDotDot);
}

TEST(ResolveHostile, LongInputIsCut) {
  const std::string target = "/" + std::string(1 << 20, 'a');
  const ResolvedPath r = ResolveTarget(target);
  EXPECT_EQ(r.path.size(), kMaxTargetBytes);
  EXPECT_EQ(r.flags, kTruncated);
  // A query past the cap is not seen.
  EXPECT_TRUE(ResolveTarget(target + "?q").query.empty());
}

TEST(ResolveHostile, CapKeepsResolvedPathWithinCap) {
  for (const size_t n : {kMaxTargetBytes - 1, kMaxTargetBytes, kMaxTargetBytes + 1}) {
    const ResolvedPath r = ResolveTarget(std::string(n, '*'));
    EXPECT_LE(r.path.size(), kMaxTargetBytes);
    EXPECT_EQ(ResolveTarget(r.path).path, r.path);
  }
}

// What always holds for a resolved path, and what resolving it again gives.
void CheckInvariants(std::string_view target) {
  SCOPED_TRACE(testing::Message() << "target '" << target << "'");
  const ResolvedPath r = ResolveTarget(target);
  ASSERT_FALSE(r.path.empty());
  EXPECT_EQ(r.path[0], '/');
  EXPECT_LE(r.path.size(), kMaxTargetBytes);
  EXPECT_EQ(r.path.find("//"), std::string::npos);
  EXPECT_EQ(r.path.find("/./"), std::string::npos);
  EXPECT_EQ(r.path.find("/../"), std::string::npos);
  EXPECT_FALSE(r.path.ends_with("/.") || r.path.ends_with("/.."));
  EXPECT_EQ(r.path.find_first_of("?#"), std::string::npos);
  // A path with a literal '%' (bad encoding) can form a new encoding once its neighbours are
  // decoded ("%%34%31" -> "%41"), so only then may a second pass change it.
  if ((r.flags & kBadEncoding) != 0) return;
  const ResolvedPath again = ResolveTarget(r.path);
  EXPECT_EQ(again.path, r.path);
  EXPECT_TRUE(again.query.empty());
  // A %2F left in the path stays (one removed by ".." does not), and a %25 may now precede
  // two hex digits; nothing else can show up.
  EXPECT_EQ(again.flags & ~(kEncodedSlash | kDoubleEncoded), 0u) << PathFlagNames(again.flags);
  EXPECT_EQ(again.flags & ~r.flags & kEncodedSlash, 0u);
  EXPECT_EQ((again.flags & kEncodedSlash) != 0, r.path.find("%2F") != std::string::npos);
}

TEST(ResolveProperty, RandomTargets) {
  static constexpr std::string_view kPieces[] = {
      "/", "/", "/",  ".",    "..",  "%",        "2",   "e",   "E",
      "f", "F", "5",  "%2e",  "%2F", "%25",      "%2f", "a",   "latest",
      "?", "#", "\0", "\xff", "%4",  "http://h", "*",   "%41", "3"};
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<int> length(0, 24);
  for (int i = 0; i < 20000; ++i) {
    std::string target;
    for (int n = length(rng); n > 0; --n) target.append(kPieces[piece(rng)]);
    CheckInvariants(target);
    if (HasFailure()) break;
  }
}

// The packet thread resolves every request into the same two buffers: what a longer, flagged
// target left in them must never show in the next one.
TEST(ResolveProperty, IntoReusedBuffersEqualsFreshResolve) {
  static constexpr std::string_view kPieces[] = {"/", "..", ".", "%2e", "%41", "?q=1", "#f", "a",
                                                 "latest", "//", "%", "http://h", "*"};
  std::mt19937 rng(20261204);
  std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<int> length(0, 30);
  ResolvedPath reused;
  std::string scratch;
  for (int i = 0; i < 20000; ++i) {
    std::string target;
    for (int n = length(rng); n > 0; --n) target.append(kPieces[piece(rng)]);
    ResolveTargetInto(target, &reused, &scratch);
    const ResolvedPath fresh = ResolveTarget(target);
    ASSERT_EQ(reused.path, fresh.path) << target;
    ASSERT_EQ(reused.query, fresh.query) << target;
    ASSERT_EQ(reused.flags, fresh.flags) << target;
  }
  ResolveTargetInto(std::string(kMaxTargetBytes + 5, 'x'), &reused, &scratch);
  ResolveTargetInto("/", &reused, &scratch);
  EXPECT_EQ(reused.path, "/");
  EXPECT_EQ(reused.query, "");
  EXPECT_EQ(reused.flags, 0u);
}

TEST(ResolveProperty, TableTargetsKeepInvariants) {
  for (const std::string_view t :
       {"", "/", "//", "/..", "%", "%%", "/%2e%2e/%2e/", "/%252e%252e", "/%%34%31", "*", "http://h",
        "http:///", "/a/b/c/../../../../d/./e//"}) {
    CheckInvariants(t);
  }
}

}  // namespace
}  // namespace nfq::rules
