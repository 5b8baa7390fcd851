// Who sent a flow: resolves the local socket of an outbound flow to its process off the
// packet path. The packet thread asks at the first packet of a flow (SYN or first payload),
// when the client is most surely still alive; a worker thread resolves (sock_diag -> inode
// -> /proc/*/fd -> pid -> description and container) and keeps the answer, keyed by flow, in
// a bounded table; the alert thread collects it when the flow's hit is published, waiting a
// bounded time for a resolution still running.
//
// Forwarded traffic (hook prerouting/forward) has no local process: don't Request it; the
// caller's identity is its source address and input interface.
//
// Thread-safety: Request and Wake from one producer thread (the packet thread) only: they
// take no lock, and Request makes no system call. Lookup from any other thread(s). The
// worker is internal. counters() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sensor/function_ref.h"
#include "sensor/packet.h"
#include "sensor/process_lookup.h"
#include "sensor/spsc_ring.h"
#include "alerting/file_util.h"

namespace nfq::sensor {

enum class AttributionStatus : uint8_t {
  kResolved,  // process holds (or held, see process.gone) the flow's socket
  kNotFound,  // socket or owning process no longer found (client already gone)
  kTimeout,   // not resolved before the caller's deadline
};

const char* AttributionStatusName(AttributionStatus status);

struct Attribution {
  AttributionStatus status = AttributionStatus::kTimeout;
  ProcessInfo process;  // meaningful when kResolved
};

struct AttributorConfig {
  size_t request_cap = 1024;             // pending requests from the packet thread
  size_t result_cap = 4096;              // resolved flows kept for Lookup
  std::chrono::seconds result_ttl{600};  // beyond the flow idle timeout: keep-alive flows
  std::chrono::milliseconds socket_timeout{50};
  std::string proc_root = "/proc";
};

struct AttributorCounters {
  uint64_t requested = 0;       // accepted from the packet thread
  uint64_t late_requested = 0;  // asked by Lookup for a flow the worker had not seen
  uint64_t dropped_at_cap = 0;  // request ring full
  uint64_t resolved = 0;
  uint64_t gone = 0;  // resolved, but the process had exited while being read
  uint64_t not_found = 0;
  uint64_t timeouts = 0;  // Lookup deadlines that passed
  uint64_t evicted = 0;   // results dropped at result_cap before anyone asked
};

class Attributor {
 public:
  // Resolves one flow; called on the worker thread only. The default one reads the
  // kernel's socket tables and /proc.
  using Resolver = std::function<Attribution(const FlowKey& key, int64_t uid)>;

  explicit Attributor(const AttributorConfig& config, Resolver resolver = nullptr);
  ~Attributor();  // Stop()
  Attributor(const Attributor&) = delete;
  Attributor& operator=(const Attributor&) = delete;

  // Packet thread. uid: the socket owner NFQUEUE reported, -1 when none. Returns false (and
  // counts a drop) when the ring is full. Lock-free, no system call.
  bool Request(const FlowKey& key, int64_t uid);
  // Packet thread, once per received batch: one eventfd write, only if Request succeeded
  // since the last Wake.
  void Wake();

  // Alert thread. The result for key, waiting until deadline while it is being resolved.
  // A key never requested is requested here (a flow the daemon joined mid-stream).
  Attribution Lookup(const FlowKey& key, std::chrono::steady_clock::time_point deadline);
  // The same without a copy: a resolved result is handed to `use`, under the table's lock
  // (keep it short: copy what is needed); returns the status (kResolved: `use` was called).
  AttributionStatus LookupWith(const FlowKey& key, std::chrono::steady_clock::time_point deadline,
                               FunctionRef<void(const Attribution&)> use);

  AttributorCounters counters() const;
  // Stops and joins the worker; later Lookups answer from what was resolved.
  void Stop();

 private:
  struct Request_ {
    FlowKey key;
    int64_t uid = -1;
  };
  struct Entry {
    bool done = false;
    Attribution attribution;
    std::chrono::steady_clock::time_point updated;
    std::list<FlowKey>::iterator order;
  };

  void Run();
  void Resolve(const Request_& request);
  void EvictLocked(std::chrono::steady_clock::time_point now);

  AttributorConfig config_;
  Resolver resolver_;
  SpscRing<Request_> requests_;
  bool wake_pending_ = false;  // packet thread only
  alerting::UniqueFd wake_fd_;

  mutable std::mutex mutex_;
  std::condition_variable resolved_cv_;
  std::unordered_map<FlowKey, Entry, FlowKeyHash> results_;  // guarded by mutex_
  std::list<FlowKey> order_;                                 // oldest first; guarded
  std::vector<Request_> late_requests_;                      // from Lookup; guarded

  std::atomic<uint64_t> requested_{0}, late_requested_{0}, dropped_at_cap_{0}, resolved_{0},
      gone_{0}, not_found_{0}, timeouts_{0}, evicted_{0};
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

// The default Resolver's work, usable on its own (one thread at a time).
class FlowResolver {
 public:
  FlowResolver(std::chrono::milliseconds socket_timeout, std::string proc_root);
  Attribution operator()(const FlowKey& key, int64_t uid);

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared: std::function needs a copyable target
};

}  // namespace nfq::sensor
