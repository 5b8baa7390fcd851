// The whole packet path on arbitrary segment sequences: a few flows (both families, host and
// forwarded) get segments with fuzzer-chosen sequence offsets, flags and payloads, through
// Inspector::OnPacket (parse, flow table, reassembly, HTTP parsing, path resolution, filter,
// event ring). Never crashes, never leaks, keeps its memory within the budget, and every
// request it counts is either a hit or filtered.
#include <netinet/in.h>
#include <linux/netfilter.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "rules/path_filter.h"
#include "sensor/inspector.h"
#include "sensor/nfqueue.h"
#include "test/sensor/test_packets.h"

namespace {

using nfq::sensor::Inspector;
using nfq::sensor::InspectorConfig;
using nfq::sensor::QueuedPacket;
namespace testing = nfq::sensor::testing;

std::shared_ptr<const nfq::rules::PathFilter> Blacklist() {
  std::string error;
  auto filter = nfq::rules::PathFilter::Create(nfq::rules::FilterMode::kBlacklist,
                                               "/latest/meta-data/iam,/latest/user-data", &error);
  if (!filter) std::abort();
  return std::make_shared<const nfq::rules::PathFilter>(std::move(*filter));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InspectorConfig config;
  config.flow_table_cap = 4;  // small: evictions happen
  config.flow_memory_budget = 64 * 1024;
  config.forgotten_cap = 8;  // small, and cheap to build per input
  Inspector::EventRing events(16);  // small: overflow summaries happen
  Inspector inspector(config, Blacklist(), &events);
  uint32_t base_seq[8] = {1000, 5000, 0xFFFFFF00u, 77, 1000, 5000, 0xFFFFFF00u, 77};
  // Record: flow (3 bits) + IPv6 (1 bit) + forwarded (1 bit) | TCP flags | seq offset (2
  // bytes, signed) | payload length | payload. SYN|ACK with selector bit 32 is the server's
  // SYN-ACK (reverse direction).
  size_t at = 0;
  while (at + 5 <= size) {
    const uint8_t selector = data[at];
    const uint8_t flags = data[at + 1];
    const int16_t offset = static_cast<int16_t>(data[at + 2] << 8 | data[at + 3]);
    const size_t length = std::min<size_t>(data[at + 4], size - at - 5);
    const std::string_view payload(reinterpret_cast<const char*>(data + at + 5), length);
    at += 5 + length;

    const unsigned flow = selector & 7;
    testing::TcpSpec spec = (selector & 8) ? testing::MetadataV6(static_cast<uint16_t>(40000 + flow))
                                           : testing::MetadataV4(static_cast<uint16_t>(40000 + flow));
    spec.flags = flags;
    spec.seq = base_seq[flow] + static_cast<uint32_t>(static_cast<int32_t>(offset));
    if (offset > 0 && (flags & 0x08)) base_seq[flow] = spec.seq;  // PSH: move the flow on
    // SYN|ACK with bit 32: the server's reply on that flow, acking the offset's seq.
    const bool reply = (flags & 0x12) == 0x12 && (selector & 32);
    if (reply) {
      spec = testing::SynAckFor(spec, spec.seq);
      spec.flags = flags;
    }
    const std::vector<uint8_t> bytes = testing::BuildTcp(spec, payload);
    QueuedPacket packet;
    packet.hook = (selector & 16) ? NF_INET_PRE_ROUTING : NF_INET_LOCAL_OUT;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size() + ((selector & 32) ? 10 : 0));
    inspector.OnPacket(packet);
    if (selector & 64) inspector.Tick();
    if (selector & 128) {
      while (events.TryPop()) {
      }
    }
    // Each flow can hold up to its caps beyond the budget while it is the one being read.
    if (inspector.flow_memory_bytes() > config.flow_memory_budget + 64 * 1024) std::abort();
  }
  const auto& c = inspector.counters();
  if (c.requests != c.hits + c.filtered) std::abort();
  return 0;
}
