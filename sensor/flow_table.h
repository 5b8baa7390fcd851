// Flows to the metadata service being followed, keyed by 5-tuple, with a hard cap (LRU
// eviction) and an idle timeout. Each flow keeps its own incremental HTTP parser and the
// next expected TCP sequence number, so requests split over segments are read in order.
//
// Thread-safety: packet thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "sensor/http_parser.h"
#include "sensor/packet.h"
#include "sensor/reassembly.h"

namespace nfq::sensor {

struct Flow {
  FlowKey key;
  HttpRequestParser parser;
  StreamReassembler stream;
  uint32_t sticky_flags = 0;  // request_flag bits that apply to every later request
  size_t footprint = 0;       // heap bytes held by parser and stream, as last accounted
  // Who sent it, as the kernel told us with its packets (kept for flows that end on a timer).
  uint8_t hook = 0;
  bool has_uid = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t indev = 0;
  bool attribution_requested = false;  // the attributor was asked about this connection
  bool has_syn = false;  // the connection's SYN was seen: syn_seq is its initial sequence number
  uint32_t syn_seq = 0;
  // The interface the SYN left on (own connections: outdev) or came in on (forwarded).
  uint32_t syn_dev = 0;
  // The server's SYN-ACK acknowledged syn_seq + 1: the server took this SYN, so the stream
  // really starts there (a forged SYN on a live connection gets a challenge ACK instead).
  bool handshake_confirmed = false;
  std::chrono::steady_clock::time_point last_seen{};
};

class FlowTable {
 public:
  using Clock = std::chrono::steady_clock;

  FlowTable(size_t capacity, Clock::duration idle_timeout);

  // Returns the flow for key, creating it (and evicting the least recently used flow when
  // full: *evicted receives it so its parser can be finished) when absent.
  // REQUIRES: evicted != nullptr. The returned pointer is valid until the next call.
  Flow* FindOrCreate(const FlowKey& key, Clock::time_point now, Flow* evicted, bool* did_evict);
  Flow* Find(const FlowKey& key);
  // Find, and marks the flow used at now (as FindOrCreate does).
  Flow* FindAndTouch(const FlowKey& key, Clock::time_point now);
  void Erase(const FlowKey& key);
  // Moves the least recently used flow out into *out and removes it; false when empty.
  bool PopOldest(Flow* out);

  // Removes flows idle longer than the timeout, calling on_expired(Flow&) for each first.
  template <class OnExpired>
  size_t ExpireIdle(Clock::time_point now, OnExpired&& on_expired);

  size_t size() const { return index_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  using Lru = std::list<Flow>;  // front: most recently used
  size_t capacity_;
  Clock::duration idle_timeout_;
  Lru lru_;
  std::unordered_map<FlowKey, Lru::iterator, FlowKeyHash> index_;
};

// The `capacity` flow keys added last, each with a value and the time it was added; adding
// a key again moves it to the newest slot, and the oldest is pushed out. Fixed memory: the
// slots are allocated once.
//
// Thread-safety: one thread.
template <class Value>
class KeyRing {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    FlowKey key;
    Value value{};
    Clock::time_point added{};
    bool used = false;
  };

  explicit KeyRing(size_t capacity) : ring_(capacity == 0 ? 1 : capacity) { index_.reserve(ring_.size()); }

  // True when an older key was pushed out to make room.
  bool Add(const FlowKey& key, Value&& value, Clock::time_point now) {
    Remove(key);
    Entry& slot = ring_[next_];
    const bool pushed_out = slot.used;
    if (pushed_out) index_.erase(slot.key);
    slot = Entry{key, std::move(value), now, true};
    index_.emplace(key, next_);
    next_ = (next_ + 1) % ring_.size();
    return pushed_out;
  }
  const Entry* Find(const FlowKey& key) const {
    const auto it = index_.find(key);
    return it == index_.end() ? nullptr : &ring_[it->second];
  }
  void Remove(const FlowKey& key) {
    if (auto it = index_.find(key); it != index_.end()) {
      ring_[it->second].used = false;
      index_.erase(it);
    }
  }
  size_t size() const { return index_.size(); }

 private:
  std::vector<Entry> ring_;
  size_t next_ = 0;  // the slot Add writes: the oldest
  std::unordered_map<FlowKey, size_t, FlowKeyHash> index_;  // key -> slot
};

// Keys of flows the sensor stopped following (closed, idle, evicted). A SYN for one of them
// may be a new connection on a reused tuple, or a forged one the server drops while the real
// connection goes on (after a forged close the server ignored, or an eviction). Without the
// handshake check the sensor cannot tell, so a flow a SYN starts on a remembered key is
// flagged; with it, the server's SYN-ACK tells. Bounded: a ring of `capacity` keys, the
// oldest pushed out first (counted).
//
// Thread-safety: packet thread only.
class ForgottenFlows {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ForgottenFlows(size_t capacity) : keys_(capacity) {}

  void Add(const FlowKey& key, Clock::time_point now) {
    if (keys_.Add(key, Nothing{}, now)) ++pushed_out_;
  }
  // True, and forgets the key, when it was added less than `within` before now and not
  // pushed out since. A client that closed first cannot reuse its tuple during its TIME_WAIT
  // (60 s on Linux); one whose server closed first can, at once.
  bool Take(const FlowKey& key, Clock::time_point now,
            Clock::duration within = std::chrono::seconds(60));

  size_t size() const { return keys_.size(); }
  uint64_t pushed_out() const { return pushed_out_; }

 private:
  struct Nothing {};
  KeyRing<Nothing> keys_;
  uint64_t pushed_out_ = 0;
};

// The streams of flows their sender closed (FIN/RST taken), for a while: a segment that
// arrives after the close but only repeats bytes already read (TCP retransmits an unacked
// segment after its FIN) is the retransmission it looks like, not the start of a flow joined
// midstream. Bounded: a ring of `capacity`, each holding at most the reassembler's history.
//
// Thread-safety: packet thread only.
class RecentCloses {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RecentCloses(size_t capacity) : closes_(capacity) {}

  void Add(const FlowKey& key, StreamReassembler&& stream, Clock::time_point now) {
    closes_.Add(key, std::move(stream), now);
  }
  // True when key was closed less than `within` before now and bytes at seq repeat what its
  // stream delivered (StreamReassembler::IsRetransmission).
  bool IsRetransmission(const FlowKey& key, uint32_t seq, std::string_view bytes, Clock::time_point now,
                        Clock::duration within = std::chrono::seconds(10)) const;

 private:
  KeyRing<StreamReassembler> closes_;
};

template <class OnExpired>
size_t FlowTable::ExpireIdle(Clock::time_point now, OnExpired&& on_expired) {
  size_t expired = 0;
  while (!lru_.empty() && now - lru_.back().last_seen > idle_timeout_) {
    on_expired(lru_.back());
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++expired;
  }
  return expired;
}

}  // namespace nfq::sensor
