#include "alerting/console_sink.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "alerting/hit_codec.h"
#include "alerting/hit_format.h"
#include "alerting/registration.h"
#include "alerting/spool.h"
#include "test/alerting/test_util.h"

namespace nfq::alerting {
namespace {

using namespace std::chrono_literals;
using testing::LogCapture;
using testing::MockConsole;
using testing::TempDir;
using testing::WithFileSizeLimit;
using testing::WaitFor;

Hit Numbered(int i) {
  Hit h;
  h.url = "/latest/meta-data/n/" + std::to_string(i);
  h.norm = h.url;
  h.method = "GET";
  h.imds = "v1";
  h.src = "10.0.0.1:" + std::to_string(1000 + i);
  h.first = h.last = Hit::Clock::now();
  return h;
}

// n identical requests from one caller, each from its own source port: they fold.
void PublishSameRequest(ConsoleSink& sink, int n, int first_port = 30000) {
  for (int i = 0; i < n; ++i) {
    Hit h = Numbered(0);
    h.src = "10.0.0.9:" + std::to_string(first_port + i);
    sink.Publish(h);
  }
}


// The requests a start on `state_dir` would find: spool.log's undelivered records plus the
// fold journal's counts (read from copies: the dir may be in use by a sink).
uint64_t RequestsLeftIn(const std::string& state_dir) {
  TempDir copy;
  for (const char* f : {"spool.log", "spool.ack", "folds.pending"}) {
    if (std::filesystem::exists(state_dir + "/" + f)) {
      std::filesystem::copy_file(state_dir + "/" + f, copy / f);
    }
  }
  const std::string dir = copy.path();
  uint64_t n = 0;
  std::string error;
  auto spool = Spool::Open({dir, 64ull << 20, {}}, &error);
  EXPECT_TRUE(spool) << error;
  while (spool) {
    auto r = spool->Front();
    if (!r) break;
    n += r->hit.count;
    spool->Ack(r->id);
  }
  std::ifstream in(dir + "/folds.pending", std::ios::binary);
  const std::string journal((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bool rest_bad = false;
  for (auto payload : ParseFrames(journal, &rest_bad)) {
    if (auto h = DecodeHit(payload)) n += h->count;
  }
  return n;
}

class ConsoleSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = std::make_unique<MockConsole>(records_.path());
    ASSERT_TRUE(mock_->Start());
  }

  ConsoleSink::Config MakeConfig(const std::string& factory_name = "a") {
    ConsoleSink::Config c;
    c.factory_url = mock_->factory_url(factory_name);
    c.state_dir = state_.path() + "/state";
    c.instance_name = "web-1";
    c.fold_window = 0ms;
    c.imds_base_url = mock_->base_url();
    c.imds_timeout = 1000ms;
    c.connect_timeout = 1000ms;
    c.request_timeout = 2000ms;
    c.backoff_initial = 20ms;
    c.backoff_max = 100ms;
    c.user_agent = "nfq-apeeper/9.9.9";
    c.log = log_.fn();
    return c;
  }

  // Windows that stay open for the test, the fold journal written within 10 ms.
  ConsoleSink::Config LongFoldConfig() {
    auto c = MakeConfig();
    c.fold_window = 60s;
    c.sync_interval = 10ms;
    return c;
  }

  // Spools one 5 KB hit and returns spool.log's size once it is written: a file size limit
  // a little above it refuses the spool's next writes and still lets the small journal in.
  uint64_t SpoolOneBigHit(ConsoleSink& sink, const ConsoleSink::Config& c) {
    Hit big = Numbered(100);
    big.cmdline.assign(5000, 'c');
    sink.Publish(big);
    sink.EndBatch();
    const std::string log = c.state_dir + "/spool.log";
    EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(log) && std::filesystem::file_size(log) > 0; }, 2s));
    return std::filesystem::file_size(log);
  }

  std::unique_ptr<ConsoleSink> MakeSink(ConsoleSink::Config c) {
    std::string error;
    auto s = ConsoleSink::Create(std::move(c), &error);
    EXPECT_TRUE(s) << error;
    return s;
  }

  // url -> how many times the console recorded it.
  std::map<std::string, int> HitUrls() const {
    std::map<std::string, int> m;
    for (const auto& h : mock_->Hits()) m[h["query"]["url"].get<std::string>()]++;
    return m;
  }

  void ExpectEachOnce(int n) {
    const auto urls = HitUrls();
    EXPECT_EQ(urls.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) EXPECT_EQ(urls.count(Numbered(i).url) ? urls.at(Numbered(i).url) : 0, 1) << i;
  }

  void ExpectNoSecretsLogged() {
    const std::string all = log_.joined();
    EXPECT_EQ(all.find("/factory"), std::string::npos) << all;
    EXPECT_EQ(all.find("/t/"), std::string::npos) << all;
    EXPECT_EQ(all.find("mock-imds-token-value"), std::string::npos) << all;
  }

  void PublishPastTheCapInOrder(size_t handoff_cap, uint64_t handoff_cap_bytes);

  // Starts a sink, registers, and leaves its delivery thread inside a request to a hanging
  // console (for the request timeout of c) for one first record.
  std::unique_ptr<ConsoleSink> StartWithTheWorkerInARequest(const ConsoleSink::Config& c) {
    auto sink = MakeSink(c);
    sink->Start();
    EXPECT_TRUE(WaitFor([&] { return sink->counters().registered; }));
    EXPECT_TRUE(mock_->SetMode("hang"));
    sink->Publish(Numbered(0));
    sink->EndBatch();
    EXPECT_TRUE(WaitFor([&] { return sink->counters().spooled > 0; }));
    std::this_thread::sleep_for(300ms);  // the worker is inside the request for record 0
    return sink;
  }

  TempDir records_;
  TempDir state_;
  LogCapture log_;
  std::unique_ptr<MockConsole> mock_;
};

