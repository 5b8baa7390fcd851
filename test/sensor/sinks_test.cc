#include "sensor/sinks.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "alerting/hit.h"
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

// The event log through a file: lines written so far, and the counts they carry.
class EventLogTest : public SinksTest {
 protected:
  void SetUp() override {
    SinksTest::SetUp();
    options_.stdout_events = true;
    options_.log_format = LogFormat::kJson;
    // A console is configured (a stored token; its port on loopback is closed and delivery
    // only retries): the event log folds only beside a console, whose journal keeps the
    // counts of open windows.
    std::filesystem::create_directories(options_.state_dir);
    std::string error;
    ASSERT_TRUE(alerting::SaveTokenUrl(options_.state_dir, "http://127.0.0.1:9/factory",
                                       "http://127.0.0.1:9/token", &error))
        << error;
    options_.imds_url.clear();
    path_ = dir_ + "/events.jsonl";
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override {
    sinks_.reset();
    ::close(fd_);
    SinksTest::TearDown();
  }
  void Make() {
    std::string error;
    sinks_ = MakeSinks(options_, Quiet, &error, fd_);
    ASSERT_NE(sinks_, nullptr) << error;
  }
  static alerting::Hit RequestFrom(uint16_t port, const std::string& path = "/latest/meta-data/") {
    alerting::Hit h;
    h.method = "GET";
    h.url = h.norm = path;
    h.imds = "v1";
    h.src = "127.0.0.1:" + std::to_string(port);
    h.hook = "output";
    h.exe = "/usr/bin/curl";
    h.uid = 1000;
    h.first = h.last = alerting::Hit::Clock::now();
    return h;
  }
  std::vector<uint64_t> LineCounts() const {
    std::ifstream in(path_);
    std::vector<uint64_t> counts;
    static const std::regex kCount("\"count\":([0-9]+)");
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      EXPECT_TRUE(std::regex_search(line, m, kCount)) << line;
      counts.push_back(m.empty() ? 0 : std::stoull(m[1]));
    }
    return counts;
  }

  const std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  std::string path_;
  int fd_ = -1;
  std::unique_ptr<SinkSet> sinks_;
};

using std::chrono::seconds;
using Counts = std::vector<uint64_t>;

TEST_F(EventLogTest, FoldsAsTheConsoleDoesByDefault) {
  Make();
  for (uint16_t i = 0; i < 5; ++i) sinks_->Publish(RequestFrom(40000 + i), t0_ + seconds(i));
  sinks_->Tick(t0_ + seconds(5));
  EXPECT_EQ(LineCounts(), Counts({1}));  // the first at once, the rest wait for the window
  sinks_->Tick(t0_ + seconds(59));
  EXPECT_EQ(LineCounts(), Counts({1}));
  sinks_->Tick(t0_ + seconds(60));
  EXPECT_EQ(LineCounts(), Counts({1, 4}));
  EXPECT_NE(sinks_->FormatCounters().find("stdout.folded=4"), std::string::npos)
      << sinks_->FormatCounters();
}

TEST_F(EventLogTest, AHitAfterItsWindowClosedOpensANewOneEvenBeforeTheTick) {
  Make();
  sinks_->Publish(RequestFrom(1), t0_);
  sinks_->Publish(RequestFrom(2), t0_ + seconds(1));
  // No Tick in between: Publish itself lets the closed window go first.
  sinks_->Publish(RequestFrom(3), t0_ + seconds(61));
  sinks_->Publish(RequestFrom(4), t0_ + seconds(62));
  sinks_->Publish(RequestFrom(5), t0_ + seconds(63));
  sinks_->Tick(t0_ + seconds(63));
  EXPECT_EQ(LineCounts(), Counts({1, 1, 1}));
  sinks_->Flush();
  EXPECT_EQ(LineCounts(), Counts({1, 1, 1, 2}));
}

TEST_F(EventLogTest, FlushWritesEveryPendingFollowUp) {
  Make();
  for (uint16_t i = 0; i < 3; ++i) {
    sinks_->Publish(RequestFrom(i, "/a"), t0_);
    sinks_->Publish(RequestFrom(i, "/b"), t0_);
  }
  sinks_->Flush();
  EXPECT_EQ(LineCounts(), Counts({1, 1, 2, 2}));
}

// Without a console stdout is the only record of a hit: a line per request, none of them
// waiting in memory for a window that a kill -9 would lose.
TEST_F(EventLogTest, StdoutAloneNeverFolds) {
  std::filesystem::remove_all(options_.state_dir);
  Make();
  for (uint16_t i = 0; i < 4; ++i) sinks_->Publish(RequestFrom(i), t0_);
  sinks_->Tick(t0_);
  EXPECT_EQ(LineCounts(), Counts({1, 1, 1, 1}));
  EXPECT_EQ(sinks_->FormatCounters().find("stdout.folded"), std::string::npos);
}

TEST_F(EventLogTest, EveryRequestWithLogEveryRequestOrNoFoldWindow) {
  for (const bool every : {true, false}) {
    SCOPED_TRACE(every ? "--log-every-request" : "--fold-window 0");
    ASSERT_EQ(::ftruncate(fd_, 0), 0);
    ASSERT_EQ(::lseek(fd_, 0, SEEK_SET), 0);
    options_.log_every_request = every;
    options_.fold_window_seconds = every ? 60 : 0;
    Make();
    for (uint16_t i = 0; i < 4; ++i) sinks_->Publish(RequestFrom(i), t0_);
    sinks_->Tick(t0_);
    EXPECT_EQ(LineCounts(), Counts({1, 1, 1, 1}));
    EXPECT_EQ(sinks_->FormatCounters().find("stdout.folded"), std::string::npos);
    sinks_.reset();
  }
}

}  // namespace
}  // namespace nfq::sensor
