// Sends hits to a Canary token console (contract: "The console protocol", "A hit").
//
// Publish folds the hit, appends it to the durable spool and wakes the one delivery thread;
// it never touches the network. The delivery thread registers at Start (IMDSv2 facts, then
// POST to the factory) unless a token for this factory URL is stored, then sends spooled
// hits in order, each forgotten only after a 2xx, with exponential backoff and jitter on any
// failure. Stop aborts a request in progress, so it returns within a second or two whatever
// the console does.
// Thread-safety: Publish/Flush from one thread (AlertSink); counters() from any thread;
// Start/Stop from the owner.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "alerting/alert_sink.h"
#include "alerting/file_util.h"
#include "alerting/fold.h"
#include "alerting/hit.h"

namespace nfq::alerting {

class HttpClient;
class Spool;

class ConsoleSink : public AlertSink {
 public:
  struct Config {
    // Empty is allowed when state_dir already holds a token (then that token is used).
    // Secret: only its scheme and host are ever logged.
    std::string factory_url;
    std::string state_dir = "/var/lib/nfq-apeeper";
    std::string instance_name;
    std::string memo;  // empty: "nfq-apeeper: instance metadata access on <name or id>"
    std::chrono::milliseconds fold_window{std::chrono::seconds(60)};  // 0: no folding
    size_t fold_max_keys = 4096;
    std::string proxy;    // empty: direct (environment proxies are always ignored)
    std::string ca_file;  // empty: system bundle. TLS verification is always on.
    std::string user_agent = "nfq-apeeper";  // set to "nfq-apeeper/<version>"
    int so_mark = 0;      // e.g. 0x4e46 so the rules skip our own traffic; 0: none
    std::string imds_base_url = "http://169.254.169.254";  // empty: skip the look-up
    std::chrono::milliseconds imds_timeout{1000};
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{15000};
    std::chrono::milliseconds backoff_initial{1000};
    std::chrono::milliseconds backoff_max{std::chrono::minutes(5)};
    std::chrono::milliseconds sync_interval{50};  // spool fsync batching
    // Stop lets a request in progress finish for this long before aborting it (keep it well
    // under the 2 s stop budget).
    std::chrono::milliseconds stop_grace{1000};
    uint64_t spool_cap_bytes = 64ull << 20;
    // Hits Publish may hand over while the keeper summarises the spool at its cap
    // (see Publish); beyond them Publish waits for that rewrite.
    size_t handoff_cap = 16384;
    uint64_t handoff_cap_bytes = 8ull << 20;  // and at most this much (strings included)
    // One line per call, no newline. Default: stderr.
    std::function<void(std::string_view)> log;
  };

  struct Counters {
    uint64_t published = 0;   // hits taken in (folded or spooled); at stop, every hit given to
                              // Publish (before: less those in handoff_pending)
    uint64_t handed_off = 0;  // hits Publish handed over instead of taking them in (the spool at
                              // its cap, or the delivery thread in disk work), taken in later,
                              // in order: each also counts in published then
    uint64_t handoff_waits = 0;  // Publish calls that found the hand-off full and waited
    uint64_t handoff_pending = 0;  // hits in the hand-off now, not yet in published
    uint64_t folded = 0;      // requests counted into a pending follow-up instead of sent
    uint64_t spooled = 0;     // records appended to the spool (first hits, follow-ups)
    uint64_t delivered = 0;   // records the console answered 2xx
    uint64_t retries = 0;     // attempts after a failed one
    uint64_t failures = 0;    // failed delivery attempts (transport error, timeout, non-2xx)
    uint64_t registrations = 0;
    uint64_t registration_failures = 0;
    bool registered = false;
    uint64_t spool_records = 0;  // waiting for delivery
    uint64_t spool_bytes = 0;
    uint64_t spool_summarised = 0;  // records folded into cap summaries ("dropped at cap")
    uint64_t spool_summaries = 0;
    uint64_t spool_corrupt = 0;     // damaged records skipped
    uint64_t spool_write_errors = 0;
    uint64_t spool_memory_only = 0;  // records the disk refused, held in memory
    std::string last_error;          // last delivery/registration error, no secrets
  };

