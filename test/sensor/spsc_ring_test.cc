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
