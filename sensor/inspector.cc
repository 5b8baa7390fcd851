#include "sensor/inspector.h"

// netinet/in.h before linux/netfilter.h: the other order redefines struct in_addr.
#include <netinet/in.h>
#include <linux/netfilter.h>

#include "rules/path.h"
#include "rules/path_filter.h"
#include "sensor/attributor.h"
#include "sensor/http_parser.h"
#include "sensor/nfqueue.h"
#include "sensor/process_lookup.h"
#include "sensor/userinfo.h"

namespace nfq::sensor {
namespace {

constexpr std::array<uint8_t, 4> kMetadataV4 = {169, 254, 169, 254};
constexpr std::array<uint8_t, 16> kMetadataV6 = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                                 0,    0,    0,    0,    0, 0, 0x02, 0x54};
constexpr uint16_t kHttpPort = 80;

}  // namespace

namespace {

bool IsMetadataEndpoint(IpFamily family, const std::array<uint8_t, 16>& addr, uint16_t port) {
  if (port != kHttpPort) return false;
  if (family == IpFamily::kV4) return std::equal(kMetadataV4.begin(), kMetadataV4.end(), addr.begin());
  return addr == kMetadataV6;
}

}  // namespace

bool IsMetadataService(const FlowKey& key) {
  return IsMetadataEndpoint(key.family, key.dst, key.dst_port);
}

bool IsFromMetadataService(const FlowKey& key) {
  return IsMetadataEndpoint(key.family, key.src, key.src_port);
}

FlowKey ReverseKey(const FlowKey& key) {
  FlowKey reversed = key;
  std::swap(reversed.src, reversed.dst);
  std::swap(reversed.src_port, reversed.dst_port);
  return reversed;
}

const char* HookName(uint8_t hook) {
  switch (hook) {
    case NF_INET_PRE_ROUTING: return "prerouting";
    case NF_INET_LOCAL_IN: return "input";
    case NF_INET_FORWARD: return "forward";
    case NF_INET_LOCAL_OUT: return "output";
    case NF_INET_POST_ROUTING: return "postrouting";
    default: return "unknown";
  }
}

Inspector::Inspector(const InspectorConfig& config, std::shared_ptr<const rules::PathFilter> filter,
                     EventRing* events, Attributor* attributor)
    : config_(config),
      filter_(std::move(filter)),
      events_(events),
      attributor_(attributor),
      flows_(config.flow_table_cap, config.flow_idle),
      forgotten_(config.forgotten_cap) {}

Inspector::~Inspector() = default;

void Inspector::SetFilter(std::shared_ptr<const rules::PathFilter> filter) {
  filter_ = std::move(filter);
}

