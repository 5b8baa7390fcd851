#include "alerting/fold.h"

#include <gtest/gtest.h>

namespace nfq::alerting {
namespace {

using std::chrono::milliseconds;

Hit MakeHit(const std::string& src, const std::string& norm, int64_t t_ms) {
  Hit h;
  h.src = src;
  h.method = "GET";
  h.url = norm;
  h.norm = norm;
  h.first = h.last = Hit::Clock::time_point(milliseconds(t_ms));
  return h;
}

TEST(Folder, ThreeHundredIdenticalRequestsSumToThreeHundred) {
  Folder f(milliseconds(1000));
  const auto t0 = Folder::SteadyTime{} + std::chrono::hours(1);
  std::vector<Hit> out;
  for (int i = 0; i < 300; ++i) {
    auto h = MakeHit("10.0.0.1:" + std::to_string(40000 + i), "/latest/meta-data/iam/", i);
    if (auto o = f.Offer(h, t0 + milliseconds(i))) out.push_back(*o);
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].count, 1u);
  EXPECT_TRUE(f.Expire(t0 + milliseconds(999)).empty());
  auto follow = f.Expire(t0 + milliseconds(1000));
  ASSERT_EQ(follow.size(), 1u);
  EXPECT_EQ(follow[0].count, 299u);
  EXPECT_EQ(follow[0].first, Hit::Clock::time_point(milliseconds(1)));
  EXPECT_EQ(follow[0].last, Hit::Clock::time_point(milliseconds(299)));
  EXPECT_EQ(f.folded(), 299u);
  EXPECT_EQ(f.size(), 0u);
  // A new window starts with an immediate hit again.
  EXPECT_TRUE(f.Offer(MakeHit("10.0.0.1:1", "/latest/meta-data/iam/", 5000),
                      t0 + milliseconds(5000)));
}

// A follow-up carries one request's details, the latest's, never a mix of two: the
// process, its parents, the user agent and the port belong together.
TEST(Folder, AFollowUpHasEveryDetailOfTheLatestRequest) {
  Folder f(milliseconds(1000));
  const auto t0 = Folder::SteadyTime{} + std::chrono::hours(1);
  auto request = [](int i, const std::string& flags) {
    Hit h = MakeHit("10.0.0.1:" + std::to_string(40000 + i), "/latest/meta-data/iam/", i);
    h.url = "/latest/meta-data/iam/?n=" + std::to_string(i);
    h.ancestors = "parent" + std::to_string(i);
    h.user_agent = "agent" + std::to_string(i);
    h.host = "host" + std::to_string(i);
    h.exe = "/bin/exe" + std::to_string(i);
    h.flags = flags;
    return h;
  };
  ASSERT_TRUE(f.Offer(request(0, ""), t0));
  EXPECT_FALSE(f.Offer(request(1, "dotdot"), t0 + milliseconds(1)));
  EXPECT_FALSE(f.Offer(request(2, ""), t0 + milliseconds(2)));
  EXPECT_FALSE(f.Offer(request(3, "encoded"), t0 + milliseconds(3)));
  auto out = f.Expire(t0 + milliseconds(1000));
  ASSERT_EQ(out.size(), 1u);
  const Hit& h = out[0];
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.first, Hit::Clock::time_point(milliseconds(1)));
  EXPECT_EQ(h.last, Hit::Clock::time_point(milliseconds(3)));
  EXPECT_EQ(h.url, "/latest/meta-data/iam/?n=3");
  EXPECT_EQ(h.src, "10.0.0.1:40003");
  EXPECT_EQ(h.ancestors, "parent3");
  EXPECT_EQ(h.user_agent, "agent3");
  EXPECT_EQ(h.host, "host3");
  EXPECT_EQ(h.exe, "/bin/exe3");
  EXPECT_EQ(h.flags, "dotdot,encoded");
}

