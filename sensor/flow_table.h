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
