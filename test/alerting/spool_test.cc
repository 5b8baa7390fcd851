#include "alerting/spool.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "alerting/hit_codec.h"
#include "test/alerting/test_util.h"

namespace nfq::alerting {
namespace {

using testing::TempDir;
using testing::WithFileSizeLimit;

Hit Numbered(int i) {
  Hit h;
  h.url = "/latest/meta-data/n/" + std::to_string(i);
  h.norm = h.url;
  h.method = "GET";
  h.src = "10.0.0.1:1";
  h.first = h.last = Hit::Clock::time_point(std::chrono::seconds(i));
  return h;
}

std::unique_ptr<Spool> OpenSpool(const std::string& dir, uint64_t cap = 64ull << 20) {
  std::string error;
  auto s = Spool::Open({dir, cap, {}}, &error);
  EXPECT_TRUE(s) << error;
  return s;
}

// Delivers everything; returns the urls in order.
std::vector<std::string> Drain(Spool& s) {
  std::vector<std::string> urls;
  while (auto r = s.Front()) {
    urls.push_back(r->hit.url);
    s.Ack(r->id);
  }
  return urls;
}

TEST(Spool, UnackedRecordsSurviveReopenAndAckedNeverReturn) {
  TempDir dir;
  {
    auto s = OpenSpool(dir.path());
    for (int i = 0; i < 5; ++i) s->Append(Numbered(i));
    s->Sync();
    auto r = s->Front();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->hit.url, Numbered(0).url);
    s->Ack(r->id);
    r = s->Front();
    s->Ack(r->id);
  }
  {
    auto s = OpenSpool(dir.path());
    EXPECT_EQ(s->stats().pending_records, 3u);
    auto r = s->Front();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->hit.url, Numbered(2).url);
    s->Ack(r->id);
    s->Append(Numbered(9));
  }
  auto s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s), (std::vector<std::string>{Numbered(3).url, Numbered(4).url,
                                                  Numbered(9).url}));
  EXPECT_EQ(s->stats().file_bytes, 0u);  // fully delivered: truncated
  s.reset();
  s = OpenSpool(dir.path());
  EXPECT_TRUE(s->empty());
  struct stat st{};
  ASSERT_EQ(stat((dir / "spool.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Spool, TornTailIsCountedAndDropped) {
  TempDir dir;
  {
    auto s = OpenSpool(dir.path());
    for (int i = 0; i < 5; ++i) s->Append(Numbered(i));
  }
  const auto size = std::filesystem::file_size(dir / "spool.log");
  std::filesystem::resize_file(dir / "spool.log", size - 7);
  auto s = OpenSpool(dir.path());
  EXPECT_EQ(s->stats().corrupt_records, 1u);
  EXPECT_EQ(Drain(*s).size(), 4u);
  s->Append(Numbered(7));  // appends after the truncated tail stay readable
  s.reset();
  s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s), std::vector<std::string>{Numbered(7).url});
}

TEST(Spool, GarbledMiddleRecordIsSkippedAndTheRestKept) {
  TempDir dir;
  {
    auto s = OpenSpool(dir.path());
    for (int i = 0; i < 5; ++i) s->Append(Numbered(i));
  }
  const auto size = std::filesystem::file_size(dir / "spool.log");
  {
    std::fstream f(dir / "spool.log", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 5 + size / 10));  // inside record 2
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto s = OpenSpool(dir.path());
  EXPECT_EQ(s->stats().corrupt_records, 1u);
  EXPECT_EQ(Drain(*s), (std::vector<std::string>{Numbered(0).url, Numbered(2).url,
                                                  Numbered(3).url, Numbered(4).url}));
}

TEST(Spool, PureGarbageFileNeverCrashes) {
  TempDir dir;
  {
    std::ofstream f(dir / "spool.log", std::ios::binary);
    std::string junk(10000, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 7919) & 0xff);
    junk.replace(100, 4, "NFSP");
    f << junk;
    std::ofstream a(dir / "spool.ack", std::ios::binary);
    a << "garbage";
  }
  auto s = OpenSpool(dir.path());
  EXPECT_TRUE(s->empty());
  EXPECT_GE(s->stats().corrupt_records, 1u);
  s->Append(Numbered(1));
  EXPECT_EQ(Drain(*s).size(), 1u);
}

