// The "decide" half of the packet path: given a queued packet that has already been
// ACCEPTed, follow its flow, read its HTTP requests, apply the path filter and hand hits to
// the alert thread. Pure computation over bounded state: no I/O, no locks, no waiting.
//
// Thread-safety: packet thread only (the filter may be swapped there, e.g. on SIGHUP).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

#include "alerting/hit.h"
#include "rules/path.h"
#include "sensor/flow_table.h"
#include "sensor/packet.h"
#include "sensor/spsc_ring.h"

namespace nfq::rules {
class PathFilter;
}

namespace nfq::sensor {

struct QueuedPacket;
struct HttpRequest;
class Attributor;

// What the packet thread knows of a hit. The alert thread makes the alerting::Hit of it
// (FillHit) and completes it (attribution, interface name): the ring between them carries
// under half of a Hit's bytes, and the packet thread formats nothing.
struct InspectorEvent {
  std::string url;  // as sent, URL credentials redacted
  std::string norm;
  std::string method;
  std::string flags;
  std::string host;
  std::string user_agent;
  FlowKey key;
  int64_t uid = -1;  // socket owner; -1 when the kernel gave none
  int64_t gid = -1;
  uint64_t count = 1;
  alerting::Hit::Clock::time_point first{};
  alerting::Hit::Clock::time_point last{};
  std::chrono::steady_clock::time_point seen{};  // when the packet thread made the hit
  uint32_t indev = 0;  // input interface index, 0 for locally generated traffic
  uint16_t queue = 0;
  uint8_t hook = 0;  // NF_INET_*
  bool imds_v2 = false;
};

// Frees, on the consumer's side, the strings of a ring slot that a long request made large, so
// that the ring's slots keep only small buffers for reuse. Call before PopFront.
void ReleaseLargeBuffers(InspectorEvent* event);

// Sets every field of *hit from event; attribution fields (pid, owner, cmdline, exe,
// ancestors, container, pod, iface) are cleared for the alert thread to fill. *hit may hold
// an earlier hit: its strings keep their capacity, so a reused Hit costs no allocation.
void FillHit(const InspectorEvent& event, alerting::Hit* hit);

struct InspectorCounters {
  uint64_t packets = 0;
  std::array<uint64_t, 16> parse_errors{};  // indexed by PacketError
  uint64_t not_metadata = 0;     // destination other than the metadata service port 80
  uint64_t truncated_packets = 0;
  uint64_t ip_fragments = 0;     // first fragments of fragmented segments (each reported)
  uint64_t payload_bytes = 0;
  uint64_t flows_created = 0;
  uint64_t flows_evicted = 0;    // at the flow-table cap or the flow memory budget
  uint64_t flows_expired = 0;    // idle timeout
  uint64_t flows_closed = 0;     // FIN/RST
  uint64_t closes_ignored = 0;   // FIN/RST not at the next expected byte: the receiver would
                                 // not take it either (RFC 5961), so the flow is kept
  uint64_t flows_midstream = 0;  // flows joined without their SYN (requests flagged midstream)
  uint64_t syn_restarts = 0;     // SYNs on a followed tuple or one just followed (see inspector.cc)
  uint64_t handshake_replies = 0;    // server SYN-ACKs that confirmed a followed SYN
  uint64_t handshake_unmatched = 0;  // SYN-ACKs for no followed SYN (or acking another seq)
  uint64_t flows_unconfirmed = 0;    // flows whose data came before their SYN-ACK (midstream)
  uint64_t flows_redirected = 0;     // NAT sends them elsewhere: no SYN-ACK from the service
  uint64_t handshake_foreign = 0;    // SYN-ACKs from the service's address that came in on the
                                     // wrong interface (forged, or asymmetric routing)
  uint64_t urgent_segments = 0;  // segments with TCP urgent data (their flow is flagged)
  uint64_t retransmissions = 0;  // segments carrying bytes seen before
  uint64_t retransmissions_after_close = 0;  // ...arriving after the flow's close (ignored)
  uint64_t inconsistent = 0;     // ...whose bytes differed from the first copy
  uint64_t out_of_order = 0;     // segments held until the bytes before them came
  uint64_t holes = 0;            // missing bytes given up on (window or buffer cap)
  uint64_t late_data = 0;        // segments for ranges already passed (reported, flagged)
  uint64_t requests = 0;
  uint64_t hits = 0;             // requests the filter alerted on
  uint64_t filtered = 0;         // requests the filter let pass silently
  uint64_t events_dropped = 0;   // hits whose details were lost because the alert queue was full
  uint64_t overflow_summaries = 0;  // summary hits that carried their count (flag queue_overflow)
};

struct InspectorConfig {
  uint16_t queue_num = 0;
  size_t flow_table_cap = 16384;
  std::chrono::seconds flow_idle{120};
  bool check_destination = true;  // ignore packets not addressed to the metadata service
  // Heap bytes all flows' parsers and reassembly buffers may hold together; beyond it the
  // least recently used flows are evicted (each can hold ~26 KiB: a request line, headers,
  // out-of-order segments), so a flood of stalled connections cannot grow the daemon.
  size_t flow_memory_budget = 64u << 20;
  // Keys of flows no longer followed that are remembered (see ForgottenFlows).
  size_t forgotten_cap = 65536;
  // The rules queue the server's SYN-ACKs (nfq-apeeper-rules does): a SYN counts only when
  // one acknowledges it, and data before that flags the flow midstream. Off for rules
  // without the SYN-ACK rule, or every flow would be flagged.
  bool handshake_check = true;
};

class Inspector {
 public:
  using EventRing = SpscRing<InspectorEvent>;

