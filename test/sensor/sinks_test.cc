#include "sensor/sinks.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "alerting/registration.h"
#include "sensor/options.h"

namespace nfq::sensor {
namespace {

void Quiet(std::string_view) {}

class SinksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/nfq-sinks-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    options_.state_dir = dir_ + "/state";
    options_.stdout_events = false;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  Options options_;
};

TEST_F(SinksTest, NoFactoryAndNoTokenIsStdoutOnly) {
  std::string error;
  EXPECT_NE(MakeSinks(options_, Quiet, &error), nullptr) << error;
}

// With a stored token the console is configured even without a factory URL: a broken
// console setup (here an unreadable CA bundle) must stop the start, not drop the console.
TEST_F(SinksTest, StoredTokenWithAnUnreadableCaFileFailsTheStart) {
  std::filesystem::create_directories(options_.state_dir);
  std::string error;
  ASSERT_TRUE(alerting::SaveTokenUrl(options_.state_dir, "https://f.example/factory",
                                     "https://t.example/t/abc", &error))
      << error;
  options_.ca_file = dir_ + "/missing.pem";
  EXPECT_EQ(MakeSinks(options_, Quiet, &error), nullptr);
  EXPECT_NE(error.find("missing.pem"), std::string::npos) << error;
  EXPECT_EQ(error.find("t.example"), std::string::npos) << "the token URL is a secret: " << error;
}

}  // namespace
}  // namespace nfq::sensor