TEST(Spool, AtCapOldestAreSummarisedWithExactCount) {
  TempDir dir;
  const uint64_t cap = 4096;
  auto s = OpenSpool(dir.path(), cap);
  for (int i = 0; i < 200; ++i) {
    Hit h = Numbered(i);
    h.count = 2;
    s->Append(h);
    EXPECT_LE(s->stats().pending_bytes, cap + 400);
  }
  const auto st = s->stats();
  EXPECT_GE(st.summaries, 1u);
  EXPECT_GT(st.summarised_records, 0u);
  s.reset();
  s = OpenSpool(dir.path(), cap);  // summaries are durable too
  uint64_t total = 0;
  bool saw_summary = false;
  while (auto r = s->Front()) {
    total += r->hit.count;
    if (r->hit.flags.find("spool-overflow") != std::string::npos) {
      saw_summary = true;
      EXPECT_EQ(r->hit.url, "*");
      EXPECT_EQ(r->hit.method, "GET");
    }
    s->Ack(r->id);
  }
  EXPECT_TRUE(saw_summary);
  EXPECT_EQ(total, 400u);
}

TEST(Spool, InFlightFrontIsNotSummarised) {
  TempDir dir;
  auto s = OpenSpool(dir.path(), 2048);
  s->Append(Numbered(0));
  auto front = s->Front();
  ASSERT_TRUE(front);
  s->set_front_in_flight(true);
  for (int i = 1; i < 100; ++i) s->Append(Numbered(i));
  s->Ack(front->id);  // the 2xx for record 0 arrives after the cap kicked in
  uint64_t total = 1;
  while (auto r = s->Front()) {
    EXPECT_NE(r->hit.url, Numbered(0).url);
    total += r->hit.count;
    s->Ack(r->id);
  }
  EXPECT_EQ(total, 100u);
}

// The urls of Numbered(0) ... Numbered(last).
std::vector<std::string> UrlsUpTo(int last) {
  std::vector<std::string> urls;
  for (int i = 0; i <= last; ++i) urls.push_back(Numbered(i).url);
  return urls;
}

uint64_t FileSize(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

TEST(Spool, AppendsGatherUntilOneWriteAndEveryOneSurvivesReopen) {
  TempDir dir;
  {
    auto s = OpenSpool(dir.path());
    for (int i = 0; i < 20; ++i) s->Append(Numbered(i));
    EXPECT_EQ(FileSize(dir / "spool.log"), 0u);  // gathered, not yet written
    EXPECT_TRUE(s->dirty());
    EXPECT_EQ(s->stats().pending_records, 20u);
    s->WriteBatch();
    EXPECT_EQ(FileSize(dir / "spool.log"), s->stats().file_bytes);
    EXPECT_EQ(s->stats().file_bytes, s->stats().pending_bytes);
    EXPECT_TRUE(s->dirty());  // written, not yet synced
    s->Sync();
    EXPECT_FALSE(s->dirty());
    s->Append(Numbered(20));  // left in the batch: the destructor writes it
  }
  auto s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s), UrlsUpTo(20));
}

TEST(Spool, AFullBatchIsWrittenAtOnce) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  Hit big = Numbered(0);
  big.cmdline.assign(Spool::kBatchBytes / 4, 'x');
  for (int i = 0; i < 3; ++i) s->Append(big);
  EXPECT_EQ(FileSize(dir / "spool.log"), 0u);
  s->Append(big);  // the fourth passes kBatchBytes
  EXPECT_GT(FileSize(dir / "spool.log"), Spool::kBatchBytes);
  EXPECT_EQ(s->stats().file_bytes, s->stats().pending_bytes);
}

TEST(Spool, FrontAndAckSeeTheBatchWrittenFirst) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  for (int i = 0; i < 3; ++i) s->Append(Numbered(i));
  auto r = s->Front();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->hit.url, Numbered(0).url);
  EXPECT_EQ(FileSize(dir / "spool.log"), s->stats().pending_bytes);
  s->Append(Numbered(3));
  s->Ack(r->id);
  EXPECT_EQ(Drain(*s), (std::vector<std::string>{Numbered(1).url, Numbered(2).url, Numbered(3).url}));
}

