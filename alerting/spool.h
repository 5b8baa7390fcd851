// The durable queue of hits waiting for a 2xx from the console.
//
// Files under the state dir:
//   spool.log  append-only records: magic "NFSP" u32 | payload length u32 | CRC32 u32 (of id
//              and payload) | id u64 | payload (EncodeHit). Little-endian.
//   spool.ack  u64 id | u32 CRC32: every record with id <= this was delivered (2xx).
// Ids grow across restarts and file order is id order, so "acked" is one number. A record
// is never resent after its ack is on disk; the window between the 2xx and the ack's
// fdatasync can resend one record after a crash (at-least-once).
// Corrupt or torn records found at Open are counted, reported and skipped (a torn tail is
// truncated). Appends gather in memory and go to spool.log in one write at WriteBatch, or
// once kBatchBytes have gathered, or before anything else touches the spool (Front, Ack,
// Sync, the cap): a burst of hits costs one system call, not one each. At cap_bytes of
// undelivered records the oldest are replaced by one summary hit whose count is their sum.
// A failing disk (ENOSPC, EIO) never loses a hit while the process lives: the records of a
// refused write are kept in memory, counted, reported once, and brought to disk by a rewrite
// that Sync retries with backoff.
// Not thread-safe: the owner serialises all calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/file_util.h"
#include "alerting/hit.h"

namespace nfq::alerting {

class Spool {
 public:
  struct Options {
    std::string dir;
    uint64_t cap_bytes = 64ull << 20;
    std::function<void(std::string_view)> log;  // one line per call; may be empty
  };
  struct Record {
    uint64_t id = 0;
    Hit hit;
  };
  struct Stats {
    uint64_t pending_records = 0;
    uint64_t pending_bytes = 0;     // undelivered records, as framed on disk
    uint64_t file_bytes = 0;        // spool.log size (includes delivered prefix)
    uint64_t appended = 0;
    uint64_t acked = 0;
    uint64_t summarised_records = 0;  // records folded into cap summaries
    uint64_t summaries = 0;
    uint64_t corrupt_records = 0;     // damaged spans skipped at Open
    uint64_t corrupt_bytes = 0;
    uint64_t write_errors = 0;        // appends/acks/syncs the disk refused
    uint64_t memory_only = 0;         // records held only in memory because the disk refused
                                      // them (not those waiting in the batch)
  };

  static constexpr uint32_t kMaxPayload = 1u << 20;
  static constexpr size_t kBatchBytes = 64 * 1024;

  // nullptr + one-line error if the directory or files cannot be opened.
  static std::unique_ptr<Spool> Open(Options options, std::string* error);
  ~Spool();  // writes the batch (not synced: see Sync)

  // Queues hit; returns its id. Never fails (see the disk note above). The record reaches
  // the file at the next WriteBatch (or sooner, see above).
  uint64_t Append(const Hit& hit);
  // Writes the records appended since the last write: one pwrite. On a disk error they are
  // kept in memory (counted, said once), as any append the disk refuses.
  void WriteBatch();
  // Oldest undelivered record, or nullopt.
  std::optional<Record> Front();
  // REQUIRES: id == Front()->id. The record is delivered; persist that.
  void Ack(uint64_t id);
  // Writes the batch; rewrites the file when records the disk refused are held in memory and
  // the last failed attempt is long enough ago (backoff from 0.2 s to 60 s); then makes
  // appended records durable (fdatasync) if anything changed since the last Sync.
  void Sync();
  // Something appended is not yet durable: written but not synced, not yet written, or held
  // in memory because the disk refused it (then every Sync may retry the disk).
  bool dirty() const { return dirty_ || !batch_.empty() || memory_only_ > 0; }
  bool empty() const { return entries_.empty(); }
  // Records the disk refused, held in memory (lost with the process unless kept elsewhere).
  uint64_t held_in_memory() const { return memory_only_; }
  // Changes whenever that set of records does.
  uint64_t held_generation() const { return held_generation_; }
  // Appends those records to *out as frames numbered from ++*id: the fold journal keeps them
  // with the counts of open windows, the other things a crash would otherwise lose.
  void AppendHeldFrames(uint64_t* id, std::string* out) const;
  // Appending `incoming` more bytes would make the cap summarise (MakeRoom would rewrite),
  // unless the last attempt found nothing to gain at today's size.
  bool CapDue(uint64_t incoming) const {
    return pending_bytes_ + incoming > opts_.cap_bytes && pending_bytes_ != cap_futile_at_;
  }
  // Summarises the oldest records now if `incoming` more bytes would pass the cap (as an
  // Append would): for an owner that wants that rewrite on a thread of its choice.
  void MakeRoom(uint64_t incoming) { EnforceCap(incoming); }
  // The front record is being sent: cap summaries leave it alone.
  void set_front_in_flight(bool v) { front_in_flight_ = v; }
  Stats stats() const;

