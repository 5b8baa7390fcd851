#include "sensor/daemon.h"

// netinet/in.h before linux/netfilter.h: the other order redefines struct in_addr.
#include <netinet/in.h>
#include <linux/netfilter.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <fmt/format.h>
#ifdef NFQ_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "alerting/alert_sink.h"
#include "alerting/fold.h"
#include "alerting/hit.h"
#include "rules/path_filter.h"
#include "sensor/attributor.h"
#include "sensor/container_address.h"
#include "sensor/doorbell.h"
#include "sensor/inspector.h"
#include "sensor/nfqueue.h"
#include "sensor/options.h"
#include "sensor/sinks.h"
#include "alerting/file_util.h"

namespace nfq::sensor {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitCannotStart = 1;
constexpr int kExitUsage = 2;

void Log(std::string_view line) {
  // One write per line so concurrent threads never interleave within a line.
  std::string out = fmt::format("nfq-apeeper: {}\n", line);
  const char* p = out.data();
  size_t left = out.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void Notify([[maybe_unused]] const char* state) {
#ifdef NFQ_HAVE_SYSTEMD
  sd_notify(0, state);
#endif
}

std::shared_ptr<const rules::PathFilter> BuildFilter(const Options& opts, std::string* error) {
  rules::FilterMode mode = rules::FilterMode::kAll;
  std::string items;
  const std::optional<std::string>* list = nullptr;
  if (opts.blacklist) {
    mode = rules::FilterMode::kBlacklist;
    list = &opts.blacklist;
  } else if (opts.whitelist) {
    mode = rules::FilterMode::kWhitelist;
    list = &opts.whitelist;
  }
  if (list != nullptr) {
    auto expanded = ExpandPathList(**list, error);
    if (!expanded) return nullptr;
    items = std::move(*expanded);
  }
  rules::FilterOptions filter_options;
  filter_options.treat_dated_versions_as_latest = opts.dated_as_latest;
  auto filter = rules::PathFilter::Create(mode, items, filter_options, error);
  if (!filter) return nullptr;
  return std::make_shared<const rules::PathFilter>(std::move(*filter));
}

// Kernel-side view of our queue, from /proc/net/netfilter/nfnetlink_queue.
struct KernelQueueStats {
  bool found = false;
  uint64_t waiting = 0, queue_dropped = 0, user_dropped = 0, id_sequence = 0;
};

KernelQueueStats ReadKernelQueueStats(uint16_t queue_num) {
  KernelQueueStats stats;
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    uint64_t number, portid, waiting, copy_mode, copy_range, queue_dropped, user_dropped, id_seq;
    if (fields >> number >> portid >> waiting >> copy_mode >> copy_range >> queue_dropped >>
            user_dropped >> id_seq &&
        number == queue_num) {
      stats = {true, waiting, queue_dropped, user_dropped, id_seq};
    }
  }
  return stats;
}

// Watches the kernel's side of the queue. With fail-open, packets that find the queue full are
// accepted without being queued and the kernel counts nothing: a queue near its length is the
// only sign that requests passed unseen. Sampled once a second off the packet thread.
class QueueWatch {
 public:
  QueueWatch(uint16_t queue_num, uint32_t maxlen) : queue_num_(queue_num), maxlen_(maxlen) {}

  void Sample() {
    const KernelQueueStats stats = ReadKernelQueueStats(queue_num_);
    const bool full = stats.found && stats.waiting * 10 >= uint64_t{maxlen_} * 9;
    if (full && !in_episode_) {
      episodes_.fetch_add(1, std::memory_order_relaxed);
      Log(fmt::format("queue {} is full ({} of {} waiting): fail-open is passing packets unseen "
                      "until the daemon catches up",
                      queue_num_, stats.waiting, maxlen_));
    }
    if (full) full_seconds_.fetch_add(1, std::memory_order_relaxed);
    if (!full && in_episode_) Log(fmt::format("queue {} has room again", queue_num_));
    in_episode_ = full;
  }
  uint64_t episodes() const { return episodes_.load(std::memory_order_relaxed); }
  uint64_t full_seconds() const { return full_seconds_.load(std::memory_order_relaxed); }