void Inspector::OnPacket(const QueuedPacket& packet) {
  ++counters_.packets;
  const PacketParseResult parsed = ParsePacket(packet.payload);
  if (parsed.error != PacketError::kNone) {
    const auto index = static_cast<size_t>(parsed.error);
    if (index < counters_.parse_errors.size()) ++counters_.parse_errors[index];
    return;
  }
  const TcpSegment& segment = parsed.segment;
  if (!IsMetadataService(segment.key)) {
    constexpr uint8_t kHandshakeMask = tcp_flag::kSyn | tcp_flag::kAck | tcp_flag::kRst | tcp_flag::kFin;
    if ((segment.flags & kHandshakeMask) == (tcp_flag::kSyn | tcp_flag::kAck) &&
        IsFromMetadataService(segment.key)) {
      OnHandshakeReply(segment, packet);
      return;
    }
    if (config_.check_destination) {
      ++counters_.not_metadata;
      return;
    }
  }
  const bool truncated = segment.truncated || packet.original_length > packet.payload.size();
  if (truncated) ++counters_.truncated_packets;
  const uint32_t extra_flags = truncated ? request_flag::kTruncated : 0;
  const bool syn = (segment.flags & tcp_flag::kSyn) != 0;
  const bool rst = (segment.flags & tcp_flag::kRst) != 0;
  // A FIN counts only with ACK (a receiver drops a segment without it once established); a
  // SYN with FIN or RST is no close (the SYN restarts, below).
  const bool closing =
      !syn && (rst || (segment.flags & (tcp_flag::kFin | tcp_flag::kAck)) ==
                          (tcp_flag::kFin | tcp_flag::kAck));
  const auto now = FlowTable::Clock::now();

  if (segment.ip_fragment) ++counters_.ip_fragments;
  const uint64_t requests_before = counters_.requests;

  // A receiver never reads the payload of a RST: it is not stream data.
  const std::span<const uint8_t> payload = rst ? std::span<const uint8_t>{} : segment.payload;
  if (payload.empty() && !syn && !segment.ip_fragment) {
    if (closing) {
      if (Flow* flow = flows_.Find(segment.key)) {
        if (CloseInWindow(*flow, segment.seq)) {
          Close(segment.key, *flow);
        } else {
          ++counters_.closes_ignored;
        }
      }
    }
    return;  // pure ACKs carry nothing to read
  }

  Flow* flow = flows_.FindAndTouch(segment.key, now);
  const bool created = flow == nullptr;
  if (created) {
    if (!syn && !segment.ip_fragment && !payload.empty() &&
        recent_closes_.IsRetransmission(
            segment.key, segment.seq,
            std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size()), now)) {
      // TCP retransmitting an unacknowledged segment after the close: bytes already read.
      ++counters_.retransmissions_after_close;
      return;
    }
    bool did_evict = false;
    flow = flows_.FindOrCreate(segment.key, now, &evicted_, &did_evict);
    if (did_evict) {
      ++counters_.flows_evicted;
      Retire(evicted_);
      evicted_ = Flow{};
    }
    ++counters_.flows_created;
    const bool followed_just_before = forgotten_.Take(segment.key, now);  // forgets the key
    if (!syn) {
      // Joined after the connection began (daemon restart, eviction, idle timeout, a SYN
      // passed unseen): where the server's stream stands is unknown. A raw-socket sender can
      // exploit that (bytes the server drops as old, read here as the start of a request
      // whose body hides the next), so every request on such a flow is reported.
      flow->sticky_flags |= request_flag::kMidstream;
      ++counters_.flows_midstream;
    } else if (followed_just_before) {
      // A SYN on a tuple just followed: a reused tuple, or a forged SYN the server drops
      // while the real connection goes on (see ForgottenFlows). The handshake check tells
      // them apart (only the new connection's SYN gets a SYN-ACK; the forged one's data
      // comes unconfirmed and is flagged then); without it, flag the flow now. Clients do
      // reuse a tuple within seconds when the server closed first (its side keeps the
      // TIME_WAIT): at thousands of connections a second, every port comes round again.
      ++counters_.syn_restarts;
      if (!config_.handshake_check) flow->sticky_flags |= request_flag::kMidstream;
    }
  }
  flow->hook = packet.hook;
  flow->indev = packet.indev;
  if (packet.has_uid) {
    flow->has_uid = true;
    flow->uid = packet.uid;
    flow->gid = packet.gid;
  }

  if (syn) {
    const bool restart = !created && (!flow->has_syn || segment.seq != flow->syn_seq);
    if (restart) {
      // A SYN for a connection being followed: a new connection on a reused tuple, or one
      // the server drops (an established connection answers it with a challenge ACK). The
      // sensor cannot tell which, so it starts over and reports what follows.
      FinishFlow(*flow);
      flow->attribution_requested = false;  // a new connection, maybe a new process
      flow->parser.Reset();
      flow->sticky_flags |= request_flag::kMidstream;
      ++counters_.syn_restarts;
    }
    if (created || restart) {  // else a retransmitted SYN: nothing changes
      flow->has_syn = true;
      flow->syn_seq = segment.seq;
      // Where the SYN left (own connections) or came in (forwarded): see OnHandshakeReply.
      flow->syn_dev = packet.hook == NF_INET_LOCAL_OUT ? packet.outdev : packet.indev;
      flow->handshake_confirmed = false;
      flow->stream.Start(segment.seq + 1);
    }
  }
  if (segment.ip_fragment) flow->sticky_flags |= request_flag::kIpFragment;
  if ((segment.flags & tcp_flag::kUrg) && !payload.empty()) {
    // Receivers without SO_OOBINLINE (the Linux default) take the urgent byte out of the
    // stream: what the server reads differs from these bytes by one the sensor cannot place.
    ++counters_.urgent_segments;
    flow->sticky_flags |= request_flag::kUrgent;
  }
  // Only locally sent traffic has a local socket; forwarded traffic is identified by its
  // source address and input interface.
  if (attributor_ != nullptr && packet.hook == NF_INET_LOCAL_OUT && !flow->attribution_requested) {
    attributor_->Request(segment.key, flow->has_uid ? int64_t{flow->uid} : -1);
    flow->attribution_requested = true;  // a drop at the cap is counted there; Lookup retries
  }
  if (!payload.empty() && flow->has_syn && !flow->handshake_confirmed && config_.handshake_check &&
      (flow->sticky_flags & request_flag::kMidstream) == 0) {
    OnUnconfirmedData(*flow, packet);
  }
  if (!payload.empty()) {
    const uint32_t seq = segment.seq + (syn ? 1u : 0u);
    const std::string_view bytes(reinterpret_cast<const char*>(payload.data()), payload.size());
    // Joined mid-stream (flagged above): read from here.
    if (!flow->stream.started()) flow->stream.Start(seq);
    const uint32_t result = flow->stream.Offer(
        seq, bytes,
        [&](std::string_view in_order) {
          // Flagged before the bytes are read: the request they complete carries the flag.
          if (flow->stream.inconsistent()) flow->sticky_flags |= request_flag::kInconsistent;
          Feed(*flow, in_order, extra_flags);
        },
        [&] { OnHole(*flow); },
        [&](std::string_view late) { ReadLateBytes(*flow, late, extra_flags); });
    if (result & offer_result::kRetransmit) ++counters_.retransmissions;
    if (result & offer_result::kBuffered) ++counters_.out_of_order;
    if (result & offer_result::kInconsistent) {
      ++counters_.inconsistent;
      flow->sticky_flags |= request_flag::kInconsistent;  // for later requests too
    }
    counters_.payload_bytes += bytes.size();
  }
  if (segment.ip_fragment) ReportFragment(*flow, requests_before);
  if (closing) {
    // A RST counts at its own sequence number, a FIN after its payload.
    const uint32_t end = segment.seq + (syn ? 1u : 0u) + static_cast<uint32_t>(payload.size());
    if (CloseInWindow(*flow, end)) {
      Close(segment.key, *flow);
      return;
    }
    ++counters_.closes_ignored;
  }
  Account(*flow);
}