TEST_F(ConsoleSinkTest, RegistersOnceAcrossRestartsWithInstanceFacts) {
  {
    auto sink = MakeSink(MakeConfig());
    sink->Start();  // registration happens now, not at the first hit
    ASSERT_TRUE(WaitFor([&] { return mock_->Regs().size() == 1; }));
    sink->Publish(Numbered(0));
    ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 1; }));
  }
  {
    auto sink = MakeSink(MakeConfig());
    EXPECT_TRUE(sink->counters().registered);
    sink->Start();
    sink->Publish(Numbered(1));
    ASSERT_TRUE(WaitFor([&] { return mock_->Hits().size() == 2; })) << log_.joined() << ConsoleSink::FormatCounters(sink->counters());
    EXPECT_EQ(sink->counters().registrations, 0u);
  }
  const auto regs = mock_->Regs();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(regs[0]["form"]["instanceid"], "i-0mock1234");
  EXPECT_EQ(regs[0]["form"]["region"], "us-east-1a");
  EXPECT_EQ(regs[0]["form"]["instancename"], "web-1");
  EXPECT_NE(regs[0]["form"]["memo"].get<std::string>().find("web-1"), std::string::npos);
  EXPECT_EQ(regs[0]["ua"], "nfq-apeeper/9.9.9");
  EXPECT_EQ(regs[0]["ctype"], "application/x-www-form-urlencoded");
  for (const auto& i : mock_->Imds()) EXPECT_EQ(i["ua"], "nfq-apeeper/9.9.9");
  ASSERT_GE(mock_->Imds().size(), 3u);
  EXPECT_EQ(mock_->Imds()[0]["method"], "PUT");
  for (const auto& h : mock_->Hits()) EXPECT_EQ(h["ua"], "nfq-apeeper/9.9.9");

  const std::string state = state_.path() + "/state";
  struct stat st{};
  ASSERT_EQ(stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((state + "/token.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto token = testing::ReadJsonLines(state + "/token.json");  // pretty-printed: no lines
  std::ifstream in(state + "/token.json");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.find("/factory"), std::string::npos);
  EXPECT_NE(text.find(Sha256Hex(mock_->factory_url("a"))), std::string::npos);
  ExpectNoSecretsLogged();
}

TEST_F(ConsoleSinkTest, DifferentFactoryUrlRegistersAnew) {
  {
    auto sink = MakeSink(MakeConfig("a"));
    sink->Start();
    ASSERT_TRUE(WaitFor([&] { return sink->counters().registered; }));
  }
  auto sink = MakeSink(MakeConfig("b"));
  EXPECT_FALSE(sink->counters().registered);
  sink->Start();
  sink->Publish(Numbered(0));
  ASSERT_TRUE(WaitFor([&] { return mock_->Hits().size() == 1; }));
  const auto regs = mock_->Regs();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1]["path"], "/factory/b");
  EXPECT_EQ(mock_->Hits()[0]["path"], "/t/1/post.jsp");  // the new token
}

TEST_F(ConsoleSinkTest, HitCarriesEveryQueryFieldExactly) {
  auto sink = MakeSink(MakeConfig());
  sink->Start();
  Hit h = Numbered(0);
  h.url = "/latest/meta-data/iam/security-credentials/../x?a=b&c=d%20e;\"'<>";
  h.norm = "/latest/meta-data/iam/x";
  h.method = "PUT";
  h.imds = "v2";
  h.src = "[fd00::5]:43210";
  h.uid = 0;
  h.pid = 77;
  h.owner = "root";
  h.cmdline = "python3 -c import boto3; print('é')";
  h.flags = "dotdot,encoded";
  h.first = Hit::Clock::time_point(std::chrono::milliseconds(1796324400123));
  h.last = Hit::Clock::time_point(std::chrono::milliseconds(1796324400999));
  sink->Publish(h);
  ASSERT_TRUE(WaitFor([&] { return mock_->Hits().size() == 1; }));
  const auto q = mock_->Hits()[0]["query"];
  EXPECT_EQ(q["url"], h.url);
  EXPECT_EQ(q["norm"], h.norm);
  EXPECT_EQ(q["method"], "PUT");
  EXPECT_EQ(q["imds"], "v2");
  EXPECT_EQ(q["src"], "[fd00::5]:43210");
  EXPECT_EQ(q["uid"], "0");
  EXPECT_EQ(q["pid"], "77");
  EXPECT_EQ(q["owner"], "root");
  EXPECT_EQ(q["cmdline"], h.cmdline);
  EXPECT_EQ(q["count"], "1");
  EXPECT_EQ(q["first"], "2026-12-03T19:00:00.123Z");
  EXPECT_EQ(q["last"], "2026-12-03T19:00:00.999Z");
  EXPECT_EQ(q["flags"], "dotdot,encoded");
  EXPECT_EQ(q.size(), 13u);
}

