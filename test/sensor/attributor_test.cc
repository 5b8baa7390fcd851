#include "sensor/attributor.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>

#include "alerting/file_util.h"

namespace nfq::sensor {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

FlowKey Key(uint16_t port) {
  FlowKey key;
  key.src = {10, 0, 0, 2};
  key.dst = {169, 254, 169, 254};
  key.src_port = port;
  key.dst_port = 80;
  return key;
}

Attribution Resolved(int32_t pid) {
  Attribution a;
  a.status = AttributionStatus::kResolved;
  a.process.pid = pid;
  a.process.comm = "curl";
  return a;
}

TEST(Attributor, RequestThenLookup) {
  Attributor attributor({}, [](const FlowKey& key, int64_t uid) {
    EXPECT_EQ(uid, 1000);
    return Resolved(key.src_port);
  });
  ASSERT_TRUE(attributor.Request(Key(40000), 1000));
  attributor.Wake();
  const Attribution a = attributor.Lookup(Key(40000), Clock::now() + 2s);
  EXPECT_EQ(a.status, AttributionStatus::kResolved);
  EXPECT_EQ(a.process.pid, 40000);
  EXPECT_EQ(attributor.counters().requested, 1u);
  EXPECT_EQ(attributor.counters().resolved, 1u);
}

TEST(Attributor, SlowResolutionTimesOutAtTheDeadline) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Attributor attributor({}, [released](const FlowKey&, int64_t) {
    released.wait();
    return Resolved(1);
  });
  attributor.Request(Key(1), -1);
  attributor.Wake();
  const auto start = Clock::now();
  const Attribution a = attributor.Lookup(Key(1), start + 50ms);
  const auto waited = Clock::now() - start;
  EXPECT_EQ(a.status, AttributionStatus::kTimeout);
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 1s);
  EXPECT_EQ(attributor.counters().timeouts, 1u);
  release.set_value();
  // Once resolved, the answer is there for the next hit of the flow.
  EXPECT_EQ(attributor.Lookup(Key(1), Clock::now() + 2s).status, AttributionStatus::kResolved);
}

TEST(Attributor, FullRingDropsAndCounts) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  AttributorConfig config;
  config.request_cap = 2;
  Attributor attributor(config, [released](const FlowKey& key, int64_t) {
    released.wait();
    return Resolved(key.src_port);
  });
  // The worker takes one and blocks on it; the ring holds two more.
  size_t accepted = 0;
  for (uint16_t port = 1; port <= 10; ++port)
    accepted += attributor.Request(Key(port), -1) ? 1u : 0u;
  attributor.Wake();
  EXPECT_LE(accepted, 3u);
  EXPECT_EQ(attributor.counters().dropped_at_cap, 10u - accepted);
  release.set_value();
}

TEST(Attributor, NeverRequestedFlowIsResolvedLate) {
  Attributor attributor({}, [](const FlowKey& key, int64_t) { return Resolved(key.src_port); });
  EXPECT_EQ(attributor.Lookup(Key(7), Clock::now() + 2s).process.pid, 7);
}

TEST(Attributor, ResultsAreCapped) {
  AttributorConfig config;
  config.result_cap = 4;
  Attributor attributor(config, [](const FlowKey& key, int64_t) { return Resolved(key.src_port); });
  for (uint16_t port = 1; port <= 20; ++port) {
    attributor.Request(Key(port), -1);
    attributor.Wake();
    ASSERT_EQ(attributor.Lookup(Key(port), Clock::now() + 2s).status, AttributionStatus::kResolved);
  }
  EXPECT_EQ(attributor.counters().evicted, 16u);
}

TEST(Attributor, NotFoundIsAnAnswerToo) {
  Attributor attributor({}, [](const FlowKey&, int64_t) {
    return Attribution{AttributionStatus::kNotFound, {}};
  });
  attributor.Request(Key(3), -1);
  attributor.Wake();
  EXPECT_EQ(attributor.Lookup(Key(3), Clock::now() + 2s).status, AttributionStatus::kNotFound);
  EXPECT_EQ(attributor.counters().not_found, 1u);
  EXPECT_EQ(attributor.counters().timeouts, 0u);
}

// The real resolver: a loopback connection of this test resolves to this process.
TEST(Attributor, DefaultResolverFindsThisProcess) {
  alerting::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  alerting::UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
  sockaddr_in local{};
  socklen_t local_len = sizeof local;
  ::getsockname(client.get(), reinterpret_cast<sockaddr*>(&local), &local_len);
  FlowKey key;
  std::memcpy(key.src.data(), &local.sin_addr, 4);
  std::memcpy(key.dst.data(), &addr.sin_addr, 4);
  key.src_port = ntohs(local.sin_port);
  key.dst_port = ntohs(addr.sin_port);

  Attributor attributor({});
  attributor.Request(key, ::geteuid());
  attributor.Wake();
  const Attribution a = attributor.Lookup(key, Clock::now() + 2s);
  ASSERT_EQ(a.status, AttributionStatus::kResolved) << AttributionStatusName(a.status);
  EXPECT_EQ(a.process.pid, ::getpid());
  EXPECT_NE(a.process.exe.find("sensor_test"), std::string::npos);
}

}  // namespace
}  // namespace nfq::sensor
