#include "sensor/sinks.h"

#include <fmt/format.h>
#include <unistd.h>

#include "alerting/console_sink.h"
#include "alerting/fold.h"
#include "alerting/hit.h"
#include "alerting/registration.h"
#include "alerting/stdout_sink.h"
#include "sensor/options.h"

namespace nfq::sensor {
namespace {

alerting::ConsoleSink::Config ConsoleConfig(const Options& options, LogFn log) {
  alerting::ConsoleSink::Config config;
  config.factory_url = options.factory_url;
  config.state_dir = options.state_dir;
  config.instance_name = options.instance_name;
  config.fold_window = std::chrono::seconds(options.fold_window_seconds);
  config.proxy = options.proxy;
  config.ca_file = options.ca_file;
  config.user_agent = fmt::format("nfq-apeeper/{}", NFQ_APEEPER_VERSION);
  config.so_mark = static_cast<int>(options.own_mark);
  config.imds_base_url = options.imds_url;
  if (options.backoff_initial_ms != 0) config.backoff_initial = std::chrono::milliseconds(options.backoff_initial_ms);
  if (options.backoff_max_ms != 0) config.backoff_max = std::chrono::milliseconds(options.backoff_max_ms);
  config.log = log;
  return config;
}

}  // namespace

SinkSet::SinkSet() = default;

SinkSet::~SinkSet() {
  if (console_sink_) console_sink_->Stop();
}

void SinkSet::Publish(const alerting::Hit& hit, std::chrono::steady_clock::time_point now) {
  if (stdout_sink_) {
    if (!event_folder_) {
      stdout_sink_->Publish(hit);
    } else {
      // Follow-ups of closed windows first, so that a hit after its key's window closed
      // opens a new one instead of passing through unfolded.
      if (now >= next_event_expiry_) PublishEventFollowUps(now);
      if (auto out = event_folder_->Offer(hit, now)) stdout_sink_->Publish(*out);
      event_folded_.store(event_folder_->folded(), std::memory_order_relaxed);
    }
  }
  if (console_sink_) console_sink_->Publish(hit, now);
}

void SinkSet::PublishEventFollowUps(std::chrono::steady_clock::time_point now) {
  for (const alerting::Hit& h : event_folder_->Expire(now)) stdout_sink_->Publish(h);
  // A window opened from now on closes at now + window or later.
  next_event_expiry_ = event_folder_->NextDeadline().value_or(now + fold_window_);
}

void SinkSet::Tick(std::chrono::steady_clock::time_point now) {
  if (event_folder_ && now >= next_event_expiry_) PublishEventFollowUps(now);
  // The end of a batch of hits: one write for its event lines, one for its spool records.
  if (stdout_sink_) stdout_sink_->Flush();
  if (console_sink_) console_sink_->EndBatch();
}

void SinkSet::Flush() {
  if (event_folder_) {
    for (const alerting::Hit& h : event_folder_->DrainAll()) stdout_sink_->Publish(h);
  }
  if (stdout_sink_) stdout_sink_->Flush();
  if (console_sink_) console_sink_->Stop();  // pending folds and the spool reach the disk
}

std::string SinkSet::FormatCounters() const {
  std::string out;
  if (stdout_sink_) {
    out += fmt::format("stdout.write_errors={}", stdout_sink_->write_errors());
    if (event_folder_) out += fmt::format(" stdout.folded={}", event_folded_.load(std::memory_order_relaxed));
  }
  if (console_sink_) {
    if (!out.empty()) out += ' ';
    out += alerting::ConsoleSink::FormatCounters(console_sink_->RecentCounters());
  }
  return out;
}

std::unique_ptr<SinkSet> MakeSinks(const Options& options, LogFn log, std::string* error,
                                   int event_fd) {
  auto sinks = std::make_unique<SinkSet>();
  if (options.stdout_events) {
    sinks->stdout_sink_ = std::make_unique<alerting::StdoutSink>(
        options.log_format == LogFormat::kJson ? alerting::LogFormat::kJson : alerting::LogFormat::kText,
        event_fd);
  }
  if (options.factory_url.empty() && !alerting::LoadTokenUrl(options.state_dir, "")) {
    // Nothing to report to: the only case in which hits may go to stdout alone. Then stdout
    // is the only record of a hit and keeps a line per request: a folded line waits for its
    // window in memory, and a kill -9 would lose its count (the console's journal has it).
    log("no factory URL and no stored token: hits go to stdout only (give --factory URL)");
    return sinks;
  }
  if (sinks->stdout_sink_ && !options.log_every_request && options.fold_window_seconds > 0) {
    sinks->fold_window_ = std::chrono::seconds(options.fold_window_seconds);
    sinks->event_folder_ = std::make_unique<alerting::Folder>(sinks->fold_window_);
  }
  // A console is configured (a factory URL or a stored token): failing to set it up (say an
  // unreadable --ca-file) must stop the start, not quietly leave hits out of the spool.
  auto console = alerting::ConsoleSink::Create(ConsoleConfig(options, log), error);
  if (!console) return nullptr;
  console->Start();
  sinks->console_sink_ = std::move(console);
  return sinks;
}

bool CheckSinks(const Options& options, std::string* error) {
  error->clear();
  if (!options.ca_file.empty() && ::access(options.ca_file.c_str(), R_OK) != 0) {
    *error = fmt::format("--ca-file {} is not readable; fix: give a PEM CA bundle", options.ca_file);
    return false;
  }
  if (options.factory_url.empty() && !alerting::LoadTokenUrl(options.state_dir, "")) {
    *error = "no factory URL given and no token stored in " + options.state_dir +
             ": hits go to stdout only (give --factory URL)";
    return true;
  }
  // Never Create: beside a running daemon that would open its spool and fold journal.
  return alerting::ConsoleSink::Check(ConsoleConfig(options, [](std::string_view) {}), error);
}

}  // namespace nfq::sensor