 private:
  uint16_t queue_num_;
  uint32_t maxlen_;
  bool in_episode_ = false;
  std::atomic<uint64_t> episodes_{0};
  std::atomic<uint64_t> full_seconds_{0};
};

std::string FormatCounters(const NfQueue& queue, const Inspector& inspector, const SinkSet& sinks,
                           const Attributor& attributor, const QueueWatch& queue_watch,
                           uint64_t loop_stalls, uint16_t queue_num) {
  const QueueCounters& q = queue.counters();
  const InspectorCounters& c = inspector.counters();
  uint64_t parse_errors = 0;
  for (uint64_t e : c.parse_errors) parse_errors += e;
  const KernelQueueStats k = ReadKernelQueueStats(queue_num);
  std::string line = fmt::format(
      "counters: packets={} bytes={} verdicts={} verdict_messages={} reads={} verdict_errors={} "
      "enobufs={} recv_errors={} "
      "malformed_messages={} parse_errors={} not_metadata={} truncated_packets={} ip_fragments={} "
      "payload_bytes={} flows={} flow_memory_bytes={} flows_created={} flows_evicted={} flows_expired={} "
      "flows_closed={} closes_ignored={} flows_midstream={} syn_restarts={} handshake_replies={} "
      "handshake_unmatched={} handshake_foreign={} flows_unconfirmed={} flows_redirected={} "
      "forgotten_pushed_out={} "
      "urgent_segments={} retransmissions={} retransmissions_after_close={} inconsistent={} out_of_order={} holes={} late_data={} "
      "requests={} "
      "hits={} filtered={} "
      "events_dropped={} overflow_summaries={}",
      q.packets, q.bytes, q.verdicts, q.verdict_messages, q.reads, q.verdict_errors, q.enobufs, q.recv_errors,
      q.malformed_messages, parse_errors, c.not_metadata, c.truncated_packets, c.ip_fragments, c.payload_bytes,
      inspector.flow_count(), inspector.flow_memory_bytes(), c.flows_created, c.flows_evicted, c.flows_expired, c.flows_closed,
      c.closes_ignored, c.flows_midstream, c.syn_restarts, c.handshake_replies, c.handshake_unmatched,
      c.handshake_foreign, c.flows_unconfirmed, c.flows_redirected, inspector.forgotten_pushed_out(),
      c.urgent_segments,
      c.retransmissions, c.retransmissions_after_close, c.inconsistent, c.out_of_order, c.holes, c.late_data, c.requests, c.hits, c.filtered, c.events_dropped,
      c.overflow_summaries);
  for (size_t i = 1; i < c.parse_errors.size(); ++i) {
    if (c.parse_errors[i] != 0) {
      line += fmt::format(" parse_error.{}={}", PacketErrorName(static_cast<PacketError>(i)),
                          c.parse_errors[i]);
    }
  }
  if (k.found) {
    line += fmt::format(" kernel.waiting={} kernel.queue_dropped={} kernel.user_dropped={} kernel.id_sequence={}",
                        k.waiting, k.queue_dropped, k.user_dropped, k.id_sequence);
  }
  const AttributorCounters a = attributor.counters();
  line += fmt::format(
      " attribution.requested={} attribution.late_requested={} attribution.dropped_at_cap={} "
      "attribution.resolved={} attribution.gone={} attribution.not_found={} "
      "attribution.timeouts={} attribution.evicted={}",
      a.requested, a.late_requested, a.dropped_at_cap, a.resolved, a.gone, a.not_found,
      a.timeouts, a.evicted);
  line += fmt::format(" queue_full_episodes={} queue_full_seconds={} loop_stalls={}",
                      queue_watch.episodes(), queue_watch.full_seconds(), loop_stalls);
  const std::string sink_counters = sinks.FormatCounters();
  if (!sink_counters.empty()) line += " " + sink_counters;
  return line;
}

// Returns an error line, or empty when DIR exists (or was created, mode 0700) and is writable.
std::string PrepareStateDir(const std::string& dir) {
  std::string error;
  if (alerting::EnsurePrivateDir(dir, &error)) return {};
  return fmt::format("{}; fix: create it, run as root, or pass --state-dir", error);
}

// How long a hit waits for its flow's attribution, counted from when the packet thread made
// it (so a backlog of hits does not add up waits).
constexpr auto kAttributionWait = std::chrono::milliseconds(200);
// How often the packet loop looks at signals and its 1 s timer, at the latest.
constexpr auto kHousekeeping = std::chrono::milliseconds(50);

// Completes a hit with who sent it: the local process for locally sent traffic, the input
// interface for forwarded traffic. Alert thread only (may wait up to kAttributionWait).
void Attribute(const InspectorEvent& event, alerting::Hit* hit, Attributor* attributor,
               ContainerAddressMap* addresses) {
  if (event.hook != NF_INET_LOCAL_OUT) {
    // Forwarded: no local process. The interface, and the container the runtimes' state
    // files give the source address to.
    char name[IF_NAMESIZE] = {};
    if (event.indev != 0 && if_indextoname(event.indev, name) != nullptr) hit->iface = name;
    if (addresses != nullptr) hit->container = addresses->Find(alerting::Folder::AddressWithoutPort(hit->src));
    return;
  }
  if (attributor == nullptr) return;
  // Copied straight from the attribution table into the (reused) hit: no copy in between.
  attributor->LookupWith(event.key, event.seen + kAttributionWait, [hit](const Attribution& found) {
    const ProcessInfo& p = found.process;
    hit->pid = p.pid;
    hit->owner = p.owner;
    hit->cmdline = p.cmdline;
    hit->exe = p.exe;
    hit->ancestors = p.ancestors;
    FormatContainerIdTo(p.container, &hit->container);
    hit->pod = p.container.pod_uid;
    if (p.gone) hit->flags += hit->flags.empty() ? "process_gone" : ",process_gone";
  });
}

// Moves hits from the packet thread's ring to the sinks. Wakes on the doorbell the packet
// thread rings after pushing, and at least every 100 ms so sinks can run their timers.
// While hits keep coming it drains every kCoalesce instead of waking for each batch: at
// tens of thousands of requests a second, a wake-up per packet cost more CPU (context
// switches on both threads) than everything the hits themselves need. 10 ms rather than 2:
// on 2 vCPUs each wake-up preempts the client or the server (keep-alive, all paths, wrk and
// nginx pinned: 63.0k req/s at 2 ms, 66.2k at 10 ms, 4 rounds each); the ring holds 4096
// hits, 10 ms of 400k hits a second, and a hit reaches the console well within a second.
// A drain that took a quarter of the ring or more is followed by the next at once: a small
// --event-queue-cap must not overflow for the sake of fewer wake-ups.
class AlertThread {
 public:
  AlertThread(Inspector::EventRing* ring, SinkSet* sinks, Doorbell* doorbell, Attributor* attributor,
              QueueWatch* queue_watch, ContainerAddressMap* container_addresses)
      : ring_(ring),
        sinks_(sinks),
        doorbell_(doorbell),
        attributor_(attributor),
        queue_watch_(queue_watch),
        container_addresses_(container_addresses),
        thread_([this] { Run(); }) {}
  ~AlertThread() { Stop(); }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(doorbell_->fd(), &one, sizeof one);
    thread_.join();
  }

