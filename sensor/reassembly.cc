#include "sensor/reassembly.h"

#include <algorithm>

namespace nfq::sensor {
namespace {

// Sequence-space distance from a to b (b - a), meaningful when b is "after" a by < 2^31.
int64_t SeqDiff(uint32_t a, uint32_t b) { return static_cast<int32_t>(b - a); }

}  // namespace

void StreamReassembler::Start(uint32_t next_seq) {
  Reset();
  started_ = true;
  next_seq_ = next_seq;
  start_seq_ = next_seq;
}

void StreamReassembler::Reset() {
  started_ = false;
  next_seq_ = 0;
  history_.clear();
  pending_.clear();
  pending_bytes_ = 0;
  inconsistent_ = false;
}

bool StreamReassembler::DiffersFromHistory(uint32_t seq, std::string_view bytes) const {
  // history_ ends at next_seq_; byte at seq sits at index size - (next_seq_ - seq).
  const int64_t back = SeqDiff(seq, next_seq_);
  if (back <= 0 || static_cast<uint64_t>(back) > history_.size()) return false;  // not checkable
  const size_t start = history_.size() - static_cast<size_t>(back);
  const size_t len = std::min(bytes.size(), history_.size() - start);
  return std::string_view(history_).substr(start, len) != bytes.substr(0, len);
}

bool StreamReassembler::IsRetransmission(uint32_t seq, std::string_view bytes) const {
  if (!started_ || bytes.empty()) return false;
  const uint32_t end = seq + static_cast<uint32_t>(bytes.size());
  return SeqDiff(start_seq_, seq) >= 0 && SeqDiff(end, next_seq_) >= 0 && !DiffersFromHistory(seq, bytes);
}

void StreamReassembler::DeliverInOrder(std::string_view bytes, Deliver deliver) {
  if (bytes.empty()) return;
  deliver(bytes);
  next_seq_ += static_cast<uint32_t>(bytes.size());
  if (bytes.size() >= reassembly::kHistoryBytes) {
    history_.assign(bytes.substr(bytes.size() - reassembly::kHistoryBytes));
  } else {
    const size_t keep = std::min(history_.size(), reassembly::kHistoryBytes - bytes.size());
    history_.erase(0, history_.size() - keep);
    history_.append(bytes);
  }
}

uint32_t StreamReassembler::Offer(uint32_t seq, std::string_view bytes, Deliver deliver,
                                  OnHole on_hole, Deliver on_late) {
  uint32_t result = 0;
  if (bytes.empty()) return result;
  if (const int64_t before_start = SeqDiff(seq, start_seq_);
      before_start > 0 && before_start <= static_cast<int64_t>(reassembly::kMaxLateDistance)) {
    const size_t late = std::min(bytes.size(), static_cast<size_t>(before_start));
    on_late(bytes.substr(0, late));
    result |= offer_result::kLateData;
    bytes.remove_prefix(late);
    seq += static_cast<uint32_t>(late);
    if (bytes.empty()) return result;
  }
  const int64_t ahead = SeqDiff(next_seq_, seq);
  if (ahead < 0) {
    // Starts before the next expected byte: the overlap was seen before.
    const size_t seen = std::min(bytes.size(), static_cast<size_t>(-ahead));
    result |= offer_result::kRetransmit;
    if (DiffersFromHistory(seq, bytes.substr(0, seen))) {
      result |= offer_result::kInconsistent;
      inconsistent_ = true;
    }
    bytes.remove_prefix(seen);
    seq += static_cast<uint32_t>(seen);
    if (bytes.empty()) return result;
  }
  if (seq == next_seq_) {
    if (pending_.empty()) {
      DeliverInOrder(bytes, deliver);
      return result | offer_result::kDelivered;
    }
    // Some of these bytes may already be held: cut around them (first arrival wins), then
    // everything from next_seq_ on is contiguous.
    uint32_t buffered = 0;
    Buffer(seq, bytes, &buffered);
    result |= buffered & ~offer_result::kBuffered;
    DrainPending(deliver, &result);
    return result;
  }
  if (SeqDiff(next_seq_, seq) > static_cast<int64_t>(reassembly::kMaxWindow)) {
    // Far beyond the window: the stream lost bytes we will never see. Start over here.
    Flush(deliver, on_hole);
    on_hole();
    next_seq_ = seq;
    start_seq_ = seq;
    history_.clear();
    DeliverInOrder(bytes, deliver);
    return result | offer_result::kHole | offer_result::kDelivered;
  }
  Buffer(seq, bytes, &result);
  while (pending_.size() > reassembly::kMaxPendingSegments ||
         pending_bytes_ > reassembly::kMaxPendingBytes) {
    // The hole is not being filled within bounds: give up on it.
    SkipToFirstPending(on_hole);
    DrainPending(deliver, &result);
    result |= offer_result::kHole;
  }
  return result;
}

void StreamReassembler::Buffer(uint32_t seq, std::string_view bytes, uint32_t* result) {
  *result |= offer_result::kBuffered;
  // Cut the new segment around pending ones: bytes already held (sent first) win.
  size_t insert_at = 0;
  while (!bytes.empty()) {
    while (insert_at < pending_.size() &&
           SeqDiff(pending_[insert_at].seq, seq) >= static_cast<int64_t>(pending_[insert_at].bytes.size())) {
      ++insert_at;  // pending segment ends before the new bytes start
    }
    if (insert_at == pending_.size() || SeqDiff(seq, pending_[insert_at].seq) >= static_cast<int64_t>(bytes.size())) {
      pending_.insert(pending_.begin() + static_cast<long>(insert_at), Segment{seq, std::string(bytes)});
      pending_bytes_ += bytes.size();
      return;
    }
    Segment& existing = pending_[insert_at];
    const int64_t gap = SeqDiff(seq, existing.seq);
    if (gap > 0) {
      // New bytes before the existing segment: keep that part.
      pending_.insert(pending_.begin() + static_cast<long>(insert_at),
                      Segment{seq, std::string(bytes.substr(0, static_cast<size_t>(gap)))});
      pending_bytes_ += static_cast<size_t>(gap);
      bytes.remove_prefix(static_cast<size_t>(gap));
      seq += static_cast<uint32_t>(gap);
      ++insert_at;
      continue;
    }
    // Overlap with existing (which starts at or before seq).
    Segment& held = pending_[insert_at];
    const size_t offset = static_cast<size_t>(-gap);
    const size_t len = std::min(bytes.size(), held.bytes.size() - offset);
    *result |= offer_result::kRetransmit;
    if (held.bytes.compare(offset, len, bytes.substr(0, len)) != 0) {
      *result |= offer_result::kInconsistent;
      inconsistent_ = true;
    }
    bytes.remove_prefix(len);
    seq += static_cast<uint32_t>(len);
    ++insert_at;
  }
}

void StreamReassembler::DrainPending(Deliver deliver, uint32_t* result) {
  size_t used = 0;
  for (; used < pending_.size(); ++used) {
    Segment& segment = pending_[used];
    const int64_t ahead = SeqDiff(next_seq_, segment.seq);
    if (ahead > 0) break;
    std::string_view bytes(segment.bytes);
    const size_t seen = std::min(bytes.size(), static_cast<size_t>(-ahead));
    bytes.remove_prefix(seen);
    pending_bytes_ -= segment.bytes.size();
    if (!bytes.empty()) {
      DeliverInOrder(bytes, deliver);
      *result |= offer_result::kDelivered;
    }
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(used));
}

void StreamReassembler::SkipToFirstPending(OnHole on_hole) {
  if (pending_.empty()) return;
  on_hole();
  next_seq_ = pending_.front().seq;
  start_seq_ = next_seq_;
  history_.clear();
}

void StreamReassembler::Flush(Deliver deliver, OnHole on_hole) {
  uint32_t ignored = 0;
  while (!pending_.empty()) {
    SkipToFirstPending(on_hole);
    DrainPending(deliver, &ignored);
  }
}

}  // namespace nfq::sensor
