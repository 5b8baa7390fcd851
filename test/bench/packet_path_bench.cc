// Microbenchmark of the per-packet path: Inspector::OnPacket = parse IP/TCP, find the flow,
// reassemble, parse HTTP, resolve and filter the path, build the Hit and push it into the
// SpscRing. Packets are prebuilt; only the TCP sequence number is patched in place between
// iterations (a few ns), so every request is new data, never a retransmission.
//
// The ring is drained inside the timed loop, after each iteration: the numbers include the
// consumer's pop and the Hit's destruction, which the alert thread pays in the daemon. They
// are an upper bound on the packet thread's cost. Counter "per_packet" is time per packet.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <linux/netfilter.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rules/path_filter.h"
#include "sensor/attributor.h"
#include "sensor/inspector.h"
#include "sensor/nfqueue.h"
#include "test/sensor/test_packets.h"

namespace nfq::sensor {
namespace {

using testing::BuildTcp;
using testing::MetadataV4;
using testing::Put32;
using testing::TcpSpec;

constexpr std::string_view kRequest =
    "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\n"
    "User-Agent: aws-sdk-go/1.44.0\r\nAccept: */*\r\n\r\n";
// One SYN every kRestartEvery requests (a new connection on the same tuple) is part of the
// measured work, as with real keep-alive clients.
constexpr uint32_t kRestartEvery = 500;

struct Fixture {
  Inspector::EventRing events{1024};
  Inspector inspector;
  uint64_t drained = 0;

  explicit Fixture(Attributor* attributor = nullptr)
      : inspector(Config(), AllPaths(), &events, attributor) {}