  // Validates and opens (state dir 0700 and writable, CA file readable, factory URL http(s)
  // or a stored token, the state dir not in use by another sink, spool readable); spools
  // what a crashed predecessor left in the fold journal. nullptr + one-line *error otherwise.
  // REQUIRES: curl_global_init was called.
  static std::unique_ptr<ConsoleSink> Create(Config config, std::string* error);

  // What Create validates, without opening, locking or writing anything but the state dir
  // itself (created if missing): safe beside a running daemon (nfq-apeeper --check).
  static bool Check(Config config, std::string* error);

  ~ConsoleSink() override;
  ConsoleSink(const ConsoleSink&) = delete;
  ConsoleSink& operator=(const ConsoleSink&) = delete;

  // Launches the delivery thread (registration first) and the keeper. Call once.
  void Start();
  // Folds and spools hit. When the spool is at its cap, summarising its oldest records
  // rewrites the file (tens of milliseconds at 64 MiB): that is left to the keeper thread,
  // and meanwhile Publish only hands hits over (up to Config::handoff_cap and
  // handoff_cap_bytes, in order), so the caller's own queue keeps draining. The same while
  // the delivery thread does disk work under the lock (sync, ack, journal, follow-ups).
  void Publish(const Hit& hit) override;
  // The same with the caller's reading of the steady clock (a caller that reads it anyway,
  // or reads a coarse one: the fold windows are seconds long).
  void Publish(const Hit& hit, std::chrono::steady_clock::time_point now);
  // The end of a caller's batch of Publish calls: the records they appended go to the spool
  // file in one write (see Spool::WriteBatch). Without it they are written within the sync
  // interval, or sooner by the delivery thread.
  void EndBatch();
  // Pending fold counts become spool records; the spool is fsynced. Delivery continues.
  void Flush() override;
  // Stops the delivery thread (aborting a request in progress), then Flush. Idempotent.
  void Stop();

  Counters counters() const;  // waits for mu_, which the worker holds through disk work
  // Never waits (for the packet thread: SIGUSR1): counters() when mu_ is free, else those of
  // the worker's last pass, before the disk work it is doing now.
  Counters RecentCounters() const;
  static std::string FormatCounters(const Counters& c);

  // The token URL in use, empty before registration. Secret: do not log it.
  std::string token_url() const;