// The file size limit makes the batch's write fail (EFBIG) as a full disk would (ENOSPC).
TEST(Spool, ABatchTheDiskRefusesIsKeptInMemoryWholeAndDelivered) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  s->Append(Numbered(0));
  s->WriteBatch();
  const uint64_t on_disk = s->stats().file_bytes;
  ASSERT_GT(on_disk, 0u);
  for (int i = 1; i <= 10; ++i) s->Append(Numbered(i));

  // A part of the batch would fit: none of it may stay.
  WithFileSizeLimit(on_disk + 40, [&] { s->WriteBatch(); });

  EXPECT_EQ(FileSize(dir / "spool.log"), on_disk);  // no torn record
  const Spool::Stats st = s->stats();
  EXPECT_GE(st.write_errors, 1u);
  EXPECT_EQ(st.memory_only, 10u);
  EXPECT_EQ(st.pending_records, 11u);
  s->Append(Numbered(11));  // the disk works again
  s->Sync();                // and the records it refused are written by a rewrite
  EXPECT_EQ(s->stats().memory_only, 0u);
  s.reset();
  s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s), UrlsUpTo(11));
}

// Runs of records on disk are copied as they are and records held in memory (the disk refused
// them) are written out: after the rewrite every undelivered record is on disk, in order.
TEST(Spool, CompactionKeepsEveryRecordWhereverItWasHeld) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  auto numbered_big = [](int i) {
    Hit h = Numbered(i);
    h.cmdline.assign(4000, static_cast<char>('a' + i % 26));
    return h;
  };
  for (int i = 0; i < 350; ++i) s->Append(numbered_big(i));
  s->WriteBatch();
  for (int i = 350; i < 360; ++i) s->Append(numbered_big(i));
  WithFileSizeLimit(s->stats().file_bytes, [&] { s->WriteBatch(); });
  ASSERT_EQ(s->stats().memory_only, 10u);
  for (int i = 360; i < 400; ++i) s->Append(numbered_big(i));
  for (int i = 0; i < 300; ++i) {  // a delivered prefix of 1.2 MB: the ack rewrites the file
    auto r = s->Front();
    ASSERT_TRUE(r);
    s->Ack(r->id);
  }
  const Spool::Stats st = s->stats();
  EXPECT_EQ(st.memory_only, 0u);  // the rewrite ran and wrote them out
  EXPECT_EQ(st.pending_records, 100u);
  EXPECT_LT(st.file_bytes, 400u * 4000u);  // acks after the rewrite left a smaller prefix
  EXPECT_EQ(FileSize(dir / "spool.log"), st.file_bytes);
  s.reset();
  s = OpenSpool(dir.path());
  for (int i = 300; i < 400; ++i) {
    auto r = s->Front();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->hit.url, Numbered(i).url);
    EXPECT_EQ(r->hit.cmdline, numbered_big(i).cmdline);
    s->Ack(r->id);
  }
  EXPECT_TRUE(s->empty());
}

