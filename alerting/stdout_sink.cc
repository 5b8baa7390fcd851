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

void StdoutSink::Publish(const Hit& hit) {
  std::string line = format_ == LogFormat::kJson ? HitJsonLine(hit) : HitTextLine(hit);
  line.push_back('\n');
  if (!WriteFully(fd_, line)) write_errors_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace nfq::alerting