TEST_F(ConsoleSinkTest, ThreeHundredIdenticalRequestsFoldToCountsSummingTo300) {
  auto c = MakeConfig();
  c.fold_window = 300ms;
  auto sink = MakeSink(c);
  sink->Start();
  PublishSameRequest(*sink, 300);
  auto sum = [&] {
    uint64_t s = 0;
    for (const auto& h : mock_->Hits()) s += std::stoull(h["query"]["count"].get<std::string>());
    return s;
  };
  ASSERT_TRUE(WaitFor([&] { return sum() == 300; }, 5s));
  EXPECT_EQ(mock_->Hits().size(), 2u);  // the first at once, then one follow-up
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(sum(), 300u);
  EXPECT_EQ(sink->counters().folded, 299u);
}

// kill -9 inside a fold window: what the dead daemon left on disk (spool.log and
// folds.pending, copied while it runs) brings the folded counts to the next start.
TEST_F(ConsoleSinkTest, FoldedCountsSurviveACrashInsideTheWindow) {
  const auto c = LongFoldConfig();
  auto sink = MakeSink(c);
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 0 && sink->counters().registered; }));
  PublishSameRequest(*sink, 40);
  const std::string journal = c.state_dir + "/folds.pending";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  std::this_thread::sleep_for(100ms);  // past a sync interval: the journal holds all 39
  const std::string crashed = state_.path() + "/crashed";
  std::filesystem::copy(c.state_dir, crashed, std::filesystem::copy_options::recursive);
  sink->Stop();
  EXPECT_FALSE(std::filesystem::exists(journal)) << "a clean stop spools the folds and empties the journal";

  auto again = MakeConfig();
  again.state_dir = crashed;
  auto restarted = MakeSink(again);
  EXPECT_FALSE(std::filesystem::exists(crashed + "/folds.pending"));
  EXPECT_NE(log_.joined().find("39 requests"), std::string::npos) << log_.joined();
  uint64_t spooled_requests = 0;
  // The restarted sink delivers what the crash left: the first hit (if it was still spooled)
  // and one follow-up counting the other 39.
  restarted->Start();
  ASSERT_TRUE(WaitFor([&] { return restarted->counters().spool_records == 0; }, 5s));
  for (const auto& h : mock_->Hits()) spooled_requests += std::stoull(h["query"]["count"].get<std::string>());
  // The first sink delivered the first hit (its follow-up stays in its own spool: it stopped
  // before delivering it); the crashed copy delivers the 39 (and the first hit again only if
  // it had not been acknowledged when the copy was taken).
  EXPECT_GE(spooled_requests, 1u + 39u);
  EXPECT_LE(spooled_requests, 2u + 39u);
}

// One sink per state dir; a check beside it (nfq-apeeper --check) reads but never writes:
// recovering the live journal there would count its folds twice.
TEST_F(ConsoleSinkTest, StateDirIsLockedAndCheckLeavesItAlone) {
  const auto c = LongFoldConfig();
  auto sink = MakeSink(c);
  sink->Start();
  PublishSameRequest(*sink, 5, 31000);
  const std::string journal = c.state_dir + "/folds.pending";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  const auto spool_size = std::filesystem::file_size(c.state_dir + "/spool.log");

  std::string error;
  EXPECT_EQ(ConsoleSink::Create(c, &error), nullptr);
  EXPECT_NE(error.find("in use by another nfq-apeeper"), std::string::npos) << error;

  EXPECT_TRUE(ConsoleSink::Check(c, &error)) << error;
  EXPECT_TRUE(std::filesystem::exists(journal));
  EXPECT_EQ(std::filesystem::file_size(c.state_dir + "/spool.log"), spool_size);
  sink->Stop();
  sink.reset();
  EXPECT_NE(MakeSink(c), nullptr) << "the lock goes with the sink";
}

TEST_F(ConsoleSinkTest, OutageThenRecoveryDeliversEachHitOnce) {
  auto sink = MakeSink(MakeConfig());
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registered; }));
  ASSERT_TRUE(mock_->SetMode("500"));
  for (int i = 0; i < 10; ++i) sink->Publish(Numbered(i));
  ASSERT_TRUE(WaitFor([&] { return sink->counters().failures >= 3; }));
  ASSERT_TRUE(mock_->SetMode("reset"));
  const auto f = sink->counters().failures;
  ASSERT_TRUE(WaitFor([&] { return sink->counters().failures >= f + 2; }));
  ASSERT_TRUE(mock_->SetMode("ok"));
  for (int i = 10; i < 20; ++i) sink->Publish(Numbered(i));
  ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 20; }));
  std::this_thread::sleep_for(200ms);
  ExpectEachOnce(20);
  const auto c = sink->counters();
  EXPECT_GT(c.retries, 0u);
  EXPECT_EQ(c.spool_records, 0u);
  EXPECT_NE(log_.joined().find("HTTP 500"), std::string::npos);
  EXPECT_NE(log_.joined().find("works again"), std::string::npos);
  ExpectNoSecretsLogged();
}