void Inspector::OnHandshakeReply(const TcpSegment& segment, const QueuedPacket& packet) {
  // Only confirms, never creates: a SYN-ACK for no followed SYN changes nothing. The rules
  // queue it in input/forward, where NAT has been undone, so it is addressed to the flow as
  // the sensor keyed it.
  Flow* flow = flows_.Find(ReverseKey(segment.key));
  if (flow == nullptr || !flow->has_syn || segment.ack != flow->syn_seq + 1) {
    ++counters_.handshake_unmatched;
    return;
  }
  // Where it came in: the instance's own connection left on syn_dev (the kernel's choice,
  // policy routing included), so its reply comes back there; a container's SYN came in on
  // the container's link, where a SYN-ACK the container forges comes in too. (The rules
  // never queue one from lo: forged on the instance itself.)
  const bool own = flow->hook == NF_INET_LOCAL_OUT;
  if (own ? packet.indev != flow->syn_dev : packet.indev == flow->syn_dev) {
    ++counters_.handshake_foreign;
    return;
  }
  ++counters_.handshake_replies;
  flow->handshake_confirmed = true;
}

void Inspector::OnUnconfirmedData(Flow& flow, const QueuedPacket& packet) {
  if (packet.has_conntrack && !packet.conntrack_reply_direction && packet.conntrack.original == flow.key) {
    // This flow's own conntrack entry, in its direction (not an entry a sender crafted so
    // that its packets match as replies).
    const FlowKey& original = packet.conntrack.original;
    const FlowKey& reply = packet.conntrack.reply;
    if (reply.src != original.dst || reply.src_port != original.dst_port) {
      // DNATed to a local agent or proxy (kube2iam, kiam, the ECS agent): the SYN-ACK comes
      // from there, not from the metadata address the rules match. Nothing to wait for.
      ++counters_.flows_redirected;
      flow.handshake_confirmed = true;
      return;
    }
  }
  // Data before the server accepted the SYN: a client sends none (fast open aside), but a
  // raw-socket sender does, after a SYN the server drops because the tuple is live (it
  // answers with a challenge ACK, not a SYN-ACK), framing the real stream as a body.
  flow.sticky_flags |= request_flag::kMidstream;
  ++counters_.flows_unconfirmed;
}

bool Inspector::CloseInWindow(const Flow& flow, uint32_t seq) {
  // A raw-socket sender can forge an RST or FIN the server ignores (out of window) to make
  // the sensor drop the flow; a real close is at the next byte the server expects.
  return !flow.stream.started() || flow.stream.next_seq() == seq;
}