  // REQUIRES: events (and attributor, when given) outlive the inspector; filter non-null.
  // With an attributor, the first packet of each locally sent connection (hook output) asks
  // it who sent it: one lock-free ring push, no system call.
  Inspector(const InspectorConfig& config, std::shared_ptr<const rules::PathFilter> filter,
            EventRing* events, Attributor* attributor = nullptr);
  ~Inspector();

  void OnPacket(const QueuedPacket& packet);
  // Expires idle flows; call about once a second.
  void Tick();
  // Pushes the queue_overflow summary still waiting for room in the ring, if any; true when
  // nothing is left waiting. For the stop: retry while the alert thread drains.
  bool FlushPending();
  uint64_t pending_overflow() const { return overflow_count_; }

  void SetFilter(std::shared_ptr<const rules::PathFilter> filter);
  const InspectorCounters& counters() const { return counters_; }
  size_t flow_count() const { return flows_.size(); }
  size_t flow_memory_bytes() const { return memory_bytes_; }
  uint64_t forgotten_pushed_out() const { return forgotten_.pushed_out(); }

 private:
  // The server's SYN-ACK (queued by the rules in prerouting): confirms the flow's SYN.
  void OnHandshakeReply(const TcpSegment& segment, const QueuedPacket& packet);
  // Data arrived on a flow whose SYN no SYN-ACK confirmed yet.
  void OnUnconfirmedData(Flow& flow, const QueuedPacket& packet);
  void Feed(Flow& flow, std::string_view bytes, uint32_t extra_flags);
  void FinishFlow(Flow& flow);
  void OnHole(Flow& flow);
  // Re-measures flow's buffers into memory_bytes_, then evicts old flows over the budget.
  void Account(Flow& flow);
  void Forget(const Flow& flow) { memory_bytes_ -= flow.footprint; }
  // Ends a flow (idle, evicted, closed): reports what it had, remembers its key.
  void Retire(Flow& flow);
  // Retires a flow its sender closed (FIN/RST at the expected byte) and erases it.
  void Close(const FlowKey& key, Flow& flow);
  // A FIN or RST ending at seq is where the receiver expects the next byte.
  static bool CloseInWindow(const Flow& flow, uint32_t seq);
  void ReadLateBytes(Flow& flow, std::string_view late, uint32_t extra_flags);
  void ReportFragment(Flow& flow, uint64_t requests_before);
  void FlushOverflow();
  // Sets every field of *event (a ring slot with an earlier hit's leftovers, or overflow_).
  void FillEvent(const HttpRequest& request, const Flow& flow, uint32_t flags,
                 alerting::Hit::Clock::time_point now, InspectorEvent* event);
  void OnRequest(const HttpRequest& request, const Flow& flow, uint32_t extra_flags);

  InspectorConfig config_;
  std::shared_ptr<const rules::PathFilter> filter_;
  EventRing* events_;
  Attributor* attributor_;
  FlowTable flows_;
  ForgottenFlows forgotten_;
  RecentCloses recent_closes_{1024};
  Flow evicted_;  // scratch for the flow that FindOrCreate pushed out
  InspectorCounters counters_;
  // OnRequest's working space, reused so that a request allocates nothing in steady state.
  rules::ResolvedPath resolved_;
  std::string path_scratch_;
  InspectorEvent overflow_;      // first hit dropped at the queue cap, stands for the rest
  uint64_t overflow_count_ = 0;  // requests not yet reported because the queue was full
  size_t memory_bytes_ = 0;      // sum of the flows' footprints
};

// True for 169.254.169.254:80 and [fd00:ec2::254]:80 as the destination.
bool IsMetadataService(const FlowKey& key);
// True for 169.254.169.254:80 and [fd00:ec2::254]:80 as the source (the server's replies).
bool IsFromMetadataService(const FlowKey& key);
// The key of the other direction of the same connection.
FlowKey ReverseKey(const FlowKey& key);
const char* HookName(uint8_t hook);

}  // namespace nfq::sensor