// A batch's records are on disk once EndBatch returns: what a kill -9 right after would
// leave (spool.log read through a copy, the state dir being locked by the sink).
TEST_F(ConsoleSinkTest, EndBatchPutsTheBatchsRecordsInTheSpoolFile) {
  auto sink = MakeSink(MakeConfig());  // not started: nothing delivers or syncs meanwhile
  const std::string log = state_.path() + "/state/spool.log";
  for (int i = 0; i < 5; ++i) sink->Publish(Numbered(i));
  EXPECT_EQ(std::filesystem::file_size(log), 0u);
  sink->EndBatch();
  TempDir copy;
  std::filesystem::copy_file(log, copy / "spool.log");
  std::string error;
  auto spool = Spool::Open({copy.path(), 64ull << 20, {}}, &error);
  ASSERT_TRUE(spool) << error;
  EXPECT_EQ(spool->stats().pending_records, 5u);
  EXPECT_EQ(sink->counters().spooled, 5u);
}

// A window that closes is spooled by the delivery thread and the journal rewritten without
// it: its follow-up must be in spool.log by then, or a kill -9 in between (an outage: no
// delivery reads the spool) finds the count in neither file (docs/alerts.md: "more, never
// less"). Found in review, when spool appends began to gather in a batch.
TEST_F(ConsoleSinkTest, AClosedWindowIsInTheSpoolFileOnceTheJournalForgetsIt) {
  ASSERT_TRUE(mock_->SetMode("500"));  // registration fails: the worker never calls Front
  auto c = MakeConfig();
  c.fold_window = 300ms;
  c.sync_interval = 3s;  // widens the gap the 50 ms default leaves
  auto sink = MakeSink(c);
  sink->Start();
  PublishSameRequest(*sink, 5, 32000);  // 1 spooled now, 4 folded
  sink->EndBatch();                     // as SinkSet::Tick does
  const std::string journal = c.state_dir + "/folds.pending";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  // The window closes: the follow-up (count 4) is spooled and the journal removed.
  ASSERT_TRUE(WaitFor([&] { return !std::filesystem::exists(journal); }, 2s));
  // What a kill -9 now would leave.
  TempDir crashed;
  std::filesystem::copy_file(c.state_dir + "/spool.log", crashed / "spool.log");
  std::string error;
  auto spool = Spool::Open({crashed.path(), 64ull << 20, {}}, &error);
  ASSERT_TRUE(spool) << error;
  uint64_t requests = 0;
  while (auto r = spool->Front()) {
    requests += r->hit.count;
    spool->Ack(r->id);
  }
  EXPECT_EQ(requests, 5u) << "the folded requests are in neither folds.pending nor spool.log";
  sink->Stop();
}

TEST_F(ConsoleSinkTest, RestartMidOutageDeliversTheRestOnce) {
  {
    auto sink = MakeSink(MakeConfig());
    sink->Start();
    for (int i = 0; i < 5; ++i) sink->Publish(Numbered(i));
    ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 5; }));
    mock_->Stop();  // console down: connection refused
    for (int i = 5; i < 15; ++i) sink->Publish(Numbered(i));
    ASSERT_TRUE(WaitFor([&] { return sink->counters().failures >= 2; }));
    sink->Stop();
  }
  ASSERT_TRUE(mock_->Start());  // same port
  auto sink = MakeSink(MakeConfig());
  EXPECT_EQ(sink->counters().spool_records, 10u);
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 10; }));
  std::this_thread::sleep_for(200ms);
  ExpectEachOnce(15);
}

TEST_F(ConsoleSinkTest, TornSpoolTailBetweenLifetimesIsSkippedAndReported) {
  ASSERT_TRUE(mock_->SetMode("500"));
  {
    auto sink = MakeSink(MakeConfig());
    sink->Start();
    for (int i = 0; i < 5; ++i) sink->Publish(Numbered(i));
    sink->Stop();
  }
  const std::string log = state_.path() + "/state/spool.log";
  std::filesystem::resize_file(log, std::filesystem::file_size(log) - 5);
  ASSERT_TRUE(mock_->SetMode("ok"));
  auto sink = MakeSink(MakeConfig());
  EXPECT_EQ(sink->counters().spool_corrupt, 1u);
  EXPECT_NE(log_.joined().find("torn"), std::string::npos);
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 4; }));
  ExpectEachOnce(4);
}

TEST_F(ConsoleSinkTest, SpoolCapSummarisesDuringALongOutage) {
  ASSERT_TRUE(mock_->SetMode("500"));
  auto c = MakeConfig();
  c.spool_cap_bytes = 8192;
  auto sink = MakeSink(c);
  sink->Start();
  for (int i = 0; i < 300; ++i) sink->Publish(Numbered(i));
  // Past the cap Publish hands hits over and the worker takes them in.
  ASSERT_TRUE(WaitFor([&] { return sink->counters().published == 300; }));
  EXPECT_GT(sink->counters().spool_summarised, 0u);
  EXPECT_LE(sink->counters().spool_bytes, 8192u + 1024u);
  ASSERT_TRUE(mock_->SetMode("ok"));
  uint64_t sum = 0;
  ASSERT_TRUE(WaitFor([&] {
    sum = 0;
    for (const auto& h : mock_->Hits()) sum += std::stoull(h["query"]["count"].get<std::string>());
    return sum == 300;
  }));
  bool summary = false;
  for (const auto& h : mock_->Hits()) {
    summary |= h["query"]["flags"].get<std::string>().find("spool-overflow") != std::string::npos;
  }
  EXPECT_TRUE(summary);
}

// A hit of about 1.1 KB: a few hundred pass a test spool's cap of 256 KiB.
Hit Large(int i) {
  Hit h = Numbered(i);
  h.cmdline.assign(1000, 'c');
  return h;
}