  static InspectorConfig Config() {
    InspectorConfig config;
    return config;
  }
  static std::shared_ptr<const rules::PathFilter> AllPaths() {
    std::string error;
    auto filter = rules::PathFilter::Create(rules::FilterMode::kAll, "", &error);
    return std::make_shared<const rules::PathFilter>(std::move(*filter));
  }
  void Send(const std::vector<uint8_t>& bytes) {
    QueuedPacket packet;
    packet.hook = NF_INET_LOCAL_OUT;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    packet.has_uid = true;
    packet.uid = 1000;
    inspector.OnPacket(packet);
  }
  void SendFromServer(const std::vector<uint8_t>& bytes) {
    QueuedPacket packet;
    packet.hook = NF_INET_LOCAL_IN;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    inspector.OnPacket(packet);
  }
  // As the daemon's alert thread takes hits: in place, the slot handed back for reuse.
  void Drain() {
    while (InspectorEvent* hit = events.Front()) {
      benchmark::DoNotOptimize(hit->url.data());
      ReleaseLargeBuffers(hit);
      events.PopFront();
      ++drained;
    }
  }
};

constexpr size_t kSeqOffsetV4 = 20 + 4;

struct Segment {
  std::vector<uint8_t> bytes;
  uint32_t offset = 0;  // sequence offset inside one round of the stream
};

// Sends `segments` (one round of the stream, `round_len` bytes of sequence space) over and
// over on one flow, restarting the flow with a SYN every kRestartEvery rounds.
void RunStream(benchmark::State& state, std::vector<Segment> segments, uint32_t round_len,
               size_t requests_per_round) {
  Fixture f;
  TcpSpec syn_spec = MetadataV4();
  syn_spec.flags = 0x02;  // SYN
  std::vector<uint8_t> syn = BuildTcp(syn_spec, "");
  uint32_t isn = 1000, seq = isn + 1, rounds = 0;
  uint64_t packets = 0;
  Put32(syn, kSeqOffsetV4, isn);
  f.Send(syn);
  for (auto _ : state) {
    for (auto& s : segments) {
      Put32(s.bytes, kSeqOffsetV4, seq + s.offset);
      f.Send(s.bytes);
    }
    packets += segments.size();
    seq += round_len;
    if (++rounds * requests_per_round >= kRestartEvery) {
      rounds = 0;
      isn = seq + 100000;
      seq = isn + 1;
      Put32(syn, kSeqOffsetV4, isn);
      f.Send(syn);
      ++packets;
    }
    f.Drain();
  }
  state.counters["per_packet"] =
      benchmark::Counter(static_cast<double>(packets), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["hits"] = static_cast<double>(f.drained);
  state.SetItemsProcessed(static_cast<int64_t>(packets));
}

std::vector<Segment> Split(std::string_view stream, std::vector<size_t> cuts) {
  std::vector<Segment> out;
  size_t at = 0;
  cuts.push_back(stream.size());
  for (size_t cut : cuts) {
    out.push_back({BuildTcp(MetadataV4(), stream.substr(at, cut - at)), static_cast<uint32_t>(at)});
    at = cut;
  }
  return out;
}

void BM_SingleSegmentRequest(benchmark::State& state) {
  RunStream(state, Split(kRequest, {}), static_cast<uint32_t>(kRequest.size()), 1);
}
BENCHMARK(BM_SingleSegmentRequest);

void BM_RequestIn3Segments(benchmark::State& state) {
  // Three segments: cut inside the method and inside a header name.
  RunStream(state, Split(kRequest, {2, 70}), static_cast<uint32_t>(kRequest.size()), 1);
}
BENCHMARK(BM_RequestIn3Segments);

void BM_Pipelined3Requests(benchmark::State& state) {
  const std::string three = std::string(kRequest) + std::string(kRequest) + std::string(kRequest);
  RunStream(state, Split(three, {}), static_cast<uint32_t>(three.size()), 3);
}
BENCHMARK(BM_Pipelined3Requests);

void BM_PureAck(benchmark::State& state) {
  Fixture f;
  TcpSpec spec = MetadataV4();
  spec.flags = 0x10;  // ACK
  const std::vector<uint8_t> ack = BuildTcp(spec, "");
  for (auto _ : state) f.Send(ack);
  state.counters["per_packet"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PureAck);

void BM_NonMetadataDestination(benchmark::State& state) {
  Fixture f;
  const std::vector<uint8_t> other = BuildTcp(testing::V4(10, 0, 0, 1), kRequest);
  for (auto _ : state) f.Send(other);
  state.counters["per_packet"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NonMetadataDestination);

// A new connection per request as the daemon sees it with --payload-only rules: SYN, the
// server's SYN-ACK, the request, the FIN; 16 client ports, a fresh initial sequence number
// for each connection (a repeated one would be a retransmission of a closed flow).
void RunConnectionPerRequest(benchmark::State& state, Attributor* attributor) {
  Fixture f(attributor);
  struct Connection {
    std::vector<uint8_t> syn, syn_ack, request, fin;
  };
  std::vector<Connection> connections;
  for (uint16_t port = 40000; port < 40016; ++port) {
    TcpSpec spec = MetadataV4(port);
    Connection c;
    spec.flags = 0x02;
    c.syn = BuildTcp(spec, "");
    c.syn_ack = BuildTcp(testing::SynAckFor(spec, 0), "");
    spec.flags = 0x18;
    c.request = BuildTcp(spec, kRequest);
    spec.flags = 0x11;  // FIN|ACK
    c.fin = BuildTcp(spec, "");
    connections.push_back(std::move(c));
  }
  constexpr size_t kAckOffsetV4 = 20 + 8;
  size_t i = 0;
  uint32_t isn = 1000;
  for (auto _ : state) {
    Connection& c = connections[i];
    Put32(c.syn, kSeqOffsetV4, isn);
    Put32(c.syn_ack, kAckOffsetV4, isn + 1);
    Put32(c.request, kSeqOffsetV4, isn + 1);
    Put32(c.fin, kSeqOffsetV4, isn + 1 + static_cast<uint32_t>(kRequest.size()));
    f.Send(c.syn);
    f.SendFromServer(c.syn_ack);
    f.Send(c.request);
    f.Send(c.fin);
    i = (i + 1) % connections.size();
    isn += 100000;
    f.Drain();
  }
  state.counters["per_packet"] = benchmark::Counter(static_cast<double>(state.iterations() * 4),
                                                    benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["hits"] = static_cast<double>(f.drained);
  state.SetItemsProcessed(state.iterations() * 4);
}

void BM_ConnectionPerRequestPayloadOnly(benchmark::State& state) { RunConnectionPerRequest(state, nullptr); }
BENCHMARK(BM_ConnectionPerRequestPayloadOnly);

// The same with attribution on: what the packet thread adds is one lock-free push of the flow
// key per new connection (the look-up itself runs on the attributor's worker, stubbed here so
// the worker's /proc scans do not compete for the CPU being measured).
void BM_ConnectionPerRequestWithAttribution(benchmark::State& state) {
  Attributor attributor(AttributorConfig{}, [](const FlowKey&, int64_t) { return Attribution{}; });
  RunConnectionPerRequest(state, &attributor);
}
BENCHMARK(BM_ConnectionPerRequestWithAttribution);

}  // namespace
}  // namespace nfq::sensor

BENCHMARK_MAIN();
