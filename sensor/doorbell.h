// Wakes a consumer that sleeps on an eventfd, but only when it is about to sleep: while it
// is busy or coalescing, the producer's ring costs one fence and one load, no system call.
//
// Thread-safety: Ring() from one producer thread; PrepareToSleep()/Awake() from the consumer.
// The consumer must re-check its work queue between PrepareToSleep() and sleeping: with the
// two fences, either the producer sees `sleeping_` or the consumer sees the new work.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace nfq::sensor {

class Doorbell {
 public:
  // REQUIRES: event_fd is an eventfd that outlives the doorbell.
  explicit Doorbell(int event_fd) : event_fd_(event_fd) {}

  // Producer, after publishing work.
  void Ring() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (sleeping_.load(std::memory_order_relaxed) && sleeping_.exchange(false)) {
      const uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(event_fd_, &one, sizeof one);
    }
  }
  // Consumer, before its last look at the work queue.
  void PrepareToSleep() {
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Consumer, after waking (or deciding not to sleep).
  void Awake() { sleeping_.store(false, std::memory_order_relaxed); }

  int fd() const { return event_fd_; }

 private:
  int event_fd_;
  std::atomic<bool> sleeping_{false};
};

}  // namespace nfq::sensor