// At the cap the rewrite is the worker's: Publish hands hits over instead of taking them in
// (so it never waits for a rewrite while the hand-off has room), and order is kept.
void ConsoleSinkTest::PublishPastTheCapInOrder(size_t handoff_cap, uint64_t handoff_cap_bytes) {
  ASSERT_TRUE(mock_->SetMode("500"));
  auto c = MakeConfig();
  c.spool_cap_bytes = 256 * 1024;  // four times the hand-off margin, as at 64 MiB
  c.handoff_cap = handoff_cap;
  c.handoff_cap_bytes = handoff_cap_bytes;
  auto sink = MakeSink(c);
  sink->Start();
  constexpr int kHits = 2000;  // about 2.2 MB: the cap is reached many times
  for (int i = 0; i < kHits; ++i) sink->Publish(Large(i));
  ASSERT_TRUE(WaitFor([&] { return sink->counters().published == kHits; }));
  const auto counters = sink->counters();
  EXPECT_GT(counters.handed_off, 0u);
  EXPECT_GT(counters.spool_summaries, 0u);
  // A hand-off that is always full (no room by count or by bytes): Publish then takes the
  // hits in itself, the rewrite with them.
  if (handoff_cap == 0 || handoff_cap_bytes < 4096) {
    EXPECT_GT(counters.handoff_waits, 0u);
  }
  EXPECT_NE(ConsoleSink::FormatCounters(sink->RecentCounters()).find("handed_off="), std::string::npos);
  ASSERT_TRUE(mock_->SetMode("ok"));
  uint64_t sum = 0;
  ASSERT_TRUE(WaitFor([&] {
    sum = 0;
    for (const auto& h : mock_->Hits()) sum += std::stoull(h["query"]["count"].get<std::string>());
    return sum == kHits;
  }, 20s)) << sum;
  int last = -1;
  int in_order = 0;
  const std::string prefix = "/latest/meta-data/n/";
  for (const auto& h : mock_->Hits()) {
    if (h["query"]["flags"].get<std::string>().find("spool-overflow") != std::string::npos) continue;
    const int n = std::stoi(h["query"]["url"].get<std::string>().substr(prefix.size()));
    EXPECT_GT(n, last);
    last = n;
    in_order++;
  }
  EXPECT_EQ(last, kHits - 1);
  EXPECT_GT(in_order, 50);  // the newest records (about half the cap), beyond the summaries
}

TEST_F(ConsoleSinkTest, AtTheCapHitsAreHandedToTheWorkerInOrder) {
  PublishPastTheCapInOrder(16384, 8ull << 20);
}

TEST_F(ConsoleSinkTest, AFullHandOffMakesPublishTakeHitsInItself) { PublishPastTheCapInOrder(0, 8ull << 20); }

TEST_F(ConsoleSinkTest, AHandOffFullOfBytesMakesPublishTakeHitsInItself) {
  PublishPastTheCapInOrder(16384, 2048);  // not even one large hit fits beside another
}

// While the delivery thread waits in a console request (a hanging console: up to the
// request timeout) the keeper does the cap's rewrites and takes the handed-off hits in: they
// reach the disk at once, and no rewrite runs on the caller's thread.
TEST_F(ConsoleSinkTest, AtTheCapTheKeeperRewritesWhileTheWorkerWaitsForTheConsole) {
  auto c = MakeConfig();
  c.spool_cap_bytes = 256 * 1024;
  c.request_timeout = 10000ms;
  c.stop_grace = 10ms;
  const auto caller = std::this_thread::get_id();
  std::atomic<int> rewrites{0}, rewrites_on_caller{0};
  auto log = c.log;
  c.log = [&, log](std::string_view line) {
    if (line.find("at its cap") != std::string_view::npos) {
      rewrites++;
      if (std::this_thread::get_id() == caller) rewrites_on_caller++;
    }
    if (log) log(line);
  };
  auto sink = StartWithTheWorkerInARequest(c);
  constexpr int kHits = 1500;  // about 1.6 MB: several rewrites at a 256 KiB cap
  for (int i = 1; i < kHits; ++i) {
    sink->Publish(Large(i));
    if (i % 10 == 0) sink->EndBatch();
  }
  sink->EndBatch();
  // Well within the 10 s the worker stays in its request.
  ASSERT_TRUE(WaitFor([&] { return RequestsLeftIn(c.state_dir) == static_cast<uint64_t>(kHits); }, 3s))
      << RequestsLeftIn(c.state_dir);
  const auto counters = sink->counters();
  EXPECT_GT(counters.handed_off, 0u);
  EXPECT_EQ(counters.published, static_cast<uint64_t>(kHits));
  EXPECT_EQ(counters.handoff_pending, 0u);
  EXPECT_GT(rewrites.load(), 0);
  EXPECT_EQ(rewrites_on_caller.load(), 0);
  sink->Stop();
}

