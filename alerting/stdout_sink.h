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
  // Does not own fd. Each line is handed to write(2) whole (EINTR and short writes retried),
  // so lines from one sink never interleave and nothing waits in a user-space buffer.
  explicit StdoutSink(LogFormat format, int fd = 1);

  void Publish(const Hit& hit) override;

  // Lines that could not be written (EPIPE, EIO, EAGAIN...). Thread-safe.
  uint64_t write_errors() const { return write_errors_.load(std::memory_order_relaxed); }

 private:
  LogFormat format_;
  int fd_;
  std::atomic<uint64_t> write_errors_{0};
};

// Writes all of `data` to fd, retrying EINTR and short writes. False on any other error.
bool WriteFully(int fd, std::string_view data);

}  // namespace nfq::alerting
