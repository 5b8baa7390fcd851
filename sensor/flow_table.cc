#include "sensor/flow_table.h"

namespace nfq::sensor {

FlowTable::FlowTable(size_t capacity, Clock::duration idle_timeout)
    : capacity_(capacity), idle_timeout_(idle_timeout) {
  index_.reserve(capacity);
}

Flow* FlowTable::FindOrCreate(const FlowKey& key, Clock::time_point now, Flow* evicted,
                              bool* did_evict) {
  *did_evict = false;
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    it->second->last_seen = now;
    return &*it->second;
  }
  if (index_.size() >= capacity_) {
    // Reuse the oldest node: no allocation once the table is full.
    auto oldest = std::prev(lru_.end());
    index_.erase(oldest->key);
    *evicted = std::move(*oldest);
    *did_evict = true;
    *oldest = Flow{};
    lru_.splice(lru_.begin(), lru_, oldest);
  } else {
    lru_.emplace_front();
  }
  Flow& flow = lru_.front();
  flow.key = key;
  flow.last_seen = now;
  index_.emplace(key, lru_.begin());
  return &flow;
}

Flow* FlowTable::FindAndTouch(const FlowKey& key, Clock::time_point now) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  it->second->last_seen = now;
  return &*it->second;
}

Flow* FlowTable::Find(const FlowKey& key) {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &*it->second;
}

void FlowTable::Erase(const FlowKey& key) {
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

bool FlowTable::PopOldest(Flow* out) {
  if (lru_.empty()) return false;
  index_.erase(lru_.back().key);
  *out = std::move(lru_.back());
  lru_.pop_back();
  return true;
}

bool ForgottenFlows::Take(const FlowKey& key, Clock::time_point now, Clock::duration within) {
  const auto* entry = keys_.Find(key);
  if (entry == nullptr) return false;
  const bool recent = now - entry->added < within;
  keys_.Remove(key);
  return recent;
}

bool RecentCloses::IsRetransmission(const FlowKey& key, uint32_t seq, std::string_view bytes,
                                    Clock::time_point now, Clock::duration within) const {
  const auto* entry = closes_.Find(key);
  return entry != nullptr && now - entry->added < within && entry->value.IsRetransmission(seq, bytes);
}

}  // namespace nfq::sensor
