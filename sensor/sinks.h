// The daemon's alert sinks as one: the event log on stdout and the Canary console.
// Thread-safety: Publish/Tick/Flush from the alert thread only; FormatCounters from any.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/alert_sink.h"

namespace nfq::alerting {
class StdoutSink;
class ConsoleSink;
}  // namespace nfq::alerting

namespace nfq::sensor {

struct Options;
using LogFn = void (*)(std::string_view line);

class SinkSet {
 public:
  SinkSet();
  ~SinkSet();
  // now: the alert thread's reading of the steady clock (coarse is fine).
  void Publish(const alerting::Hit& hit, std::chrono::steady_clock::time_point now);
  void Tick();  // after each batch of hits (and at least every 100 ms): writes the event log
               // lines and the spool records the batch gathered
  void Flush();
  std::string FormatCounters() const;

 private:
  friend std::unique_ptr<SinkSet> MakeSinks(const Options&, LogFn, std::string*);
  std::unique_ptr<alerting::StdoutSink> stdout_sink_;
  std::unique_ptr<alerting::ConsoleSink> console_sink_;
};

// Builds the sinks the options ask for and starts the console worker (which registers at
// once when a factory URL is new). nullptr and *error (one line) when it cannot.
std::unique_ptr<SinkSet> MakeSinks(const Options& options, LogFn log, std::string* error);

// Validates the alerting options without starting anything (for --check).
bool CheckSinks(const Options& options, std::string* error);

}  // namespace nfq::sensor
