#include "sensor/sinks.h"

#include "alerting/hit.h"
#include "alerting/stdout_sink.h"
#include "sensor/options.h"

namespace nfq::sensor {

SinkSet::SinkSet() = default;
SinkSet::~SinkSet() = default;

void SinkSet::Publish(const alerting::Hit& hit) {
  if (stdout_sink_) stdout_sink_->Publish(hit);
}

void SinkSet::Tick() {}

void SinkSet::Flush() {
  if (stdout_sink_) stdout_sink_->Flush();
}

std::string SinkSet::FormatCounters() const { return {}; }

std::unique_ptr<SinkSet> MakeSinks(const Options& options, LogFn, std::string*) {
  auto sinks = std::make_unique<SinkSet>();
  if (options.stdout_events) {
    sinks->stdout_sink_ = std::make_unique<alerting::StdoutSink>(
        options.log_format == LogFormat::kJson ? alerting::LogFormat::kJson : alerting::LogFormat::kText);
  }
  return sinks;
}

bool CheckSinks(const Options&, std::string* error) {
  error->clear();
  return true;
}

}  // namespace nfq::sensor