 private:
  static constexpr std::chrono::milliseconds kCoalesce{10};
  static constexpr std::chrono::milliseconds kMaxLineDelay{100};

  // CLOCK_MONOTONIC (steady_clock's) at the kernel tick's resolution: a few nanoseconds
  // where a precise reading was a tenth of the alert thread's time per hit. Good for the
  // 100 ms line delay and the fold windows of seconds.
  static std::chrono::steady_clock::time_point CoarseNow() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) +
                                                 std::chrono::nanoseconds(ts.tv_nsec));
  }

  size_t Drain() {
    size_t drained = 0;
    auto flushed = CoarseNow();
    while (InspectorEvent* event = ring_->Front()) {
      FillHit(*event, &hit_);
      Attribute(*event, &hit_, attributor_, container_addresses_);
      ReleaseLargeBuffers(event);
      ring_->PopFront();
      const auto now = CoarseNow();
      sinks_->Publish(hit_, now);
      ++drained;
      // A batch can last (each hit may wait for attribution): its lines go out as it goes.
      if (now - flushed >= kMaxLineDelay) {
        sinks_->Tick(now);
        flushed = now;
      }
    }
    return drained;
  }

  void Run() {
    pthread_setname_np(pthread_self(), "nfq-alerts");
    for (;;) {
      const size_t drained = Drain();
      if (stop_.load(std::memory_order_acquire)) break;
      sinks_->Tick(CoarseNow());
      if (const auto now = std::chrono::steady_clock::now(); now >= next_sample_) {
        queue_watch_->Sample();
        next_sample_ = now + std::chrono::seconds(1);
      }
      // Busy: let the next hits gather, then only clear the eventfd. Idle: arm the doorbell,
      // look once more, and sleep until the packet thread rings it, or 100 ms.
      bool sleep = false;
      if (drained > 0 && drained < ring_->capacity() / 4) {
        std::this_thread::sleep_for(kCoalesce);
      } else {
        doorbell_->PrepareToSleep();
        sleep = ring_->Empty();
      }
      pollfd pfd{doorbell_->fd(), POLLIN, 0};
      if (poll(&pfd, 1, sleep ? 100 : 0) > 0) {
        uint64_t value;
        [[maybe_unused]] auto n = ::read(doorbell_->fd(), &value, sizeof value);
      }
      doorbell_->Awake();
    }
    Drain();
    sinks_->Flush();
  }

  Inspector::EventRing* ring_;
  alerting::Hit hit_;  // reused for every hit: its strings keep their capacity
  SinkSet* sinks_;
  Doorbell* doorbell_;
  Attributor* attributor_;
  QueueWatch* queue_watch_;
  ContainerAddressMap* container_addresses_;
  std::chrono::steady_clock::time_point next_sample_{};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int Check(const Options& opts) {
  int status = kExitOk;
  auto report = [&status](bool ok, std::string_view what) {
    fmt::print("{} {}\n", ok ? "ok:  " : "FAIL:", what);
    if (!ok) status = kExitCannotStart;
  };
  report(true, "options");
  if (const std::string err = PrepareStateDir(opts.state_dir); err.empty()) {
    report(true, fmt::format("state dir {}", opts.state_dir));
  } else {
    report(false, err);
  }
  const bool module = access("/proc/net/netfilter/nfnetlink_queue", F_OK) == 0;
  report(module, module ? "nfnetlink_queue is available"
                        : "nfnetlink_queue is not loaded; fix: modprobe nfnetlink_queue");
  std::string sink_error;
  const bool sinks_ok = CheckSinks(opts, &sink_error);
  if (sinks_ok && !sink_error.empty()) {
    fmt::print("warn: {}\n", sink_error);
  } else {
    report(sinks_ok, sink_error.empty() ? "alerting configuration" : sink_error);
  }
  return status;
}

}  // namespace