 private:
  explicit ConsoleSink(Config config);
  void Run();
  // The keeper thread: does the cap's rewrite and takes the hand-off in when Publish asks
  // (keeper_due_), whatever the delivery thread is waiting for.
  void Keep();
  // The periodic disk work: expired windows' follow-ups, the sync, the fold journal, each when
  // due. REQUIRES: mu_ held, the hand-off open.
  void MaintainLocked(std::chrono::steady_clock::time_point now);
  // When MaintainLocked has something due next, if anything. REQUIRES: mu_ held.
  std::optional<std::chrono::steady_clock::time_point> NextMaintenanceLocked() const;
  void AppendLocked(const Hit& hit);
  // Folds and spools; true when the worker should wake for it. REQUIRES: mu_ held.
  bool TakeInLocked(const Hit& hit, std::chrono::steady_clock::time_point now);
  // mu_, or, while the hand-off is open (and has room), hit handed over and the lock not
  // owned (hit null: nothing to hand over, only not to wait).
  std::unique_lock<std::mutex> LockUnlessHandedOff(const Hit* hit,
                                                   std::chrono::steady_clock::time_point now);
  // Hands hit over if the hand-off is open and has room.
  bool TryHandOff(const Hit& hit, std::chrono::steady_clock::time_point now);
  // REQUIRES: handoff_mu_ held.
  void PushHandOffLocked(const Hit& hit, std::chrono::steady_clock::time_point now,
                         uint64_t bytes);
  // Takes in every handed-off hit, in order (the cap's rewrite first), closes the hand-off
  // once it is empty and writes the spool's batch; true when the worker should wake.
  // REQUIRES: mu_ held.
  bool TakeInHandedOffLocked();
  // Before disk work under mu_: Publish hands hits over instead of waiting for mu_ until
  // TakeInHandedOffLocked. REQUIRES: mu_ held.
  void OpenHandOffLocked();
  // The fold journal (state dir, folds.pending) holds the counts of requests folded into
  // windows still open, so that a crash or kill -9 does not lose them: rewritten (whole, by
  // rename) when they changed, at most every sync interval, and emptied when they are
  // spooled. A start spools what a dead predecessor left in it.
  void RecoverFoldJournal();
  void WriteFoldJournalLocked();
  void ScheduleRetryLocked(std::chrono::steady_clock::time_point now);
  void Log(std::string_view line) const;
  Counters CountersLocked() const;  // REQUIRES: mu_ held
  uint64_t CapMargin() const;
  static uint64_t ApproxBytes(const Hit& h);  // what a handed-off copy holds
  void SaveSnapshotLocked();        // REQUIRES: mu_ held

  Config cfg_;
  UniqueFd state_lock_;  // flock on <state dir>/lock: one sink per state dir
  std::unique_ptr<HttpClient> http_;  // delivery thread only (Abort from any)
  std::unique_ptr<Spool> spool_;

  // Lock order: mu_, then handoff_mu_.
  mutable std::mutex mu_;
  struct HandedOff {
    Hit hit;
    std::chrono::steady_clock::time_point at;
  };
  mutable std::mutex handoff_mu_;
  std::vector<HandedOff> handoff_;  // guarded by handoff_mu_
  // Set (under both locks) when Publish finds the spool at its cap (the keeper then takes
  // it in) or the delivery thread starts disk work (it takes it in after); cleared under
  // handoff_mu_ by whoever empties handoff_, always the holder of mu_. While set, Publish
  // adds to handoff_ instead of waiting for mu_, and EndBatch leaves the batch to that holder.
  std::atomic<bool> handoff_open_{false};
  uint64_t handoff_bytes_ = 0;  // guarded by handoff_mu_
  // Read without a lock by RecentCounters (the packet thread on SIGUSR1).
  std::atomic<uint64_t> handed_off_{0};
  std::atomic<uint64_t> handoff_waits_{0};
  std::atomic<uint64_t> handoff_pending_{0};
  std::condition_variable keeper_cv_;  // with mu_
  bool keeper_due_ = false;            // guarded by mu_
  std::condition_variable cv_;
  Folder folder_;
  std::string token_url_;
  bool stopping_ = false;
  bool started_ = false;
  bool in_request_ = false;  // the worker is in Perform (registration or delivery)
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::steady_clock::time_point dirty_since_{};
  bool folds_dirty_ = false;  // the folder's pending counts differ from the journal
  bool fold_journal_failing_ = false;  // last write failed (said once)
  uint64_t journaled_held_ = 0;  // Spool::held_generation() the journal was written with
  std::chrono::milliseconds journal_retry_delay_{};  // the sync interval, longer after failures
  static constexpr std::chrono::milliseconds kJournalRetryFirst{200};
  static constexpr std::chrono::milliseconds kJournalRetryMax{1000};
  std::chrono::steady_clock::time_point folds_written_{};
  uint32_t consecutive_failures_ = 0;
  std::mt19937_64 rng_;
  Counters counters_;
  mutable std::mutex snapshot_mu_;  // after mu_ when both are held
  Counters snapshot_;  // guarded by snapshot_mu_
  std::thread worker_;
  std::thread keeper_;
};

}  // namespace nfq::alerting
