#include "sensor/attributor.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sensor/socket_lookup.h"

namespace nfq::sensor {
namespace {

constexpr size_t kLateRequestCap = 256;
constexpr auto kLateRequestGrace = std::chrono::milliseconds(20);
// The worker looks at its queues at least this often, woken or not.
constexpr auto kWorkerIdleWake = std::chrono::milliseconds(100);

}  // namespace

const char* AttributionStatusName(AttributionStatus status) {
  switch (status) {
    case AttributionStatus::kResolved:
      return "resolved";
    case AttributionStatus::kNotFound:
      return "not_found";
    case AttributionStatus::kTimeout:
      return "timeout";
  }
  return "unknown";
}

struct FlowResolver::State {
  SocketLookup sockets;
  ProcessLookup processes;
  State(std::chrono::milliseconds timeout, std::string root)
      : sockets(timeout), processes(std::move(root)) {}
};

FlowResolver::FlowResolver(std::chrono::milliseconds socket_timeout, std::string proc_root)
    : state_(std::make_shared<State>(socket_timeout, std::move(proc_root))) {}

Attribution FlowResolver::operator()(const FlowKey& key, int64_t uid) {
  Attribution result;
  result.status = AttributionStatus::kNotFound;
  SocketInfo socket;
  const SocketQuery query = SocketQuery::ForOutbound(key);
  const SocketLookupStatus found = state_->sockets.Find(query, &socket);
  // inode 0: TIME_WAIT or orphaned (closed by its process): nobody holds it any more.
  if (found != SocketLookupStatus::kFound || socket.inode == 0) return result;
  // Before a scan of every process: is the socket still open? A timeout or an error says
  // "maybe", and a socket found by a dump cannot be asked again cheaply: scan then.
  auto socket_still_open = [&] {
    if (!socket.by_exact_tuple) return true;
    SocketInfo again;
    const SocketLookupStatus status = state_->sockets.FindExact(query, &again);
    if (status == SocketLookupStatus::kTimeout || status == SocketLookupStatus::kUnavailable) return true;
    return status == SocketLookupStatus::kFound && again.inode == socket.inode;
  };
  FunctionRef<bool()> still_held(socket_still_open);
  const auto pid = state_->processes.FindSocketOwner(
      socket.inode, uid >= 0 ? uid : int64_t{socket.uid}, &still_held);
  if (!pid) return result;
  auto info = state_->processes.Describe(*pid);
  if (!info) return result;
  result.status = AttributionStatus::kResolved;
  result.process = std::move(*info);
  return result;
}

Attributor::Attributor(const AttributorConfig& config, Resolver resolver)
    : config_(config),
      resolver_(resolver ? std::move(resolver)
                         : Resolver(FlowResolver(config.socket_timeout, config.proc_root))),
      requests_(config.request_cap),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      worker_([this] { Run(); }) {}

Attributor::~Attributor() { Stop(); }

void Attributor::Stop() {
  if (!worker_.joinable()) return;
  stop_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
  worker_.join();
  resolved_cv_.notify_all();
}

bool Attributor::Request(const FlowKey& key, int64_t uid) {
  if (!requests_.TryPush(Request_{key, uid})) {
    dropped_at_cap_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  requested_.fetch_add(1, std::memory_order_relaxed);
  wake_pending_ = true;
  return true;
}

void Attributor::Wake() {
  if (!wake_pending_) return;
  wake_pending_ = false;
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
}

Attribution Attributor::Lookup(const FlowKey& key, std::chrono::steady_clock::time_point deadline) {
  Attribution found;
  const AttributionStatus status =
      LookupWith(key, deadline, [&found](const Attribution& attribution) { found = attribution; });
  if (status != AttributionStatus::kResolved) found = Attribution{status, {}};
  return found;
}

AttributionStatus Attributor::LookupWith(const FlowKey& key,
                                         std::chrono::steady_clock::time_point deadline,
                                         FunctionRef<void(const Attribution&)> use) {
  auto answer = [&use](const Attribution& attribution) {
    if (attribution.status == AttributionStatus::kResolved) use(attribution);
    return attribution.status;
  };
  std::unique_lock lock(mutex_);
  if (const auto it = results_.find(key); it != results_.end() && it->second.done) {
    return answer(it->second.attribution);  // the common case: resolved before its hit arrived
  }
  // A request still in the ring shows up as pending within microseconds of the worker
  // waking; give it that long before asking again.
  const auto grace = std::min(deadline, std::chrono::steady_clock::now() + kLateRequestGrace);
  resolved_cv_.wait_until(
      lock, grace, [&] { return results_.contains(key) || stop_.load(std::memory_order_acquire); });
  if (!results_.contains(key) && !stop_.load(std::memory_order_acquire) &&
      late_requests_.size() < kLateRequestCap) {
    // Never requested (the daemon joined the flow mid-stream), dropped at the cap, or
    // resolved so long ago that it was evicted.
    late_requests_.push_back(Request_{key, -1});
    late_requested_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
  }
  const bool answered = resolved_cv_.wait_until(lock, deadline, [&] {
    const auto it = results_.find(key);
    return (it != results_.end() && it->second.done) || stop_.load(std::memory_order_acquire);
  });
  if (const auto it = results_.find(key); answered && it != results_.end() && it->second.done) {
    return answer(it->second.attribution);
  }
  timeouts_.fetch_add(1, std::memory_order_relaxed);
  return AttributionStatus::kTimeout;
}

AttributorCounters Attributor::counters() const {
  AttributorCounters c;
  c.requested = requested_.load(std::memory_order_relaxed);
  c.late_requested = late_requested_.load(std::memory_order_relaxed);
  c.dropped_at_cap = dropped_at_cap_.load(std::memory_order_relaxed);
  c.resolved = resolved_.load(std::memory_order_relaxed);
  c.gone = gone_.load(std::memory_order_relaxed);
  c.not_found = not_found_.load(std::memory_order_relaxed);
  c.timeouts = timeouts_.load(std::memory_order_relaxed);
  c.evicted = evicted_.load(std::memory_order_relaxed);
  return c;
}

void Attributor::Run() {
  pthread_setname_np(pthread_self(), "nfq-attribute");  // for top -H, perf and thread_cpu.py
  std::vector<Request_> late;
  while (!stop_.load(std::memory_order_acquire)) {
    while (auto request = requests_.TryPop()) {
      Resolve(*request);
      if (stop_.load(std::memory_order_acquire)) return;
    }
    {
      std::lock_guard lock(mutex_);
      late.swap(late_requests_);
    }
    for (const Request_& request : late) {
      bool known = false;
      {
        std::lock_guard lock(mutex_);
        known = results_.contains(request.key);
      }
      if (!known) Resolve(request);
    }
    late.clear();
    if (!requests_.Empty()) continue;
    pollfd pfd{wake_fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(kWorkerIdleWake.count())) > 0) {
      uint64_t value;
      [[maybe_unused]] auto n = ::read(wake_fd_.get(), &value, sizeof value);
    }
  }
}

void Attributor::Resolve(const Request_& request) {
  const auto now = std::chrono::steady_clock::now();
  {
    // Pending: a Lookup arriving now waits for this resolution instead of asking again.
    std::lock_guard lock(mutex_);
    auto [it, inserted] = results_.try_emplace(request.key);
    if (!inserted) order_.erase(it->second.order);
    it->second.done = false;
    it->second.updated = now;
    it->second.order = order_.insert(order_.end(), request.key);
    EvictLocked(now);
  }
  resolved_cv_.notify_all();  // ends a Lookup's grace wait: no late request needed
  Attribution attribution = resolver_(request.key, request.uid);
  if (attribution.status == AttributionStatus::kResolved) {
    resolved_.fetch_add(1, std::memory_order_relaxed);
    if (attribution.process.gone) gone_.fetch_add(1, std::memory_order_relaxed);
  } else {
    not_found_.fetch_add(1, std::memory_order_relaxed);
  }
  {
    std::lock_guard lock(mutex_);
    if (auto it = results_.find(request.key); it != results_.end()) {
      it->second.done = true;
      it->second.attribution = std::move(attribution);
    }
  }
  resolved_cv_.notify_all();
}

void Attributor::EvictLocked(std::chrono::steady_clock::time_point now) {
  while (!order_.empty()) {
    const auto oldest = results_.find(order_.front());
    const bool over_cap = results_.size() > config_.result_cap;
    const bool expired =
        oldest != results_.end() && now - oldest->second.updated > config_.result_ttl;
    if (!over_cap && !expired) break;
    if (over_cap && !expired) evicted_.fetch_add(1, std::memory_order_relaxed);
    if (oldest != results_.end()) results_.erase(oldest);
    order_.pop_front();
  }
}

}  // namespace nfq::sensor