int RunDaemon(int argc, char** argv) {
  ParseOutcome parsed = ParseOptions(argc, argv, std::getenv("NFQ_APEEPER_FACTORY"));
  if (!parsed.options) {
    fmt::print(stderr, "nfq-apeeper: {} (see --help)\n", parsed.error);
    return kExitUsage;
  }
  const Options& opts = *parsed.options;
  if (opts.help) {
    fmt::print("{}", UsageText());
    return kExitOk;
  }
  if (opts.version) {
    fmt::print("nfq-apeeper {}\n", NFQ_APEEPER_VERSION);
    return kExitOk;
  }
  std::string error;
  auto filter = BuildFilter(opts, &error);
  if (!filter) {
    fmt::print(stderr, "nfq-apeeper: {} (see --help)\n", error);
    return kExitUsage;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    Log("cannot initialise libcurl");
    return kExitCannotStart;
  }
  struct CurlCleanup {
    ~CurlCleanup() { curl_global_cleanup(); }
  } curl_cleanup;
  if (opts.check) return Check(opts);

  if (const std::string err = PrepareStateDir(opts.state_dir); !err.empty()) {
    Log(err);
    return kExitCannotStart;
  }

  // Signals: blocked in every thread (threads inherit the mask) and read from a signalfd in
  // the packet loop, so no handler ever runs in the middle of anything.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&signals, s);
  sigset_t blocked = signals;
  sigaddset(&blocked, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  alerting::UniqueFd signal_fd(signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  alerting::UniqueFd timer_fd(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  alerting::UniqueFd wake_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!signal_fd || !timer_fd || !wake_fd) {
    Log(fmt::format("cannot create signalfd/timerfd/eventfd: {}", std::strerror(errno)));
    return kExitCannotStart;
  }
  const itimerspec tick{{1, 0}, {1, 0}};
  timerfd_settime(timer_fd.get(), 0, &tick, nullptr);

  QueueConfig queue_config{opts.queue_num, opts.queue_maxlen, opts.rcvbuf_bytes};
  QueueOpenResult opened = NfQueue::Open(queue_config);
  if (!opened.queue) {
    Log(opened.message);
    return kExitCannotStart;
  }
  NfQueue& queue = *opened.queue;

  std::unique_ptr<SinkSet> sinks = MakeSinks(opts, Log, &error);
  if (!sinks) {
    Log(error);
    return kExitCannotStart;
  }

  Inspector::EventRing events(opts.event_queue_cap);
  InspectorConfig inspector_config;
  inspector_config.queue_num = opts.queue_num;
  inspector_config.flow_table_cap = opts.flow_table_cap;
  inspector_config.forgotten_cap = size_t{opts.flow_table_cap} * 4;
  inspector_config.flow_idle = std::chrono::seconds(opts.flow_idle_seconds);
  inspector_config.flow_memory_budget = size_t{opts.flow_memory_mib} << 20;
  inspector_config.handshake_check = opts.handshake_check;
  Attributor attributor{AttributorConfig{}};
  Inspector inspector(inspector_config, filter, &events, &attributor);
  QueueWatch queue_watch(opts.queue_num, opts.queue_maxlen);
  uint64_t loop_stalls = 0;
  ContainerAddressMap container_addresses(opts.container_state_root);  // the alert thread's alone
  Doorbell alert_doorbell(wake_fd.get());
  AlertThread alert_thread(&events, sinks.get(), &alert_doorbell, &attributor, &queue_watch,
                           &container_addresses);

  Log(fmt::format("started {}: queue {} (maxlen {}, --rcvbuf {} bytes, kernel reports {}), "
                  "handshake check {} (conntrack tuples: {}), paths: {}",
                  NFQ_APEEPER_VERSION, opts.queue_num, opts.queue_maxlen, opts.rcvbuf_bytes,
                  queue.rcvbuf_bytes(), opts.handshake_check ? "on" : "off",
                  queue.conntrack_info() ? "yes" : "no", filter->Describe()));

  Notify("READY=1");

  uint64_t reported_enobufs = 0;
  uint64_t reported_dropped = 0;
  bool warned_unconfirmed = false;
  // The loop waits in the queue read itself (one system call per read under load) and
  // looks at the signals and the timer at least every kHousekeeping.
  if (!queue.EnableWaitingReceive(kHousekeeping)) {
    Log(fmt::format("cannot set the queue socket's receive timeout: {}", std::strerror(errno)));
    return kExitCannotStart;
  }
  auto next_housekeeping = std::chrono::steady_clock::now();
  bool running = true;
  while (running) {
    const uint64_t hits_before = inspector.counters().hits;
    queue.ReceiveWaiting([&inspector](const QueuedPacket& packet) { inspector.OnPacket(packet); });
    attributor.Wake();  // one eventfd write, only when the datagram started connections
    if (inspector.counters().hits != hits_before) alert_doorbell.Ring();
    const auto now = std::chrono::steady_clock::now();
    if (now < next_housekeeping) continue;
    next_housekeeping = now + kHousekeeping;
    pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {timer_fd.get(), POLLIN, 0}};
    if (poll(fds, 2, 0) <= 0) continue;
    if (fds[1].revents) {
      uint64_t expirations = 0;
      if (::read(timer_fd.get(), &expirations, sizeof expirations) == sizeof expirations &&
          expirations > 2) {
        // The loop did not run for seconds (SIGSTOP, starvation): the queue may have filled,
        // and fail-open then passes packets that nobody reads.
        ++loop_stalls;
        Log(fmt::format("the packet loop was stalled for about {} s: requests beyond the queue "
                        "length (--queue-maxlen {}) may have passed unseen (fail-open)",
                        expirations, opts.queue_maxlen));
      }
      inspector.Tick();
      Notify("WATCHDOG=1");
      if (queue.counters().enobufs != reported_enobufs) {
        Log(fmt::format("lost visibility: the kernel could not deliver {} packet messages "
                        "(ENOBUFS; the packets were accepted); consider a larger --rcvbuf",
                        queue.counters().enobufs - reported_enobufs));
        reported_enobufs = queue.counters().enobufs;
      }
      if (opts.handshake_check && !warned_unconfirmed && inspector.counters().flows_unconfirmed >= 20) {
        // Once: a raw-socket attack is one or two connections, twenty are a setup the
        // check does not fit, and every one of them is a midstream hit.
        warned_unconfirmed = true;
        const bool none = inspector.counters().handshake_replies == 0;
        Log(fmt::format("{} connections went unconfirmed (no SYN-ACK from the metadata service "
                        "before their data; their requests are flagged midstream){}. {}; "
                        "docs/rules.md",
                        inspector.counters().flows_unconfirmed,
                        none ? " and no SYN-ACK has come back at all" : "",
                        none ? "Either the firewall rules do not queue the server's SYN-ACKs "
                               "(rerun nfq-apeeper-rules install), or the connections are "
                               "DNATed to a metadata proxy on a kernel without conntrack tuples "
                               "(run with --no-handshake-check)"
                             : "Containers behind a DNAT metadata proxy on a kernel without "
                               "conntrack tuples: run with --no-handshake-check; or asymmetric "
                               "routing"));
      }
      if (inspector.counters().events_dropped != reported_dropped) {
        Log(fmt::format("the alert queue was full: {} hits are reported as counts in summary hits "
                        "flagged queue_overflow (raise --event-queue-cap)",
                        inspector.counters().events_dropped - reported_dropped));
        reported_dropped = inspector.counters().events_dropped;
      }
    }
    if (fds[0].revents) {
      signalfd_siginfo info;
      while (::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
        switch (info.ssi_signo) {
          case SIGTERM:
          case SIGINT:
            running = false;
            break;
          case SIGHUP: {
            Notify("RELOADING=1");
            std::string reload_error;
            if (auto reloaded = BuildFilter(opts, &reload_error)) {
              inspector.SetFilter(reloaded);
              filter = std::move(reloaded);
              Log(fmt::format("reloaded path lists: {}", filter->Describe()));
            } else {
              Log(fmt::format("reload failed, keeping {}: {}", filter->Describe(), reload_error));
            }
            Notify("READY=1");
            break;
          }
          case SIGUSR1:
            Log(FormatCounters(queue, inspector, *sinks, attributor, queue_watch, loop_stalls, opts.queue_num));
            break;
          default:
            break;
        }
      }
    }
  }

  Notify("STOPPING=1");
  // Counters first, while the kernel still shows the queue; the verdicts Close sends for
  // what was still waiting show in the last line.
  Log(FormatCounters(queue, inspector, *sinks, attributor, queue_watch, loop_stalls, opts.queue_num));
  queue.Close();
  // Requests the full ring could not carry one by one wait in a summary for room: the alert
  // thread is still draining, so room comes; without this their counts would die here.
  for (int i = 0; i < 2000 && !inspector.FlushPending(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (inspector.pending_overflow() != 0) {
    Log(fmt::format("stop: {} requests could not be handed to the alert thread within 2 s and are "
                    "not reported (the alert queue stayed full)",
                    inspector.pending_overflow()));
  }
  alert_thread.Stop();
  Log(fmt::format("stopped: packets={} verdicts={} verdict_errors={} enobufs={}",
                  queue.counters().packets, queue.counters().verdicts,
                  queue.counters().verdict_errors, queue.counters().enobufs));
  return kExitOk;
}

}  // namespace nfq::sensor