void Inspector::Close(const FlowKey& key, Flow& flow) {
  Retire(flow);
  recent_closes_.Add(key, std::move(flow.stream), FlowTable::Clock::now());
  flows_.Erase(key);
  ++counters_.flows_closed;
}

void Inspector::Retire(Flow& flow) {
  // Closed, idle or evicted: if the connection goes on, its next segment starts a flow
  // without a SYN (flagged midstream); a SYN on the same tuple is flagged too (forgotten_).
  FinishFlow(flow);
  Forget(flow);
  forgotten_.Add(flow.key, FlowTable::Clock::now());
}

void Inspector::Account(Flow& flow) {
  const size_t footprint = flow.parser.buffered_capacity() + flow.stream.memory_bytes();
  memory_bytes_ = memory_bytes_ - flow.footprint + footprint;
  flow.footprint = footprint;
  // flow is the most recently used: the oldest is always another one while two remain.
  while (memory_bytes_ > config_.flow_memory_budget && flows_.size() > 1 &&
         flows_.PopOldest(&evicted_)) {
    ++counters_.flows_evicted;
    Retire(evicted_);
    evicted_ = Flow{};
  }
}

bool Inspector::FlushPending() {
  FlushOverflow();
  return overflow_count_ == 0;
}

void Inspector::Tick() {
  FlushOverflow();
  counters_.flows_expired +=
      flows_.ExpireIdle(FlowTable::Clock::now(), [this](Flow& flow) { Retire(flow); });
}

void Inspector::Feed(Flow& flow, std::string_view bytes, uint32_t extra_flags) {
  flow.parser.Feed(bytes, [&](const HttpRequest& request) { OnRequest(request, flow, extra_flags); });
}

void Inspector::FinishFlow(Flow& flow) {
  flow.stream.Flush([&](std::string_view in_order) { Feed(flow, in_order, 0); },
                    [&] { OnHole(flow); });
  flow.parser.Finish([&](const HttpRequest& request) { OnRequest(request, flow, 0); });
}

void Inspector::ReadLateBytes(Flow& flow, std::string_view late, uint32_t extra_flags) {
  // The flow's parser has moved past these bytes; read them on their own. Whatever they hold
  // is reported, flagged late_data, whatever the path lists say.
  ++counters_.late_data;
  HttpRequestParser scratch;
  auto report = [&](const HttpRequest& request) {
    OnRequest(request, flow, extra_flags | request_flag::kLateData);
  };
  scratch.Feed(late, report);
  scratch.Finish(report);
}

void Inspector::ReportFragment(Flow& flow, uint64_t requests_before) {
  // The rest of this segment travels in IP fragments without a TCP header: the rules cannot
  // queue them and the stream will show a hole. Clients that are not crafting packets never
  // fragment TCP to the metadata service, so this is reported now, whatever the path lists
  // say, with what the first fragment showed; everything after on the flow is flagged too.
  // Where the next segment starts is unknown, so the stream restarts at whichever comes next.
  flow.stream.Flush([&](std::string_view in_order) { Feed(flow, in_order, 0); },
                    [&] { OnHole(flow); });
  flow.parser.Finish([&](const HttpRequest& request) { OnRequest(request, flow, 0); });
  flow.stream.Reset();
  if (counters_.requests == requests_before) {
    HttpRequest unseen;
    unseen.flags = request_flag::kTruncated;
    OnRequest(unseen, flow, 0);
  }
}

void Inspector::OnHole(Flow& flow) {
  // Bytes are missing: what was read so far is reported as truncated, and reading resumes
  // at the next request line the parser can find.
  ++counters_.holes;
  flow.parser.Finish([&](const HttpRequest& request) { OnRequest(request, flow, 0); });
}

void Inspector::OnRequest(const HttpRequest& request, const Flow& flow, uint32_t extra_flags) {
  ++counters_.requests;
  const uint32_t flags = request.flags | extra_flags | flow.sticky_flags;
  const bool non_http = (flags & request_flag::kNonHttp) != 0;
  // Bytes that are not HTTP have no path; they always alert, once per flow. So does any
  // request after which the sensor cannot follow the flow (request_flag::kAlwaysReport).
  if (non_http) {
    resolved_.path.clear();
    resolved_.query.clear();
    resolved_.flags = 0;
  } else {
    rules::ResolveTargetInto(request.target, &resolved_, &path_scratch_);
  }
  if ((flags & request_flag::kAlwaysReport) == 0 && !filter_->ShouldAlert(resolved_)) {
    ++counters_.filtered;
    return;
  }
  ++counters_.hits;
  const auto now = alerting::Hit::Clock::now();
  FlushOverflow();
  // Filled in place in the ring: the slot's strings keep their capacity from earlier hits.
  InspectorEvent* event = overflow_count_ == 0 ? events_->BeginPush() : nullptr;
  if (event == nullptr) {
    // The alert thread is behind. The hit's details are lost, but not the request: it is
    // counted into one summary hit that goes out as soon as the queue has room.
    ++counters_.events_dropped;
    if (overflow_count_++ != 0) {
      overflow_.last = now;
      return;
    }
    event = &overflow_;  // the first dropped hit stands for all of them
  }
  FillEvent(request, flow, flags, now, event);
  if (event != &overflow_) events_->CommitPush();
}

