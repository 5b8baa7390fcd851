// Invariant 1: nothing on the packet path allocates without bound. In steady state (a
// keep-alive connection already followed) a request must not allocate at all: no malloc,
// whose arena lock the alert thread's frees could be holding, between a packet and its
// verdict. Counts every operator new on this thread while the inspector reads packets.
#include <netinet/in.h>
#include <linux/netfilter.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "rules/path_filter.h"
#include "sensor/inspector.h"
#include "sensor/nfqueue.h"
#include "test/sensor/test_filter.h"
#include "test/sensor/test_packets.h"

// GCC sees the replaced operator delete's free() inlined at a `delete` of operator new's
// memory and takes it for a mismatch; both are this file's malloc and free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
thread_local bool counting = false;
thread_local size_t allocations = 0;
}  // namespace

void* operator new(size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace nfq::sensor {
namespace {

using testing::BuildTcp;
using testing::MetadataV4;
using testing::TcpSpec;

using testing::SharedFilter;

// One keep-alive connection: SYN, the server's SYN-ACK, then `requests` GETs, each drained
// by the consumer in place as the daemon's alert thread does. Returns the allocations made
// while the inspector read the requests after the first `warm_up`.
size_t AllocationsPerKeepAliveRun(rules::FilterMode mode, std::string_view list, int requests,
                                  int warm_up,
                                  std::string_view target = "/latest/meta-data/instance-id") {
  InspectorConfig config;
  Inspector::EventRing ring(64);
  Inspector inspector(config, SharedFilter(mode, list), &ring);
  alerting::Hit hit;
  TcpSpec spec = MetadataV4(43000);
  auto packet_of = [](const std::vector<uint8_t>& bytes, uint8_t hook) {
    QueuedPacket packet;
    packet.hook = hook;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    packet.has_uid = hook == NF_INET_LOCAL_OUT;
    packet.uid = packet.gid = 1000;
    return packet;
  };
  TcpSpec syn = spec;
  syn.flags = 0x02;
  syn.seq = spec.seq - 1;
  const auto syn_bytes = BuildTcp(syn, "");
  const auto synack_bytes = BuildTcp(testing::SynAckFor(syn, spec.seq), "");
  inspector.OnPacket(packet_of(syn_bytes, NF_INET_LOCAL_OUT));
  inspector.OnPacket(packet_of(synack_bytes, NF_INET_PRE_ROUTING));
  const std::string request =
      "GET " + std::string(target) + " HTTP/1.1\r\nHost: 169.254.169.254\r\n"
      "User-Agent: aws-sdk-go/1.44.0 (go1.20; linux; amd64)\r\nAccept: */*\r\n\r\n";
  std::vector<std::vector<uint8_t>> packets;
  for (int i = 0; i < requests; ++i) {
    packets.push_back(BuildTcp(spec, request));
    spec.seq += static_cast<uint32_t>(request.size());
  }
  size_t counted = 0;
  for (int i = 0; i < requests; ++i) {
    const QueuedPacket packet = packet_of(packets[static_cast<size_t>(i)], NF_INET_LOCAL_OUT);
    allocations = 0;
    counting = true;
    inspector.OnPacket(packet);
    counting = false;
    if (i >= warm_up) counted += allocations;
    while (InspectorEvent* event = ring.Front()) {
      FillHit(*event, &hit);
      ReleaseLargeBuffers(event);
      ring.PopFront();
    }
  }
  EXPECT_EQ(inspector.counters().requests, static_cast<uint64_t>(requests));
  return counted;
}

TEST(PacketPathAllocationTest, AHitOnAFollowedConnectionAllocatesNothing) {
  // Warm-up: the ring's slots (64) and the inspector's buffers reach their sizes.
  EXPECT_EQ(AllocationsPerKeepAliveRun(rules::FilterMode::kAll, "", 1000, 200), 0u);
}

TEST(PacketPathAllocationTest, AFilteredRequestAllocatesNothing) {
  EXPECT_EQ(AllocationsPerKeepAliveRun(rules::FilterMode::kBlacklist, "/latest/meta-data/iam/", 1000, 10),
            0u);
}

TEST(PacketPathAllocationTest, HitsWithFlagsAndRedactedUserinfoAllocateNothing) {
  // Flag names are appended into the slot's string; a userinfo longer than "<redacted>"
  // shrinks the URL in place.
  for (const std::string_view target :
       {"/latest//meta-data/instance-id", "/latest//meta-data/../meta-data/instance-id",
        "http://169.254.169.254/latest//x", "http://admin:a-long-password@169.254.169.254/latest/",
        "/latest/%6deta-data/./x?y=http://someone:secret-value@elsewhere/"}) {
    EXPECT_EQ(AllocationsPerKeepAliveRun(rules::FilterMode::kAll, "", 1000, 200, target), 0u)
        << target;
  }
}

TEST(PacketPathAllocationTest, TheCounterSeesAllocations) {
  counting = true;
  allocations = 0;
  auto* p = new std::string(100, 'x');
  counting = false;
  delete p;
  EXPECT_GE(allocations, 1u);
}

}  // namespace
}  // namespace nfq::sensor
