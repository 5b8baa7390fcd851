#include "sensor/spsc_ring.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace nfq::sensor {
namespace {

TEST(SpscRingTest, FullRingRefusesWithoutBlocking) {
  SpscRing<std::string> ring(3);  // rounded up to 4
  EXPECT_EQ(ring.capacity(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(ring.TryPush(std::to_string(i)));
  std::string extra = "kept";
  EXPECT_FALSE(ring.TryPush(std::move(extra)));
  EXPECT_EQ(extra, "kept");
  EXPECT_EQ(*ring.TryPop(), "0");
  EXPECT_TRUE(ring.TryPush("4"));
  for (const char* expected : {"1", "2", "3", "4"}) EXPECT_EQ(*ring.TryPop(), expected);
  EXPECT_FALSE(ring.TryPop());
  EXPECT_TRUE(ring.Empty());
}

TEST(SpscRingTest, InPlaceSlotsKeepWhatTheLastValueLeft) {
  SpscRing<std::string> ring(2);
  std::string* slot = ring.BeginPush();
  ASSERT_NE(slot, nullptr);
  slot->assign(200, 'a');  // heap-allocated
  ring.CommitPush();
  ASSERT_NE(ring.BeginPush(), nullptr);
  ring.BeginPush()->assign("b");
  ring.CommitPush();
  EXPECT_EQ(ring.BeginPush(), nullptr);  // full: nothing to fill
  ASSERT_NE(ring.Front(), nullptr);
  EXPECT_EQ(ring.Front()->size(), 200u);
  const char* buffer = ring.Front()->data();
  ring.PopFront();
  EXPECT_EQ(*ring.Front(), "b");
  ring.PopFront();
  EXPECT_EQ(ring.Front(), nullptr);
  EXPECT_TRUE(ring.Empty());
  // The third push lands in the first slot, over its old value: same buffer, no allocation.
  slot = ring.BeginPush();
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->size(), 200u);
  slot->assign("c");
  EXPECT_EQ(slot->data(), buffer);
  ring.CommitPush();
  EXPECT_EQ(*ring.TryPop(), "c");
}

TEST(SpscRingTest, TwoThreadsSeeEveryItemInOrderInPlace) {
  SpscRing<uint64_t> ring(64);
  constexpr uint64_t kItems = 200000;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kItems;) {
      if (uint64_t* slot = ring.BeginPush()) {
        *slot = i++;
        ring.CommitPush();
      }
    }
  });
  uint64_t expected = 0;
  while (expected < kItems) {
    if (const uint64_t* v = ring.Front()) {
      ASSERT_EQ(*v, expected);
      ring.PopFront();
      ++expected;
    }
  }
  producer.join();
}

TEST(SpscRingTest, TwoThreadsSeeEveryItemInOrder) {
  SpscRing<uint64_t> ring(64);
  constexpr uint64_t kItems = 200000;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kItems;) {
      if (ring.TryPush(uint64_t{i})) ++i;
    }
  });
  uint64_t expected = 0;
  while (expected < kItems) {
    if (auto v = ring.TryPop()) {
      ASSERT_EQ(*v, expected);
      ++expected;
    }
  }
  producer.join();
}

}  // namespace
}  // namespace nfq::sensor