// Random appends, batch writes, deliveries (with the front in flight while more arrive),
// syncs, refused writes (RLIMIT_FSIZE) and clean reopens against a small cap: every request
// appended is delivered exactly once (alone or inside a summary), in id order.
TEST(Spool, RandomOperationsLoseAndDuplicateNothing) {
  auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    TempDir dir;
    std::mt19937 rng(seed);
    const uint64_t cap = 3000 + rng() % (64 * 1024);
    auto s = OpenSpool(dir.path(), cap);
    uint64_t appended = 0, delivered = 0, last_id = 0;
    int next = 0;
    std::set<std::string> seen;
    std::optional<Spool::Record> in_flight;
    auto deliver = [&](const Spool::Record& r) {
      EXPECT_GT(r.id, last_id);
      last_id = r.id;
      delivered += r.hit.count;
      if (r.hit.flags.find("spool-overflow") == std::string::npos) {
        EXPECT_TRUE(seen.insert(r.hit.url).second) << "delivered twice: " << r.hit.url;
      }
    };
    for (int op = 0; op < 1500; ++op) {
      const auto k = rng() % 100;
      const bool refuse = rng() % 12 == 0;
      if (refuse) {
        rlimit limited = saved;
        limited.rlim_cur = s->stats().file_bytes + rng() % 300;
        setrlimit(RLIMIT_FSIZE, &limited);
      }
      if (k < 60) {
        Hit h = Numbered(next++);
        h.count = 1 + rng() % 3;
        if (rng() % 8 == 0) h.cmdline.assign(static_cast<size_t>(rng() % 9000), 'c');
        appended += h.count;
        s->Append(h);
      } else if (k < 68) {
        s->WriteBatch();
      } else if (k < 72) {
        s->Sync();
      } else if (k < 90) {
        if (in_flight) {
          deliver(*in_flight);
          s->Ack(in_flight->id);
          in_flight.reset();
        } else if (auto r = s->Front()) {
          if (rng() % 2) {
            s->set_front_in_flight(true);
            in_flight = r;
          } else {
            deliver(*r);
            s->Ack(r->id);
          }
        }
      } else if (k < 93 && !refuse && !in_flight && (s->WriteBatch(), s->stats().memory_only == 0)) {
        // A clean reopen (memory-only records would be lost by design: not durable).
        s.reset();
        s = OpenSpool(dir.path(), cap);
      }
      if (refuse) setrlimit(RLIMIT_FSIZE, &saved);
      if (rng() % 50 == 0) {  // what a kill -9 now leaves: nothing delivered comes back
        TempDir crash;
        std::filesystem::copy_file(dir / "spool.log", crash / "spool.log");
        std::filesystem::copy_file(dir / "spool.ack", crash / "spool.ack");
        auto c = OpenSpool(crash.path(), cap);
        while (auto r = c->Front()) {
          if (r->hit.flags.find("spool-overflow") == std::string::npos) {
            EXPECT_FALSE(seen.count(r->hit.url)) << "delivered, back after a crash: " << r->hit.url;
          }
          c->Ack(r->id);
        }
      }
    }
    if (in_flight) {
      deliver(*in_flight);
      s->Ack(in_flight->id);
    }
    while (auto r = s->Front()) {
      deliver(*r);
      s->Ack(r->id);
    }
    EXPECT_EQ(delivered, appended) << "corrupt=" << s->stats().corrupt_records << " werr=" << s->stats().write_errors;
    EXPECT_EQ(s->stats().pending_bytes, 0u);
  }
  std::signal(SIGXFSZ, previous_handler);
}

// Records the disk refused, held in memory: when and how they reach the disk again.

// dirty() is "something appended is not yet durable": records the disk refused are exactly
// that. While it says false the sink's worker never calls Sync again (Run syncs only a dirty
// spool), so nothing retries them until some later hit is appended.
TEST(Spool, ARefusedBatchLeavesTheSpoolDirty) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  s->Append(Numbered(0));
  s->Sync();
  ASSERT_FALSE(s->dirty());
  for (int i = 1; i <= 5; ++i) s->Append(Numbered(i));
  WithFileSizeLimit(s->stats().file_bytes, [&] { s->WriteBatch(); });
  ASSERT_EQ(s->stats().memory_only, 5u);
  EXPECT_TRUE(s->dirty()) << "5 records only in memory, yet the spool says all is durable";
}

// The disk works again but no new hit arrives (IMDS hits are rare): disk_failing_ is only
// cleared by a successful batch write, so Sync never rewrites, and a clean stop (Flush ->
// Sync, then the destructor) loses the records though the disk would take them.
TEST(Spool, ASyncAfterTheDiskRecoversWritesRefusedRecordsWithoutANewAppend) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  s->Append(Numbered(0));
  s->Sync();
  for (int i = 1; i <= 5; ++i) s->Append(Numbered(i));
  WithFileSizeLimit(s->stats().file_bytes, [&] { s->WriteBatch(); });
  ASSERT_EQ(s->stats().memory_only, 5u);
  s->Sync();  // the limit is gone: the disk takes writes again
  EXPECT_EQ(s->stats().memory_only, 0u);
  s.reset();  // a clean stop
  s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s), UrlsUpTo(5));
}

