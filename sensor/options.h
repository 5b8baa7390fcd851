// Command-line options of the daemon (contract: "The daemon"). Parsing is pure: no I/O
// except reading --factory-file and @FILE path lists when asked to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nfq::sensor {

enum class LogFormat { kText, kJson };

struct Options {
  std::string factory_url;   // secret: never logged
  std::string factory_file;
  std::optional<std::string> blacklist;  // as typed: "a,b" or "@/path/to/file"
  std::optional<std::string> whitelist;
  uint16_t queue_num = 0;
  uint32_t queue_maxlen = 4096;
  uint32_t rcvbuf_bytes = 8u << 20;
  uint32_t flow_table_cap = 16384;
  uint32_t flow_idle_seconds = 120;
  // Where the container runtimes' state files are (var/lib/cni, var/lib/docker below it).
  std::string container_state_root = "/";
  uint32_t flow_memory_mib = 64;
  uint32_t event_queue_cap = 4096;
  std::string state_dir = "/var/lib/nfq-apeeper";
  std::string instance_name;
  uint32_t fold_window_seconds = 60;
  std::string proxy;
  std::string ca_file;
  LogFormat log_format = LogFormat::kText;
  bool dated_as_latest = true;
  bool stdout_events = true;
  // The event log folds as the console does (one line per console hit); true: a line for
  // every request, whatever the fold window.
  bool log_every_request = false;
  bool handshake_check = true;  // the rules queue the server's SYN-ACKs (docs/rules.md)
  bool check = false;
  bool version = false;
  bool help = false;
  // Test hooks, undocumented in --help's main block: override where the metadata service and
  // fwmark for own traffic live.
  std::string imds_url = "http://169.254.169.254";
  uint32_t own_mark = 0x4e46;
  uint32_t backoff_initial_ms = 0;  // 0: the console sink's default
  uint32_t backoff_max_ms = 0;
};

struct ParseOutcome {
  std::optional<Options> options;
  std::string error;  // one line, set when options is empty
};

// argv as given to main. Reads NFQ_APEEPER_FACTORY from env (passed in, for tests).
ParseOutcome ParseOptions(int argc, char** argv, const char* env_factory);

std::string UsageText();

// Resolves "@FILE" list syntax: returns the comma-joined items of FILE (one per line or
// comma-separated, '#' comments), or the list unchanged. Sets *error on failure.
std::optional<std::string> ExpandPathList(const std::string& list, std::string* error);

// "https://console.example/..." -> "https://console.example" (for logs: never the secret part).
std::string RedactUrl(const std::string& url);

}  // namespace nfq::sensor
