// Orders the payload of one direction of one TCP flow by sequence number, on the side: the
// packets have already been accepted, this only decides which bytes the HTTP parser reads
// and in which order. Bounded: at most kMaxPendingSegments out-of-order segments holding at
// most kMaxPendingBytes, and a kHistoryBytes window of delivered bytes to check
// retransmissions against. Where segments overlap, the bytes that arrived first win (the
// receiver has already acknowledged them) and differing bytes are reported as inconsistent.
//
// Thread-safety: one flow, one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/function_ref.h"

namespace nfq::sensor {

namespace reassembly {
inline constexpr size_t kMaxPendingSegments = 16;
inline constexpr size_t kMaxPendingBytes = 16 * 1024;
inline constexpr size_t kHistoryBytes = 1024;
// Segments starting further than this beyond the next expected byte are not buffered.
inline constexpr uint32_t kMaxWindow = 256 * 1024;
// Bytes up to this far before the first byte delivered are read as late data (a receive
// window with scaling can be this large); further back they are old duplicates.
inline constexpr uint32_t kMaxLateDistance = 1u << 30;
}  // namespace reassembly

// What one Offer saw (bits).
namespace offer_result {
inline constexpr uint32_t kDelivered = 1u << 0;     // some bytes went to the parser
inline constexpr uint32_t kRetransmit = 1u << 1;    // some bytes had been seen before
inline constexpr uint32_t kInconsistent = 1u << 2;  // ...and differed from what was seen first
inline constexpr uint32_t kBuffered = 1u << 3;      // held back: bytes before it are missing
inline constexpr uint32_t kHole = 1u << 4;          // gave up waiting for missing bytes
inline constexpr uint32_t kLateData = 1u << 5;      // bytes for a range never delivered: before
                                                    // the stream start or in a skipped hole
}  // namespace offer_result

class StreamReassembler {
 public:
  using Deliver = FunctionRef<void(std::string_view)>;
  // Called before bytes after a hole are delivered, so the reader can finish what it had.
  using OnHole = FunctionRef<void()>;

  // The next byte expected is next_seq (SYN's seq + 1, or the first payload seen).
  void Start(uint32_t next_seq);
  bool started() const { return started_; }
  uint32_t next_seq() const { return next_seq_; }

  // Bytes that arrive for a range the reader had already passed without them (before the
  // first byte it was given, or inside a hole it gave up on) go to on_late, not to deliver:
  // a raw-socket sender can order segments so that what the server reads first arrives
  // last, and those bytes must be read, not dismissed as a retransmission.
  // REQUIRES: started().
  uint32_t Offer(uint32_t seq, std::string_view bytes, Deliver deliver, OnHole on_hole,
                 Deliver on_late);

  // True when bytes at seq are ones already delivered, as far as the history shows the same:
  // after start, ending at or before next_seq(). What a live flow counts as a retransmission.
  bool IsRetransmission(uint32_t seq, std::string_view bytes) const;

  // Delivers what is buffered, skipping holes (end of flow).
  void Flush(Deliver deliver, OnHole on_hole);
  void Reset();

  // Overlapping bytes have differed since Start(). Set as soon as the overlap is seen,
  // before the bytes it completes are delivered, so the reader can flag what it reports.
  bool inconsistent() const { return inconsistent_; }

  size_t pending_bytes() const { return pending_bytes_; }
  // Heap bytes held (buffered segments and the history window).
  size_t memory_bytes() const { return pending_bytes_ + history_.capacity(); }
  size_t pending_segments() const { return pending_.size(); }

 private:
  struct Segment {
    uint32_t seq;
    std::string bytes;
  };

  // Delivers bytes that start at next_seq_ (after trimming what was seen), updates history.
  void DeliverInOrder(std::string_view bytes, Deliver deliver);
  // Compares bytes at seq (all before next_seq_) with history; true when they differ.
  bool DiffersFromHistory(uint32_t seq, std::string_view bytes) const;
  void Buffer(uint32_t seq, std::string_view bytes, uint32_t* result);
  void DrainPending(Deliver deliver, uint32_t* result);
  void SkipToFirstPending(OnHole on_hole);

  bool started_ = false;
  uint32_t next_seq_ = 0;
  uint32_t start_seq_ = 0;  // first byte of the current run of delivered bytes
  std::string history_;  // the last kHistoryBytes delivered, ending at next_seq_
  std::vector<Segment> pending_;  // sorted by seq, non-overlapping, all after next_seq_
  size_t pending_bytes_ = 0;
  bool inconsistent_ = false;
};

}  // namespace nfq::sensor
