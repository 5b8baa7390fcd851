#include "sensor/doorbell.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "sensor/spsc_ring.h"

namespace nfq::sensor {
namespace {

// The consumer sleeps (without a timeout) only after arming the doorbell and finding the
// ring empty; a lost wake-up would hang this test instead of finishing.
TEST(Doorbell, NoWakeUpIsLostBetweenTheLastLookAndTheSleep) {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  Doorbell doorbell(fd);
  SpscRing<int> ring(8);
  constexpr int kItems = 200000;
  uint64_t sleeps = 0;
  std::thread consumer([&] {
    int received = 0;
    while (received < kItems) {
      while (ring.TryPop()) ++received;
      if (received == kItems) break;
      doorbell.PrepareToSleep();
      if (ring.Empty()) {
        pollfd pfd{fd, POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 10000), 1) << "lost wake-up after " << received << " items";
        uint64_t value;
        ASSERT_EQ(read(fd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
        ++sleeps;
      }
      doorbell.Awake();
    }
  });
  for (int i = 0; i < kItems; ++i) {
    while (!ring.TryPush(int{i})) std::this_thread::yield();
    doorbell.Ring();
  }
  consumer.join();
  close(fd);
  EXPECT_LE(sleeps, static_cast<uint64_t>(kItems));
}

TEST(Doorbell, RingsOnlyASleepingConsumer) {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  Doorbell doorbell(fd);
  uint64_t value = 0;
  doorbell.Ring();  // nobody sleeping: no write
  EXPECT_LT(read(fd, &value, sizeof value), 0);
  doorbell.PrepareToSleep();
  doorbell.Ring();
  doorbell.Ring();  // one write per sleep
  ASSERT_EQ(read(fd, &value, sizeof value), static_cast<ssize_t>(sizeof value));
  EXPECT_EQ(value, 1u);
  close(fd);
}

}  // namespace
}  // namespace nfq::sensor
