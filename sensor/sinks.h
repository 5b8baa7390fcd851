// The daemon's alert sinks as one: the event log on stdout and the Canary console.
// The event log folds as the console does (same window, same key: one line per console hit,
// with its count, first and last), unless --log-every-request: a line per request at tens
// of thousands a second cost a tenth of the instance's throughput in what reads it
// (docs/performance.md), and count/first/last are the contract's fields for exactly this.
// Its pending follow-ups are not journaled: after a kill -9 only the console has them.
// Thread-safety: Publish/Tick/Flush from the alert thread only; FormatCounters from any, and
// it never waits for the console's worker (the packet thread calls it on SIGUSR1).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "alerting/alert_sink.h"

namespace nfq::alerting {
class StdoutSink;
class ConsoleSink;
class Folder;
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
  // After each batch of hits (and at least every 100 ms): writes the event log lines and the
  // spool records the batch gathered, and the event log's follow-ups whose windows closed.
  void Tick(std::chrono::steady_clock::time_point now);
  void Flush();  // at stop: every pending follow-up goes out, windows closed early
  std::string FormatCounters() const;

 private:
  friend std::unique_ptr<SinkSet> MakeSinks(const Options&, LogFn, std::string*, int);
  void PublishEventFollowUps(std::chrono::steady_clock::time_point now);

  std::unique_ptr<alerting::StdoutSink> stdout_sink_;
  std::unique_ptr<alerting::Folder> event_folder_;  // null: a line per request
  // No window of event_folder_ closes before this: Expire (a walk of the whole table) runs
  // only when one may have.
  std::chrono::steady_clock::time_point next_event_expiry_{};
  std::chrono::milliseconds fold_window_{};
  std::atomic<uint64_t> event_folded_{0};  // event_folder_->folded(), for FormatCounters
  std::unique_ptr<alerting::ConsoleSink> console_sink_;
};

// Builds the sinks the options ask for and starts the console worker (which registers at
// once when a factory URL is new). nullptr and *error (one line) when it cannot. The event
// log goes to event_fd (not owned; it must outlive the sinks).
std::unique_ptr<SinkSet> MakeSinks(const Options& options, LogFn log, std::string* error,
                                   int event_fd = 1);

// Validates the alerting options without starting anything (for --check).
bool CheckSinks(const Options& options, std::string* error);

}  // namespace nfq::sensor
