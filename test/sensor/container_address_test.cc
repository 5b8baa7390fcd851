#include "sensor/container_address.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace nfq::sensor {
namespace {

const std::string kFixtureRoot =
    (std::filesystem::path(__FILE__).parent_path() / "fixtures" / "runtime_root").string();

TEST(ContainerAddressMap, ReadsCniAndDockerStateFiles) {
  ContainerAddressMap map(kFixtureRoot);
  EXPECT_EQ(map.Find("10.88.0.5"), "cni://8b1f0e2d3c4a5b6978695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d");
  EXPECT_EQ(map.Find("fd42:2::7"), "cni://c0ffee0000000000000000000000000000000000000000000000000000000001");
  EXPECT_EQ(map.Find("172.17.0.2"), "docker://3f2a9c1e5b7d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718");
  EXPECT_EQ(map.Find("fd00:dead::2"), "docker://3f2a9c1e5b7d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718");
  // The plugin's own files, a file that holds no id, a config that is not JSON: ignored.
  EXPECT_EQ(map.Find("10.89.0.9"), "");
  EXPECT_EQ(map.Find("10.0.0.1"), "");
  EXPECT_EQ(map.size(), 4u);
}

TEST(ContainerAddressMap, NoRuntimeStateIsNoContainer) {
  ContainerAddressMap map("/nonexistent-root");
  EXPECT_EQ(map.Find("10.88.0.5"), "");
}

TEST(ContainerAddressMap, RereadsAfterTheRefreshIntervalOnly) {
  char pattern[] = "/tmp/nfq-ctr-addr-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::filesystem::path root = pattern;
  const auto dir = root / "var/lib/cni/networks/n";
  std::filesystem::create_directories(dir);
  ContainerAddressMap map(root.string(), std::chrono::seconds(10), 1);
  const auto t0 = ContainerAddressMap::Clock::now();
  EXPECT_EQ(map.Find("10.1.0.2", t0), "");
  std::ofstream(dir / "10.1.0.2") << "abcdef0123456789\n";
  std::ofstream(dir / "10.1.0.3") << "abcdef0123456780\n";
  EXPECT_EQ(map.Find("10.1.0.2", t0 + std::chrono::seconds(5)), "") << "cached";
  const std::string later = map.Find("10.1.0.2", t0 + std::chrono::seconds(11));
  const std::string other = map.Find("10.1.0.3", t0 + std::chrono::seconds(11));
  EXPECT_EQ(map.size(), 1u) << "the table holds max_entries";
  EXPECT_TRUE(later == "cni://abcdef0123456789" || other == "cni://abcdef0123456780");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace nfq::sensor