 private:
  struct Entry {
    uint64_t id = 0;
    uint64_t offset = 0;  // of the frame in spool.log, when on disk
    uint32_t size = 0;    // framed size
    std::optional<std::string> payload;  // set when not on disk
  };

  explicit Spool(Options options);
  bool Load(std::string* error);
  bool WriteAck(uint64_t id);
  std::optional<std::string> PayloadOf(const Entry& e);
  // Writes whole frames at the end of spool.log.
  bool TryWriteFrames(std::string_view frames);
  // *e keeps payload in memory (the disk refused it, or it was never written); Release when
  // an entry leaves: memory_only_ and held_generation_ follow both.
  void Hold(Entry* e, std::string payload);
  void Release(const Entry& e);
  void EnforceCap(uint64_t incoming);
  // Rewrites spool.log with only the undelivered records.
  bool Compact();
  // The file system has room for a rewrite (or cannot say).
  bool RewriteFits() const;
  // Rewrites the file to bring the records held in memory to disk, unless a failed attempt
  // was too recent.
  void RetryRewrite();
  void Log(std::string_view line) const;

  Options opts_;
  std::string log_path_;
  std::string ack_path_;
  UniqueFd fd_;
  UniqueFd ack_fd_;
  uint64_t file_size_ = 0;
  uint64_t acked_id_ = 0;
  uint64_t next_id_ = 1;
  uint64_t pending_bytes_ = 0;
  std::deque<Entry> entries_;
  // Frames appended since the last write, in id order: the newest entries, whose offsets
  // (file_size_ and beyond) are where they will land.
  std::string batch_;
  bool dirty_ = false;
  bool front_in_flight_ = false;
  uint64_t cap_futile_at_ = UINT64_MAX;  // pending_bytes_ when EnforceCap last found no gain
  bool disk_failing_ = false;
  uint64_t memory_only_ = 0;  // entries the disk refused, held in memory until a rewrite
  uint64_t held_generation_ = 0;
  // Sync retries the rewrite that brings them to disk with backoff, and says so once.
  static constexpr std::chrono::milliseconds kRewriteBackoffFirst{200};
  static constexpr std::chrono::milliseconds kRewriteBackoffMax{60'000};
  std::chrono::milliseconds rewrite_backoff_{};
  std::chrono::steady_clock::time_point next_rewrite_{};
  bool rewrite_failing_ = false;
  Stats stats_;
};

// Frames (id, payload) as stored in spool.log.
std::string EncodeFrame(uint64_t id, std::string_view payload);
// The same, appended to *out.
void AppendFrame(uint64_t id, std::string_view payload, std::string* out);
// The payloads of the valid frames that follow each other from the start of data; *rest_bad
// is set when bytes after them are not a valid frame.
std::vector<std::string_view> ParseFrames(std::string_view data, bool* rest_bad);

}  // namespace nfq::alerting