void Inspector::FillEvent(const HttpRequest& request, const Flow& flow, uint32_t flags,
                          alerting::Hit::Clock::time_point now, InspectorEvent* event) {
  event->method.assign(request.method);
  const bool token_put = request.method == "PUT" && resolved_.path == "/latest/api/token";
  event->imds_v2 = request.has_imds_token || request.has_token_ttl || token_put;
  event->flags.clear();
  AppendRequestFlagNames(flags, &event->flags);
  rules::AppendPathFlagNames(resolved_.flags, &event->flags);  // "truncated" only once
  event->url.assign(request.target);
  if (!request.version.empty() && !IsHttpVersion(request.version)) {
    // The last word was no version: it may be the rest of a target with a raw space.
    event->url.push_back(' ');
    event->url.append(request.version);
  }
  if (RedactTargetInPlace(&event->url, request.target_cut)) {
    // The path shown is the redacted target's: a URL in the path ("/x/http://u:pw@h/") or an
    // authority-form target ("u:pw@h:80/x") would show its userinfo in the resolved path.
    // resolved_ is working space whose flags and path were used above.
    rules::ResolveTargetInto(event->url, &resolved_, &path_scratch_);
  }
  event->norm.assign(resolved_.path);
  event->key = flow.key;
  event->uid = flow.has_uid ? int64_t{flow.uid} : -1;
  event->gid = flow.has_uid ? int64_t{flow.gid} : -1;
  event->count = 1;
  event->first = event->last = now;
  event->queue = config_.queue_num;
  event->hook = flow.hook;
  event->indev = flow.indev;
  event->host.assign(request.host);
  RedactHostInPlace(&event->host, request.host_cut);
  event->user_agent.assign(request.user_agent);
  event->seen = std::chrono::steady_clock::now();
}

void ReleaseLargeBuffers(InspectorEvent* event) {
  // Above this a buffer is freed rather than kept: the ring's slots then hold at most a few
  // hundred bytes each however long the requests were (4096 slots: about 6 MiB at most).
  constexpr size_t kKeptCapacity = 256;
  for (std::string* s : {&event->url, &event->norm, &event->method, &event->flags, &event->host,
                         &event->user_agent}) {
    if (s->capacity() > kKeptCapacity) std::string().swap(*s);
  }
}

void FillHit(const InspectorEvent& event, alerting::Hit* hit) {
  // Every field of alerting::Hit is set here: a reused Hit keeps nothing of the one before.
  hit->url = event.url;
  hit->norm = event.norm;
  hit->method = event.method;
  hit->imds = event.imds_v2 ? "v2" : "v1";
  FormatEndpointTo(event.key.family, event.key.src, event.key.src_port, &hit->src);
  hit->uid = event.uid;
  hit->gid = event.gid;
  hit->pid = -1;
  hit->owner.clear();
  hit->cmdline.clear();
  hit->exe.clear();
  hit->ancestors.clear();
  hit->container.clear();
  hit->pod.clear();
  hit->iface.clear();
  hit->count = event.count;
  hit->first = event.first;
  hit->last = event.last;
  hit->flags = event.flags;
  hit->queue = event.queue;
  hit->hook = HookName(event.hook);
  hit->host = event.host;
  hit->user_agent = event.user_agent;
}

void Inspector::FlushOverflow() {
  if (overflow_count_ == 0) return;
  InspectorEvent* summary = events_->BeginPush();
  if (summary == nullptr) return;
  *summary = overflow_;
  summary->count = overflow_count_;
  summary->flags += summary->flags.empty() ? "queue_overflow" : ",queue_overflow";
  events_->CommitPush();
  ++counters_.overflow_summaries;
  overflow_count_ = 0;
}

}  // namespace nfq::sensor
