// Where hits go. The daemon's alert thread calls Publish for every hit, in order.
#pragma once

namespace nfq::alerting {

struct Hit;

class AlertSink {
 public:
  virtual ~AlertSink() = default;
  // REQUIRES: called from one thread at a time. May block briefly (stdout, spool append);
  // never called on the packet thread.
  virtual void Publish(const Hit& hit) = 0;
  // Flush whatever is buffered; called after each batch of hits and at stop. Default: nothing
  // buffered.
  virtual void Flush() {}
};

}  // namespace nfq::alerting