// Windows that close while the delivery thread waits in a request (a hanging console) are
// expired by the keeper: identical requests keep folding, and the journal keeps their counts.
TEST_F(ConsoleSinkTest, WindowsKeepFoldingWhileTheWorkerWaitsForTheConsole) {
  auto c = MakeConfig();
  c.fold_window = 200ms;
  c.sync_interval = 10ms;
  c.request_timeout = 10000ms;
  c.stop_grace = 10ms;
  auto sink = StartWithTheWorkerInARequest(c);
  constexpr int kHits = 1000;
  for (int i = 0; i < kHits; ++i) {
    PublishSameRequest(*sink, 1, 40000 + i);
    if (i % 10 == 0) sink->EndBatch();
    std::this_thread::sleep_for(1ms);
  }
  sink->EndBatch();
  std::this_thread::sleep_for(50ms);
  const auto counters = sink->counters();
  EXPECT_EQ(counters.published, static_cast<uint64_t>(kHits + 1));
  // About one first hit and one follow-up per 200 ms window, not a record per request.
  EXPECT_LT(counters.spooled, 60u) << ConsoleSink::FormatCounters(counters);
  EXPECT_EQ(RequestsLeftIn(c.state_dir), static_cast<uint64_t>(kHits + 1));
  sink->Stop();
}

TEST_F(ConsoleSinkTest, EnvironmentProxiesAreIgnored) {
  for (const char* v : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
    setenv(v, "http://127.0.0.1:9", 1);
  }
  auto sink = MakeSink(MakeConfig());
  sink->Start();
  sink->Publish(Numbered(0));
  const bool ok = WaitFor([&] { return mock_->Hits().size() == 1; }, 5s);
  for (const char* v : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
    unsetenv(v);
  }
  EXPECT_TRUE(ok) << log_.joined();
}

TEST_F(ConsoleSinkTest, RegistrationErrorsAreRetriedUntilTheFactoryAnswers) {
  for (const char* mode : {"nonjson", "nourl", "badurl", "redirect", "huge", "500", "reset"}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(mock_->SetMode(mode));
    auto sink = MakeSink(MakeConfig());
    sink->Start();
    ASSERT_TRUE(WaitFor([&] { return sink->counters().registration_failures >= 2; }));
    EXPECT_FALSE(sink->counters().registered);
  }
  ASSERT_TRUE(mock_->SetMode("nourl"));
  auto sink = MakeSink(MakeConfig());
  sink->Start();
  sink->Publish(Numbered(0));  // waits in the spool until registration works
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registration_failures >= 1; }));
  EXPECT_EQ(sink->counters().spool_records, 1u);
  ASSERT_TRUE(mock_->SetMode("ok"));
  ASSERT_TRUE(WaitFor([&] { return sink->counters().delivered == 1; }));
  ExpectNoSecretsLogged();
}

TEST_F(ConsoleSinkTest, StopReturnsWithinTwoSecondsWhileTheConsoleHangs) {
  auto c = MakeConfig();
  c.request_timeout = 30000ms;
  {
    ASSERT_TRUE(mock_->SetMode("hang"));  // registration hangs
    auto sink = MakeSink(c);
    sink->Start();
    std::this_thread::sleep_for(300ms);
    const auto t0 = std::chrono::steady_clock::now();
    sink->Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  ASSERT_TRUE(mock_->SetMode("ok"));
  auto sink = MakeSink(c);
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registered; }));
  ASSERT_TRUE(mock_->SetMode("hang"));  // delivery hangs
  sink->Publish(Numbered(0));
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  sink->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(sink->counters().spool_records, 1u);  // still spooled for the next start
}

// On a disk that refuses the spool's writes, the fold journal keeps what the spool could
// only hold in memory, so neither a stop nor a kill -9 loses those counts (found in review;
// older than the batched spool).
TEST_F(ConsoleSinkTest, AStopOnARefusingDiskKeepsTheFoldJournal) {
  ASSERT_TRUE(mock_->SetMode("500"));  // registration fails: nothing reads the spool
  const auto c = LongFoldConfig();
  auto sink = MakeSink(c);
  sink->Start();
  PublishSameRequest(*sink, 5, 33000);  // 1 spooled, 4 folded
  sink->EndBatch();
  const std::string journal = c.state_dir + "/folds.pending";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  std::this_thread::sleep_for(100ms);  // journal holds the 4, spool.log the 1, both written
  ASSERT_EQ(RequestsLeftIn(c.state_dir), 5u);
  const auto spool_size = std::filesystem::file_size(c.state_dir + "/spool.log");
  WithFileSizeLimit(spool_size, [&] { sink->Stop(); });
  sink.reset();
  EXPECT_EQ(RequestsLeftIn(c.state_dir), 5u) << log_.joined();
}

// The same at a window's expiry, then a kill -9: the spool's write of the follow-up is
// refused; the journal keeps the window.
TEST_F(ConsoleSinkTest, AClosedWindowTheSpoolRefusedStaysInTheJournal) {
  ASSERT_TRUE(mock_->SetMode("500"));
  auto c = MakeConfig();
  c.fold_window = 300ms;
  c.sync_interval = 10ms;
  auto sink = MakeSink(c);
  sink->Start();
  PublishSameRequest(*sink, 5, 34000);
  sink->EndBatch();
  const std::string journal = c.state_dir + "/folds.pending";
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  std::this_thread::sleep_for(50ms);
  const auto spool_size = std::filesystem::file_size(c.state_dir + "/spool.log");
  TempDir crashed;
  WithFileSizeLimit(spool_size, [&] {
    // The window closes; its follow-up is refused by the disk and held in memory.
    ASSERT_TRUE(WaitFor([&] { return sink->counters().spool_memory_only == 1; }, 2s));
    std::this_thread::sleep_for(50ms);  // the journal had its chance to forget it
    // What a kill -9 now would leave.
    std::filesystem::copy_file(c.state_dir + "/spool.log", crashed / "spool.log");
    if (std::filesystem::exists(journal)) std::filesystem::copy_file(journal, crashed / "folds.pending");
  });
  EXPECT_EQ(RequestsLeftIn(crashed.path()), 5u) << "the window is in neither file";
  EXPECT_EQ(sink->counters().spool_memory_only, 1u);
  sink->Stop();
}

