#include "alerting/stdout_sink.h"

#include <unistd.h>

#include <cerrno>

#include "alerting/hit.h"
#include "alerting/hit_format.h"

namespace nfq::alerting {

bool WriteFully(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

StdoutSink::StdoutSink(LogFormat format, int fd) : format_(format), fd_(fd) {}

StdoutSink::~StdoutSink() { Flush(); }

void StdoutSink::Publish(const Hit& hit) {
  if (format_ == LogFormat::kJson) {
    AppendHitJsonLine(hit, &buffered_);
  } else {
    buffered_ += HitTextLine(hit);
  }
  buffered_.push_back('\n');
  ++buffered_lines_;
  if (buffered_.size() >= kMaxBuffered) Flush();
}

void StdoutSink::Flush() {
  if (buffered_.empty()) return;
  if (!WriteFully(fd_, buffered_)) {
    write_errors_.fetch_add(buffered_lines_, std::memory_order_relaxed);
  }
  buffered_.clear();
  buffered_lines_ = 0;
}

}  // namespace nfq::alerting