// Batches fit (disk_failing_ stays false) but the rewrite does not, for a reason RewriteFits
// cannot see (quota, no free inode for spool.log.tmp, EIO, here RLIMIT_FSIZE): every Sync
// (one per sync interval under load, under the sink's mu_) writes a doomed copy of the whole
// spool, and not one line says so.
TEST(Spool, ARewriteTheDiskRefusesIsLoggedAndNotRetriedAtEverySync) {
  TempDir dir;
  std::vector<std::string> lines;
  std::string error;
  auto s = Spool::Open({dir.path(), 64ull << 20, [&](std::string_view l) { lines.emplace_back(l); }},
                       &error);
  ASSERT_TRUE(s) << error;
  for (int i = 0; i < 10; ++i) {
    Hit h = Numbered(i);
    h.cmdline.assign(1000, 'c');
    s->Append(h);
  }
  WithFileSizeLimit(0, [&] { s->WriteBatch(); });
  ASSERT_EQ(s->stats().memory_only, 10u);
  const size_t lines_before = lines.size();
  const uint64_t errors_before = s->stats().write_errors;
  WithFileSizeLimit(8000, [&] {  // each small batch fits; the 14 kB rewrite does not
    for (int i = 10; i < 30; ++i) {
      s->Append(Numbered(i));
      s->Sync();
    }
  });
  const uint64_t rewrites_refused = s->stats().write_errors - errors_before;
  EXPECT_LE(rewrites_refused, 3u) << "a full rewrite attempted at every one of 20 syncs";
  bool reported = false;
  for (size_t i = lines_before; i < lines.size(); ++i) {
    reported |= lines[i].find("writes work again") == std::string::npos;
  }
  EXPECT_TRUE(reported) << "refused rewrites are never logged";
  // No limit: the next attempt after the backoff (0.2 s, then 0.4 s...) goes through.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (s->stats().memory_only > 0 && std::chrono::steady_clock::now() < deadline) {
    s->Sync();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(s->stats().memory_only, 0u);
  s.reset();
  s = OpenSpool(dir.path());
  EXPECT_EQ(Drain(*s).size(), 30u);
}

// held_in_memory_ is only cleared by a successful rewrite: once the held records are
// delivered straight from memory the flag stays set, and while the rewrite cannot run (here
// spool.log.tmp cannot be created, as with no free inode) every Sync tries it again though
// nothing at all is held.
TEST(Spool, NoRewriteIsTriedOnceNothingIsHeldInMemory) {
  TempDir dir;
  auto s = OpenSpool(dir.path());
  s->Append(Numbered(0));
  s->Sync();
  s->Append(Numbered(1));
  WithFileSizeLimit(s->stats().file_bytes, [&] { s->WriteBatch(); });
  ASSERT_EQ(s->stats().memory_only, 1u);
  std::filesystem::create_directory(dir / "spool.log.tmp");  // open(O_CREAT) fails: EISDIR
  EXPECT_EQ(Drain(*s), UrlsUpTo(1));                         // delivered from memory
  ASSERT_EQ(s->stats().memory_only, 0u);
  const uint64_t errors_before = s->stats().write_errors;
  for (int i = 2; i < 12; ++i) {
    s->Append(Numbered(i));
    s->Sync();
  }
  EXPECT_EQ(s->stats().write_errors, errors_before) << "rewrites tried with nothing held";
}

// The record-by-record fallback writes less than the failed run copy had already written
// (an unreadable record becomes a 20-byte frame), and the new file is never truncated to
// the size Compact computed: stale bytes follow the last record, file_bytes disagrees with
// the file, and a kill -9 before they are overwritten makes the next Open report a torn tail
// that no crash tore. Unreadable records are simulated by cutting spool.log short.
TEST(Spool, ARecordByRecordRewriteLeavesNoStaleBytesBehindTheLastRecord) {
  auto big = [](int i) {
    Hit h = Numbered(i);
    h.cmdline.assign(4000, 'x');
    return h;
  };
  const uint64_t r = EncodeFrame(1, EncodeHit(big(0))).size();
  TempDir dir;
  auto s = OpenSpool(dir.path(), 10 * r + r / 2);
  for (int i = 0; i < 10; ++i) s->Append(big(i));
  s->WriteBatch();
  ASSERT_EQ(s->stats().file_bytes, 10 * r);
  std::filesystem::resize_file(dir / "spool.log", 7 * r + r / 2);  // 7 torn, 8 and 9 gone
  s->Append(big(10));  // the cap: 0..5 summarised, 6..9 copied (the copy fails: EIO)
  ASSERT_EQ(s->stats().summaries, 1u);
  EXPECT_EQ(FileSize(dir / "spool.log"), s->stats().file_bytes);
  TempDir crash;  // a kill -9 now
  std::filesystem::copy_file(dir / "spool.log", crash / "spool.log");
  auto c = OpenSpool(crash.path());
  EXPECT_EQ(c->stats().corrupt_records, 0u);
  EXPECT_EQ(c->stats().pending_records, 5u);  // summary, 6, and the empty frames of 7..9
  // Sizes after the fallback agree with what was written.
  s->WriteBatch();
  EXPECT_EQ(s->stats().pending_bytes, s->stats().file_bytes);
}

}  // namespace
}  // namespace nfq::alerting