// Hits the disk refused are kept in the journal while held in memory, and leave it once a
// rewrite has put them in spool.log: a crash after that counts them once, not twice.
TEST_F(ConsoleSinkTest, HeldHitsLeaveTheJournalOnceTheSpoolHasThemOnDisk) {
  ASSERT_TRUE(mock_->SetMode("500"));  // nothing reads the spool
  auto c = MakeConfig();               // no folding: every hit a record
  c.sync_interval = 10ms;
  auto sink = MakeSink(c);
  sink->Start();
  const auto spool_size = SpoolOneBigHit(*sink, c);
  const std::string journal = c.state_dir + "/folds.pending";
  WithFileSizeLimit(spool_size + 100, [&] {  // the journal, a file of its own, still fits
    for (int i = 0; i < 3; ++i) sink->Publish(Numbered(i));
    sink->EndBatch();
    ASSERT_EQ(sink->counters().spool_memory_only, 3u);
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
    EXPECT_EQ(RequestsLeftIn(c.state_dir), 4u);  // a kill -9 now: 1 on disk, 3 in the journal
  });
  ASSERT_TRUE(WaitFor([&] { return sink->counters().spool_memory_only == 0; }, 3s));
  ASSERT_TRUE(WaitFor([&] { return !std::filesystem::exists(journal); }, 2s));
  EXPECT_EQ(RequestsLeftIn(c.state_dir), 4u);
  sink->Stop();
}

// A start on a full disk: RecoverFoldJournal's appends are refused (memory only) and the
// journal is unlinked; a stop (or a kill -9) before the disk frees loses them.
TEST_F(ConsoleSinkTest, RecoveredFoldsTheSpoolRefusesStayInTheJournal) {
  ASSERT_TRUE(mock_->SetMode("500"));
  const auto c = LongFoldConfig();
  const std::string crashed = state_.path() + "/crashed";
  {
    auto sink = MakeSink(c);
    sink->Start();
    PublishSameRequest(*sink, 5, 35000);
    sink->EndBatch();
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(c.state_dir + "/folds.pending"); }, 2s));
    std::this_thread::sleep_for(100ms);
    std::filesystem::copy(c.state_dir, crashed, std::filesystem::copy_options::recursive);
    sink->Stop();
  }
  ASSERT_EQ(RequestsLeftIn(crashed), 5u);
  auto again = MakeConfig();
  again.state_dir = crashed;
  WithFileSizeLimit(std::filesystem::file_size(crashed + "/spool.log"), [&] {
    auto restarted = MakeSink(again);  // recovers the journal: the append is refused
    ASSERT_TRUE(restarted);
    EXPECT_EQ(restarted->counters().spool_memory_only, 1u);
    restarted->Stop();
  });
  EXPECT_EQ(RequestsLeftIn(crashed), 5u) << log_.joined();
}

// The rewrite in the worker's own sync puts the held hits in spool.log; the journal must let
// go of them soon after, not at the next thing due (here a registration attempt 20 s away),
// or a kill -9 meanwhile counts them twice (found in review).
TEST_F(ConsoleSinkTest, TheJournalForgetsHeldHitsSoonAfterTheRewriteThatStoresThem) {
  ASSERT_TRUE(mock_->SetMode("500"));
  auto c = MakeConfig();
  c.sync_interval = 10ms;
  c.backoff_initial = 20s;  // the next registration attempt is far away
  c.backoff_max = 20s;
  auto sink = MakeSink(c);
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registration_failures >= 1; }, 3s));
  const auto spool_size = SpoolOneBigHit(*sink, c);
  const std::string journal = c.state_dir + "/folds.pending";
  WithFileSizeLimit(spool_size + 100, [&] {
    for (int i = 0; i < 3; ++i) sink->Publish(Numbered(i));
    sink->EndBatch();
    ASSERT_EQ(sink->counters().spool_memory_only, 3u);
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s));
  });
  ASSERT_TRUE(WaitFor([&] { return sink->counters().spool_memory_only == 0; }, 3s));
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(journal); }, 1s))
      << "held hits on disk stay in the journal until the next registration attempt";
  EXPECT_EQ(RequestsLeftIn(c.state_dir), 4u) << "a kill -9 now counts the 3 twice";
  sink->Stop();
}

