// Bounded single-producer single-consumer ring. Lock-free: the producer (packet thread)
// never waits on the consumer; when the ring is full, TryPush fails and the caller counts
// the drop. Slots are allocated once, at construction. BeginPush/CommitPush and
// Front/PopFront move nothing: the producer fills a slot in place over what the value before
// left there, so a slot's strings keep their capacity and a steady stream allocates nothing.
//
// Thread-safety: exactly one producer thread and one consumer thread.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <new>
#include <optional>
#include <vector>

namespace nfq::sensor {

template <class T>
class SpscRing {
 public:
  // REQUIRES: capacity >= 1. Rounded up to a power of two.
  explicit SpscRing(size_t capacity) : slots_(std::bit_ceil(capacity)), mask_(slots_.size() - 1) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer: the slot the next push fills, or nullptr when the ring is full. It holds what
  // an earlier value left; every field must be set. Not visible to the consumer until
  // CommitPush.
  T* BeginPush() {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_cache_ == slots_.size()) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ == slots_.size()) return nullptr;
    }
    return &slots_[tail & mask_];
  }
  // Producer. REQUIRES: the last BeginPush returned a slot, filled since.
  void CommitPush() {
    tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Producer. On failure value is left untouched.
  bool TryPush(T&& value) {
    T* slot = BeginPush();
    if (slot == nullptr) return false;
    *slot = std::move(value);
    CommitPush();
    return true;
  }

  // Consumer: the oldest value, in place, or nullptr when the ring is empty. Valid until
  // PopFront, which hands the slot back to the producer as it is.
  T* Front() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    return &slots_[head & mask_];
  }
  // Consumer. REQUIRES: Front() returned a value.
  void PopFront() {
    head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  // Consumer.
  std::optional<T> TryPop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return std::nullopt;
    std::optional<T> value(std::move(slots_[head & mask_]));
    slots_[head & mask_] = T{};  // release the moved-from slot's memory on the consumer side
    head_.store(head + 1, std::memory_order_release);
    return value;
  }

  bool Empty() const {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  size_t capacity() const { return slots_.size(); }

 private:
  std::vector<T> slots_;
  const size_t mask_;
  alignas(64) std::atomic<size_t> head_{0};  // next slot to pop (consumer-owned)
  alignas(64) std::atomic<size_t> tail_{0};  // next slot to push (producer-owned)
  alignas(64) size_t head_cache_ = 0;        // producer's last view of head_
};

}  // namespace nfq::sensor
