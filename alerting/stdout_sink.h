// The event log: one line per hit (text or JSON) on a file descriptor, normally stdout.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "alerting/alert_sink.h"

namespace nfq::alerting {

enum class LogFormat { kText, kJson };

class StdoutSink : public AlertSink {
 public:
  // Does not own fd. Lines are gathered and handed to write(2) whole lines at a time (EINTR
  // and short writes retried) at each Flush, or sooner past kMaxBuffered: one system call per
  // batch of hits instead of one per hit, and a line waits at most until its batch ends.
  explicit StdoutSink(LogFormat format, int fd = 1);
  ~StdoutSink() override;

  void Publish(const Hit& hit) override;
  void Flush() override;

  // Lines that could not be written (EPIPE, EIO, EAGAIN...). Thread-safe.
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

  static constexpr size_t kMaxBuffered = 64 * 1024;

 private:
  LogFormat format_;
  int fd_;
  std::string buffered_;
  uint64_t buffered_lines_ = 0;
  std::atomic<uint64_t> write_errors_{0};
};

// Writes all of `data` to fd, retrying EINTR and short writes. False on any other error.
bool WriteFully(int fd, std::string_view data);

}  // namespace nfq::alerting