// After seconds of a refused journal, its retries are at most a second apart: once the disk
// takes writes again, new folds are on the journal within about a second, not a minute
// (found in review).
TEST_F(ConsoleSinkTest, FoldsAreJournaledSoonAfterTheDiskRecovers) {
  ASSERT_TRUE(mock_->SetMode("500"));
  const auto c = LongFoldConfig();
  auto sink = MakeSink(c);
  sink->Start();
  Hit big = Numbered(0);
  big.cmdline.assign(5000, 'c');
  auto publish = [&](int port) {
    Hit h = big;
    h.src = "10.0.0.9:" + std::to_string(port);
    sink->Publish(h);
  };
  publish(36000);  // spooled (on disk); its window stays open for 60 s
  sink->EndBatch();
  const std::string journal = c.state_dir + "/folds.pending";
  WithFileSizeLimit(4000, [&] {  // the journal (one ~5 KB frame) cannot be written
    publish(36001);              // folded: the journal is tried, refused, retried later
    std::this_thread::sleep_for(3300ms);
    EXPECT_FALSE(std::filesystem::exists(journal));
  });
  publish(36002);  // the disk takes writes again; one more fold
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(journal); }, 2s))
      << "folds unjournaled for seconds after the disk recovered";
  EXPECT_EQ(RequestsLeftIn(c.state_dir), 3u);
  sink->Stop();
}

TEST(ConsoleSinkCreate, RejectsBadConfigWithOneLine) {
  TempDir dir;
  std::string error;
  ConsoleSink::Config c;
  c.state_dir = dir / "s";
  c.factory_url = "ftp://example.invalid/x";
  EXPECT_FALSE(ConsoleSink::Create(c, &error));
  EXPECT_NE(error.find("http"), std::string::npos);

  c.factory_url = "";
  EXPECT_FALSE(ConsoleSink::Create(c, &error));
  EXPECT_NE(error.find("no factory URL"), std::string::npos);

  c.factory_url = "https://example.invalid/x";
  c.ca_file = dir / "missing.pem";
  EXPECT_FALSE(ConsoleSink::Create(c, &error));
  EXPECT_NE(error.find("CA file"), std::string::npos);

  c.ca_file = "";
  { std::ofstream(dir / "file") << "x"; }
  c.state_dir = dir / "file/sub";
  EXPECT_FALSE(ConsoleSink::Create(c, &error));
  EXPECT_NE(error.find("state directory"), std::string::npos);
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

// TLS against a loopback HTTPS mock with a CA made by openssl at test time.
class ConsoleSinkTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TempDir();
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string cmd =
        "cd " + pki_->path() + " && openssl req -x509 " + key +
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>/dev/null"
        " && openssl req -x509 " + key +
        " -keyout other.key -out other.pem -days 2 -subj /CN=other-ca 2>/dev/null"
        " && openssl req " + key + " -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null"
        " && printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf"
        " && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out srv.pem -days 2 -extfile ext.cnf 2>/dev/null";
    pki_ok_ = testing::RunCommand(cmd) == 0;
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(pki_ok_) << "openssl could not make the test CA";
    const std::string d = pki_->path();
    mock_ = std::make_unique<MockConsole>(
        records_.path(), MockConsole::Options{d + "/srv.pem", d + "/srv.key", "ok"});
    ASSERT_TRUE(mock_->Start());
  }
  ConsoleSink::Config MakeConfig(const std::string& ca) {
    ConsoleSink::Config c;
    c.factory_url = mock_->factory_url();
    c.state_dir = state_.path() + "/state";
    c.fold_window = 0ms;
    c.imds_base_url = "";  // the TLS mock cannot play plain-HTTP IMDS
    c.ca_file = ca;
    c.backoff_initial = 20ms;
    c.backoff_max = 100ms;
    c.connect_timeout = 1000ms;
    c.request_timeout = 2000ms;
    c.log = log_.fn();
    return c;
  }
  static inline TempDir* pki_ = nullptr;
  static inline bool pki_ok_ = false;
  TempDir records_, state_;
  LogCapture log_;
  std::unique_ptr<MockConsole> mock_;
};

TEST_F(ConsoleSinkTlsTest, VerifiesAgainstTheGivenCa) {
  std::string error;
  auto sink = ConsoleSink::Create(MakeConfig(*pki_ / "ca.pem"), &error);
  ASSERT_TRUE(sink) << error;
  sink->Start();
  sink->Publish(Numbered(0));
  ASSERT_TRUE(WaitFor([&] { return mock_->Hits().size() == 1; })) << log_.joined();
  EXPECT_TRUE(mock_->Hits()[0]["path"].get<std::string>().starts_with("/t/0/"));
}

TEST_F(ConsoleSinkTlsTest, WrongCaFailsWithAClearError) {
  std::string error;
  auto sink = ConsoleSink::Create(MakeConfig(*pki_ / "other.pem"), &error);
  ASSERT_TRUE(sink) << error;
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registration_failures >= 1; }));
  EXPECT_FALSE(sink->counters().registered);
  EXPECT_NE(sink->counters().last_error.find("--ca-file"), std::string::npos)
      << sink->counters().last_error;
  EXPECT_NE(log_.joined().find("not trusted"), std::string::npos) << log_.joined();
  EXPECT_TRUE(mock_->Regs().empty());
}

TEST_F(ConsoleSinkTlsTest, UnreadableCaBundleIsNamed) {
  TempDir dir;
  { std::ofstream(dir / "empty.pem") << "not a certificate\n"; }
  std::string error;
  auto sink = ConsoleSink::Create(MakeConfig(dir / "empty.pem"), &error);
  ASSERT_TRUE(sink) << error;
  sink->Start();
  ASSERT_TRUE(WaitFor([&] { return sink->counters().registration_failures >= 1; }));
  EXPECT_NE(sink->counters().last_error.find("CA bundle"), std::string::npos)
      << sink->counters().last_error;
}

}  // namespace
}  // namespace nfq::alerting