TEST(Folder, KeyIsAddressMethodNormAndImdsVersion) {
  Folder f(milliseconds(1000));
  const auto t0 = Folder::SteadyTime{} + std::chrono::hours(1);
  EXPECT_TRUE(f.Offer(MakeHit("10.0.0.1:1", "/a", 0), t0));
  EXPECT_TRUE(f.Offer(MakeHit("10.0.0.2:1", "/a", 0), t0));
  EXPECT_TRUE(f.Offer(MakeHit("10.0.0.1:1", "/b", 0), t0));
  EXPECT_TRUE(f.Offer(MakeHit("[fd00::1]:1", "/a", 0), t0));
  EXPECT_FALSE(f.Offer(MakeHit("[fd00::1]:2", "/a", 0), t0));
  Hit put = MakeHit("10.0.0.1:1", "/a", 0);
  put.method = "PUT";
  EXPECT_TRUE(f.Offer(put, t0));
  // An IMDSv1 read of a path is never counted into an IMDSv2 window of the same path.
  Hit v2 = MakeHit("10.0.0.3:1", "/c", 0);
  v2.imds = "v2";
  Hit v1 = v2;
  v1.imds = "v1";
  EXPECT_TRUE(f.Offer(v2, t0));
  EXPECT_TRUE(f.Offer(v1, t0));
  EXPECT_FALSE(f.Offer(v1, t0));
  EXPECT_EQ(Folder::AddressWithoutPort("[fd00:ec2::1]:80"), "fd00:ec2::1");
  EXPECT_EQ(Folder::AddressWithoutPort("1.2.3.4:5"), "1.2.3.4");
  EXPECT_EQ(Folder::AddressWithoutPort("fd00::1"), "fd00::1");
}

TEST(Folder, FullTablePassesHitsThroughAndDrainEmitsPending) {
  Folder f(milliseconds(1000), 2);
  const auto t0 = Folder::SteadyTime{} + std::chrono::hours(1);
  uint64_t total = 0;
  auto offer = [&](const Hit& h) {
    if (auto o = f.Offer(h, t0)) total += o->count;
  };
  for (int i = 0; i < 10; ++i) offer(MakeHit("10.0.0." + std::to_string(i % 4) + ":1", "/a", 0));
  for (const Hit& h : f.DrainAll()) total += h.count;
  EXPECT_EQ(total, 10u);
  EXPECT_EQ(f.size(), 0u);
}

TEST(Folder, ZeroWindowNeverFolds) {
  Folder f(milliseconds(0));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(f.Offer(MakeHit("1.1.1.1:1", "/a", 0), {}));
  EXPECT_FALSE(f.NextDeadline());
}

}  // namespace
}  // namespace nfq::alerting

namespace nfq::alerting {
namespace {

Hit LocalHit(const std::string& exe, int64_t uid, int64_t pid, const std::string& container = "") {
  Hit h;
  h.hook = "output";
  h.src = "10.0.0.1:" + std::to_string(30000 + pid);
  h.method = "GET";
  h.url = h.norm = "/latest/meta-data/iam/security-credentials/";
  h.exe = exe;
  h.uid = uid;
  h.pid = pid;
  h.container = container;
  return h;
}

TEST(FolderCaller, ShortLivedProcessesOfOneProgramAndUserFoldTogether) {
  Folder f(std::chrono::milliseconds(1000));
  const auto t0 = Folder::SteadyTime{} + std::chrono::hours(1);
  size_t immediate = 0;
  for (int pid = 1; pid <= 300; ++pid) {
    if (f.Offer(LocalHit("/usr/bin/curl", 1000, pid), t0)) ++immediate;
  }
  EXPECT_EQ(immediate, 1u);
  auto follow = f.Expire(t0 + std::chrono::milliseconds(1000));
  ASSERT_EQ(follow.size(), 1u);
  EXPECT_EQ(follow[0].count, 299u);
}

TEST(FolderCaller, DifferentProgramsUsersContainersOrPeersAreNeverMerged) {
  Folder f(std::chrono::milliseconds(1000));
  const auto t0 = Folder::SteadyTime{};
  Hit forwarded_a = LocalHit("", -1, 1);
  forwarded_a.hook = "prerouting";
  forwarded_a.src = "10.200.2.2:1234";
  Hit forwarded_b = forwarded_a;
  forwarded_b.src = "10.200.2.3:1234";
  Hit unattributed = LocalHit("", 1000, 9);
  const Hit distinct[] = {LocalHit("/usr/bin/curl", 1000, 1), LocalHit("/usr/bin/python3", 1000, 2),
                          LocalHit("/usr/bin/curl", 0, 3), LocalHit("/usr/bin/curl", 1000, 4, "docker://abc"),
                          forwarded_a, forwarded_b, unattributed};
  for (const Hit& hit : distinct) EXPECT_TRUE(f.Offer(hit, t0)) << Folder::CallerIdentity(hit);
  EXPECT_EQ(f.size(), std::size(distinct));
}

}  // namespace
}  // namespace nfq::alerting
