#include "sensor/options.h"

#include <getopt.h>

#include <charconv>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

namespace nfq::sensor {
namespace {

enum LongOnly : int {
  kQueueNum = 1000,
  kQueueMaxlen,
  kRcvbuf,
  kFlowTableCap,
  kFlowIdle,
  kContainerStateRoot,
  kFlowMemory,
  kEventQueueCap,
  kStateDir,
  kInstanceName,
  kFoldWindow,
  kProxy,
  kCaFile,
  kLogFormat,
  kFactoryFile,
  kDatedAsLatest,
  kNoStdout,
  kLogEveryRequest,
  kNoHandshakeCheck,
  kCheck,
  kVersion,
  kImdsUrl,
  kOwnMark,
  kBackoffInitial,
  kBackoffMax,
};

const option kLongOptions[] = {
    {"factory", required_argument, nullptr, 'a'},
    {"blacklist", required_argument, nullptr, 'b'},
    {"whitelist", required_argument, nullptr, 'w'},
    {"help", no_argument, nullptr, 'h'},
    {"queue-num", required_argument, nullptr, kQueueNum},
    {"queue-maxlen", required_argument, nullptr, kQueueMaxlen},
    {"rcvbuf", required_argument, nullptr, kRcvbuf},
    {"flow-table-cap", required_argument, nullptr, kFlowTableCap},
    {"flow-idle", required_argument, nullptr, kFlowIdle},
    {"container-state-root", required_argument, nullptr, kContainerStateRoot},
    {"flow-memory", required_argument, nullptr, kFlowMemory},
    {"event-queue-cap", required_argument, nullptr, kEventQueueCap},
    {"state-dir", required_argument, nullptr, kStateDir},
    {"instance-name", required_argument, nullptr, kInstanceName},
    {"fold-window", required_argument, nullptr, kFoldWindow},
    {"proxy", required_argument, nullptr, kProxy},
    {"ca-file", required_argument, nullptr, kCaFile},
    {"log-format", required_argument, nullptr, kLogFormat},
    {"factory-file", required_argument, nullptr, kFactoryFile},
    {"dated-as-latest", required_argument, nullptr, kDatedAsLatest},
    {"no-stdout", no_argument, nullptr, kNoStdout},
    {"log-every-request", no_argument, nullptr, kLogEveryRequest},
    {"no-handshake-check", no_argument, nullptr, kNoHandshakeCheck},
    {"check", no_argument, nullptr, kCheck},
    {"version", no_argument, nullptr, kVersion},
    // Test-only, not in --help: the lab's metadata service for registration look-ups, and a
    // mark of the lab's choosing (nfq-apeeper-rules exempts 0x4e46 alone, docs/rules.md).
    {"imds-url", required_argument, nullptr, kImdsUrl},
    {"own-mark", required_argument, nullptr, kOwnMark},
    {"backoff-initial-ms", required_argument, nullptr, kBackoffInitial},
    {"backoff-max-ms", required_argument, nullptr, kBackoffMax},
    {nullptr, 0, nullptr, 0},
};

// Whole-string unsigned parse within [min, max]; base 0 accepts 0x for marks.
std::optional<uint64_t> ParseUnsigned(const char* text, uint64_t min, uint64_t max, int base = 10) {
  std::string_view s(text);
  if (base == 0 && (s.starts_with("0x") || s.starts_with("0X"))) {
    s.remove_prefix(2);
    base = 16;
  } else if (base == 0) {
    base = 10;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

std::string Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

}  // namespace

std::string UsageText() {
  return R"(Usage: nfq-apeeper [options]
Alerts a Canary token when something on this instance requests the EC2 metadata service.
Every packet is accepted: the metadata service is never blocked or delayed.

  -a, --factory URL          Canary token factory URL (or --factory-file FILE, or the
                             environment variable NFQ_APEEPER_FACTORY). Not needed once a
                             token is stored in the state directory.
      --factory-file FILE    read the factory URL from FILE (first line)
  -b, --blacklist LIST       alert only on paths starting with one of these comma-separated
                             prefixes; "@FILE" reads them from FILE (re-read on SIGHUP)
  -w, --whitelist LIST       alert on every path except those starting with these prefixes
                             (neither: alert on every request; both: usage error)
      --queue-num N          NFQUEUE number, default 0 (must match the rules)
      --state-dir DIR        token and spool, default /var/lib/nfq-apeeper (mode 0700)
      --instance-name NAME   sent at registration
      --fold-window SECONDS  identical hits within this window fold into one follow-up hit
                             with a count (default 60; 0 sends every request as a hit)
      --proxy URL            proxy for console traffic (environment proxies are ignored)
      --ca-file FILE         CA bundle for console TLS (verification is always on)
      --log-format FORMAT    text | json: one event per line on stdout (default text)
      --dated-as-latest yes|no  match /YYYY-MM-DD/... paths like /latest/... (default yes)
      --check                validate options, state dir and queue module, then exit
      --version, --help

Tuning:
      --queue-maxlen N       kernel queue length before fail-open (default 4096)
      --rcvbuf BYTES         netlink receive buffer (default 8 MiB)
      --flow-table-cap N     flows followed at once (default 16384, LRU eviction)
      --flow-idle SECONDS    forget a flow idle this long (default 120)
      --flow-memory MIB      buffers all flows may hold together (default 64, LRU eviction)
      --event-queue-cap N    hits waiting for the alert thread (default 4096)
      --container-state-root DIR
                             root of the container runtimes' state files, for naming the
                             container of forwarded traffic (default /: var/lib/cni/networks,
                             var/lib/docker/containers)
      --no-stdout            do not write events to stdout
      --log-every-request    an event line for every request; by default the event log
                             folds as the console does (--fold-window; without a console
                             it keeps a line per request)
      --no-handshake-check   trust a SYN without its SYN-ACK: for firewall rules that do not
                             queue the server's SYN-ACKs (nfq-apeeper-rules does), or
                             containers behind a DNAT metadata proxy on a kernel without
                             conntrack tuples for NFQUEUE (docs/rules.md)
      --backoff-initial-ms N, --backoff-max-ms N
                             console retry backoff (default 1000 and 300000)

Exit status: 0 clean stop, 1 cannot start (cause and fix on stderr), 2 usage error.
Signals: TERM/INT stop, HUP reloads path lists, USR1 logs the counters.
)";
}

std::optional<std::string> ExpandPathList(const std::string& list, std::string* error) {
  if (!list.starts_with('@')) return list;
  const std::string path = list.substr(1);
  std::ifstream in(path);
  if (!in) {
    *error = fmt::format("cannot read path list file {}", path);
    return std::nullopt;
  }
  std::string joined, line;
  while (std::getline(in, line)) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    line = Trim(line);
    if (line.empty()) continue;
    if (!joined.empty()) joined += ',';
    joined += line;
  }
  return joined;
}

std::string RedactUrl(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "<url>";
  const auto host_begin = scheme_end + 3;
  auto host_end = url.find_first_of("/?#", host_begin);
  std::string authority = url.substr(host_begin, host_end == std::string::npos
                                                     ? std::string::npos
                                                     : host_end - host_begin);
  if (const auto at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
  return url.substr(0, host_begin) + authority;
}

ParseOutcome ParseOptions(int argc, char** argv, const char* env_factory) {
  Options opts;
  ParseOutcome out;
  auto fail = [&out](std::string message) {
    out.error = std::move(message);
    return out;
  };
  optind = 0;  // glibc: full re-initialisation, so tests can parse repeatedly
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":a:b:w:h", kLongOptions, nullptr)) != -1) {
    const char* arg = optarg;
    switch (c) {
      case 'a':
        if (*arg == '\0') return fail("-a/--factory: the URL is empty");
        opts.factory_url = arg;
        break;
      case 'b':
      case 'w': {
        // A second list would silently replace the first: all prefixes go in one list.
        auto& list = c == 'b' ? opts.blacklist : opts.whitelist;
        if (list) {
          return fail(fmt::format("{} given twice: put all prefixes in one comma-separated list",
                                  c == 'b' ? "-b/--blacklist" : "-w/--whitelist"));
        }
        list = arg;
        break;
      }
      case 'h': opts.help = true; break;
      case kQueueNum: {
        auto v = ParseUnsigned(arg, 0, 65535);
        if (!v) return fail(fmt::format("--queue-num: '{}' is not a number from 0 to 65535", arg));
        opts.queue_num = static_cast<uint16_t>(*v);
        break;
      }
      case kQueueMaxlen: {
        auto v = ParseUnsigned(arg, 1, 1u << 20);
        if (!v) return fail(fmt::format("--queue-maxlen: '{}' is not a number from 1 to 1048576", arg));
        opts.queue_maxlen = static_cast<uint32_t>(*v);
        break;
      }
      case kRcvbuf: {
        auto v = ParseUnsigned(arg, 65536, 1u << 30);
        if (!v) return fail(fmt::format("--rcvbuf: '{}' is not a byte count from 65536 to 1073741824", arg));
        opts.rcvbuf_bytes = static_cast<uint32_t>(*v);
        break;
      }
      case kFlowTableCap: {
        auto v = ParseUnsigned(arg, 16, 1u << 22);
        if (!v) return fail(fmt::format("--flow-table-cap: '{}' is not a number from 16 to 4194304", arg));
        opts.flow_table_cap = static_cast<uint32_t>(*v);
        break;
      }
      case kContainerStateRoot:
        if (*arg == '\0') return fail("--container-state-root: the directory is empty");
        opts.container_state_root = arg;
        break;
      case kFlowIdle: {
        auto v = ParseUnsigned(arg, 1, 86400);
        if (!v) return fail(fmt::format("--flow-idle: '{}' is not a number of seconds from 1 to 86400", arg));
        opts.flow_idle_seconds = static_cast<uint32_t>(*v);
        break;
      }
      case kFlowMemory: {
        auto v = ParseUnsigned(arg, 1, 4096);
        if (!v) return fail(fmt::format("--flow-memory: '{}' is not a number of MiB from 1 to 4096", arg));
        opts.flow_memory_mib = static_cast<uint32_t>(*v);
        break;
      }
      case kEventQueueCap: {
        auto v = ParseUnsigned(arg, 16, 1u << 20);
        if (!v) return fail(fmt::format("--event-queue-cap: '{}' is not a number from 16 to 1048576", arg));
        opts.event_queue_cap = static_cast<uint32_t>(*v);
        break;
      }
      case kStateDir:
        if (*arg == '\0') return fail("--state-dir: empty path");
        opts.state_dir = arg;
        break;
      case kInstanceName: opts.instance_name = arg; break;
      case kFoldWindow: {
        auto v = ParseUnsigned(arg, 0, 86400);
        if (!v) return fail(fmt::format("--fold-window: '{}' is not a number of seconds from 0 to 86400", arg));
        opts.fold_window_seconds = static_cast<uint32_t>(*v);
        break;
      }
      case kProxy: opts.proxy = arg; break;
      case kCaFile: opts.ca_file = arg; break;
      case kLogFormat: {
        const std::string_view f(arg);
        if (f == "text") opts.log_format = LogFormat::kText;
        else if (f == "json") opts.log_format = LogFormat::kJson;
        else return fail(fmt::format("--log-format: '{}' is not text or json", arg));
        break;
      }
      case kFactoryFile: opts.factory_file = arg; break;
      case kDatedAsLatest: {
        const std::string_view f(arg);
        if (f == "yes") opts.dated_as_latest = true;
        else if (f == "no") opts.dated_as_latest = false;
        else return fail(fmt::format("--dated-as-latest: '{}' is not yes or no", arg));
        break;
      }
      case kNoStdout: opts.stdout_events = false; break;
      case kLogEveryRequest: opts.log_every_request = true; break;
      case kNoHandshakeCheck: opts.handshake_check = false; break;
      case kCheck: opts.check = true; break;
      case kVersion: opts.version = true; break;
      case kImdsUrl: opts.imds_url = arg; break;
      case kOwnMark: {
        auto v = ParseUnsigned(arg, 0, std::numeric_limits<uint32_t>::max(), 0);
        if (!v) return fail(fmt::format("--own-mark: '{}' is not a 32-bit number", arg));
        opts.own_mark = static_cast<uint32_t>(*v);
        break;
      }
      case kBackoffInitial:
      case kBackoffMax: {
        auto v = ParseUnsigned(arg, 1, 3600000);
        if (!v) return fail(fmt::format("{}: '{}' is not a number of milliseconds from 1 to 3600000",
                                        c == kBackoffInitial ? "--backoff-initial-ms" : "--backoff-max-ms", arg));
        (c == kBackoffInitial ? opts.backoff_initial_ms : opts.backoff_max_ms) = static_cast<uint32_t>(*v);
        break;
      }
      case ':':
        return fail(fmt::format("option {} needs a value", argv[optind - 1]));
      default:
        if (optopt != 0) return fail(fmt::format("unknown option -{}", static_cast<char>(optopt)));
        return fail(fmt::format("unknown option {}", argv[optind - 1]));
    }
  }
  if (optind < argc) {
    return fail(fmt::format("unexpected argument '{}' (lists are comma-separated, without spaces)",
                            argv[optind]));
  }
  if (opts.help || opts.version) {
    out.options = std::move(opts);
    return out;
  }
  if (opts.backoff_initial_ms != 0 && opts.backoff_max_ms != 0 &&
      opts.backoff_initial_ms > opts.backoff_max_ms) {
    return fail(fmt::format("--backoff-initial-ms ({}) is larger than --backoff-max-ms ({})",
                            opts.backoff_initial_ms, opts.backoff_max_ms));
  }
  if (opts.blacklist && opts.whitelist) {
    return fail("-b/--blacklist and -w/--whitelist cannot be used together");
  }
  for (const auto* list : {&opts.blacklist, &opts.whitelist}) {
    if (*list && Trim(**list).empty()) {
      return fail(fmt::format("{}: the path list is empty", list == &opts.blacklist ? "--blacklist" : "--whitelist"));
    }
  }
  if (!opts.factory_url.empty() && !opts.factory_file.empty()) {
    return fail("--factory and --factory-file cannot be used together");
  }
  if (opts.factory_url.empty() && opts.factory_file.empty() && env_factory && *env_factory) {
    opts.factory_url = env_factory;
  }
  if (!opts.factory_file.empty()) {
    std::ifstream in(opts.factory_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return fail(fmt::format("--factory-file: cannot read {}", opts.factory_file));
    }
    opts.factory_url = Trim(line);
    if (opts.factory_url.empty()) {
      return fail(fmt::format("--factory-file: {} is empty", opts.factory_file));
    }
  }
  if (!opts.proxy.empty() && opts.proxy.find("://") == std::string::npos) {
    return fail("--proxy: give a URL such as http://proxy.example:3128");
  }
  if (!opts.factory_url.empty() && !opts.factory_url.starts_with("https://") &&
      !opts.factory_url.starts_with("http://")) {
    return fail("--factory: the factory URL must start with https:// or http://");
  }
  out.options = std::move(opts);
  return out;
}

}  // namespace nfq::sensor
