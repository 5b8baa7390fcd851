#include "sensor/inspector.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <linux/netfilter.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "alerting/hit_format.h"
#include "rules/path_filter.h"
#include "sensor/nfqueue.h"
#include "test/sensor/test_filter.h"
#include "test/sensor/test_packets.h"

namespace nfq::sensor {
namespace {

using testing::BuildTcp;
using testing::MetadataV4;
using testing::MetadataV6;
using testing::TcpSpec;

using testing::SharedFilter;

class InspectorTest : public ::testing::Test {
 protected:
  explicit InspectorTest(size_t flow_cap = 64, size_t ring = 64)
      : events_(ring), inspector_(Config(flow_cap), SharedFilter(rules::FilterMode::kAll, ""), &events_) {}

  static InspectorConfig Config(size_t flow_cap) {
    InspectorConfig config;
    config.queue_num = 7;
    config.flow_table_cap = flow_cap;
    return config;
  }

  // The first segment sent for a source port is preceded by the connection's SYN (at the
  // segment's seq - 1) and the server's SYN-ACK, as the rules deliver them, unless
  // midstream_ is set.
  void Send(const TcpSpec& spec, std::string_view payload, uint32_t uid = 1000) {
    if (!midstream_ && (spec.flags & 0x02) == 0 && opened_.insert(spec.src_port).second) {
      TcpSpec syn = spec;
      syn.seq = spec.seq - 1;
      syn.flags = 0x02;
      SendRaw(syn, "", uid);
      SendSynAck(syn);
    }
    SendRaw(spec, payload, uid);
  }

  // spec turned into its connection's SYN at seq.
  static TcpSpec Syn(TcpSpec spec, uint32_t seq) {
    spec.seq = seq;
    spec.flags = 0x02;
    return spec;
  }

  // The server accepting the SYN `syn` (ack = its seq + 1, unless given).
  void SendSynAck(const TcpSpec& syn, std::optional<uint32_t> ack = std::nullopt) {
    SendFromServer(testing::SynAckFor(syn, ack.value_or(syn.seq + 1)));
  }

  // A packet arriving from the server's side (hook prerouting, no socket owner).
  void SendFromServer(const TcpSpec& reply) {
    const std::vector<uint8_t> bytes = BuildTcp(reply, "");
    inspector_.OnPacket(PacketOf(bytes, NF_INET_PRE_ROUTING));
  }

  // A queued packet over bytes (which must outlive it), as the kernel hands it at hook.
  static QueuedPacket PacketOf(const std::vector<uint8_t>& bytes, uint8_t hook) {
    QueuedPacket packet;
    packet.hook = hook;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    return packet;
  }

  void SendRaw(const TcpSpec& spec, std::string_view payload, uint32_t uid = 1000) {
    const std::vector<uint8_t> bytes = BuildTcp(spec, payload);
    QueuedPacket packet = PacketOf(bytes, NF_INET_LOCAL_OUT);
    packet.has_uid = true;
    packet.uid = uid;
    inspector_.OnPacket(packet);
  }

  std::vector<alerting::Hit> Drain() {
    std::vector<alerting::Hit> hits;
    while (auto event = events_.TryPop()) {
      alerting::Hit hit;
      FillHit(*event, &hit);
      hits.push_back(std::move(hit));
    }
    return hits;
  }

  Inspector::EventRing events_;
  Inspector inspector_;
  std::set<uint16_t> opened_;
  bool midstream_ = false;
};

class InspectorUserinfoTest : public InspectorTest {
 protected:
  // The hit of `bytes` sent on a new connection, followed by a FIN when fin.
  alerting::Hit HitOf(std::string_view bytes, bool fin) {
    TcpSpec spec = MetadataV4(next_port_++);
    Send(spec, bytes);
    if (fin) {
      spec.seq += static_cast<uint32_t>(bytes.size());
      spec.flags = 0x11;  // FIN|ACK
      Send(spec, "");
    }
    auto hits = Drain();
    EXPECT_EQ(hits.size(), 1u) << bytes;
    return hits.empty() ? alerting::Hit{} : hits[0];
  }
  uint16_t next_port_ = 40200;
};

TEST_F(InspectorUserinfoTest, NoHitFieldCarriesUserinfo) {
  struct Case {
    std::string bytes;
    bool fin;
    std::string url, norm, host;
  };
  const std::string big_host = "admin:" + std::string(600, 'P') + "@169.254.169.254";
  const Case cases[] = {
      {"GET http://admin:pa'ss@169.254.169.254/latest/ HTTP/1.1\r\nHost: admin:hunter2@169.254.169.254\r\n\r\n",
       false, "http://<redacted>@169.254.169.254/latest/", "/latest/", "<redacted>@169.254.169.254"},
      {"GET admin:pw@169.254.169.254:80/latest/ HTTP/1.1\r\n\r\n", false,
       "<redacted>@169.254.169.254:80/latest/", "/<redacted>@169.254.169.254:80/latest/", ""},
      // A URL in the path: repeated slashes collapse "://" in the resolved path.
      {"GET /latest/http://admin:hunter2@evil/ HTTP/1.1\r\n\r\n", false, "/latest/http://<redacted>@evil/",
       "/latest/http:/<redacted>@evil/", ""},
      // A space in the password and no version: the rest of the line is the target's.
      {"GET http://admin:pa ss@169.254.169.254/latest/\r\n\r\n", false,
       "http://<redacted>@169.254.169.254/latest/", "/latest/", ""},
      // Cut inside the password, in the request line and in the Host value.
      {"GET http://admin:hunter2", true, "http://<redacted>", "/", ""},
      {"GET admin:hunt", true, "<redacted>", "/<redacted>", ""},
      {"GET /latest/ HTTP/1.1\r\nHost: admin:hunt", true, "/latest/", "/latest/", "<redacted>"},
      {"GET /latest/ HTTP/1.1\r\nHost: " + big_host + "\r\n\r\n", false, "/latest/", "/latest/", "<redacted>"},
      // Cut after the request line or after Host: nothing is hidden that was whole.
      {"GET http://169.254.169.254 HTTP/1.1\r\nHost: x\r\n", true, "http://169.254.169.254", "/", "x"},
      {"GET http://169.254.169.254 HTTP/1.1", true, "http://169.254.169.254", "/", ""},  // version seen
      {"GET /x/admin:p@ssWORD", true, "/x/<redacted>", "/x/<redacted>", ""},
      {"GET /latest/ HTTP/1.1\r\nHost: admin:p@ssWORD", true, "/latest/", "/latest/", "<redacted>"},
      {"GET /latest/?next=http://example.com HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: a", true,
       "/latest/?next=http://example.com", "/latest/", "169.254.169.254"},
  };
  for (const Case& c : cases) {
    const alerting::Hit hit = HitOf(c.bytes, c.fin);
    EXPECT_EQ(hit.url, c.url) << c.bytes;
    EXPECT_EQ(hit.norm, c.norm) << c.bytes;
    EXPECT_EQ(hit.host, c.host) << c.bytes;
    for (const std::string* field : {&hit.url, &hit.norm, &hit.host, &hit.flags}) {
      for (const char* secret : {"admin", "hunt", "pa ss", "pa'ss", "PPPP"}) {
        EXPECT_EQ(field->find(secret), std::string::npos) << c.bytes << " -> " << *field;
      }
    }
  }
}

TEST_F(InspectorUserinfoTest, EveryCutOfAnAuthorityFormRequestHidesThePassword) {
  const std::string request = "GET admin:hunter2@169.254.169.254:80/latest/ HTTP/1.1\r\nHost: admin:hunter2@h\r\n\r\n";
  for (size_t n = 5; n < request.size(); ++n) {
    const alerting::Hit hit = HitOf(request.substr(0, n), /*fin=*/true);
    for (const std::string* field : {&hit.url, &hit.norm, &hit.host}) {
      EXPECT_EQ(field->find("admin"), std::string::npos) << n << ": " << *field;
      EXPECT_EQ(field->find(":hu"), std::string::npos) << n << ": " << *field;
    }
  }
}

TEST_F(InspectorTest, OneSegmentOneHitWithContractFields) {
  Send(MetadataV4(40001), "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: curl/7.88.1\r\n\r\n");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  const auto& hit = hits[0];
  EXPECT_EQ(hit.method, "GET");
  EXPECT_EQ(hit.url, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(hit.norm, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(hit.imds, "v1");
  EXPECT_EQ(hit.src, "10.0.0.2:40001");
  EXPECT_EQ(hit.uid, 1000);
  EXPECT_EQ(hit.hook, "output");
  EXPECT_EQ(hit.queue, 7);
  EXPECT_EQ(hit.host, "169.254.169.254");
  EXPECT_EQ(hit.user_agent, "curl/7.88.1");
  EXPECT_EQ(hit.count, 1u);
  EXPECT_EQ(hit.flags, "");
}

TEST_F(InspectorTest, Ipv6AndImdsV2) {
  Send(MetadataV6(40002), "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n\r\n");
  Send(MetadataV6(40003), "GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: SECRETTOKEN\r\n\r\n");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].method, "PUT");
  EXPECT_EQ(hits[0].imds, "v2");
  EXPECT_EQ(hits[0].src, "[fd42::2]:40002");
  EXPECT_EQ(hits[1].imds, "v2");
  for (const auto& hit : hits) {
    for (const std::string* field : {&hit.url, &hit.norm, &hit.flags, &hit.host, &hit.user_agent}) {
      EXPECT_EQ(field->find("SECRETTOKEN"), std::string::npos);
    }
  }
}

TEST_F(InspectorTest, OtherDestinationsAreIgnored) {
  SendRaw(testing::V4(10, 0, 0, 9), "GET /latest/meta-data/ HTTP/1.1\r\n\r\n");
  TcpSpec other_port = MetadataV4();
  other_port.dst_port = 8080;
  SendRaw(other_port, "GET /latest/meta-data/ HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(inspector_.counters().not_metadata, 2u);
}

TEST_F(InspectorTest, SplitRequestIsReadAcrossSegmentsOnce) {
  const std::string request = "GET /latest/meta-data/iam/info HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t cut = 1; cut < request.size(); ++cut) {
    TcpSpec spec = MetadataV4(static_cast<uint16_t>(41000 + cut));
    Send(spec, std::string_view(request).substr(0, cut));
    spec.seq += static_cast<uint32_t>(cut);
    Send(spec, std::string_view(request).substr(cut));
    auto hits = Drain();
    ASSERT_EQ(hits.size(), 1u) << cut;
    EXPECT_EQ(hits[0].url, "/latest/meta-data/iam/info") << cut;
  }
}

TEST_F(InspectorTest, RetransmissionIsNotCountedTwice) {
  const std::string request = "GET /latest/meta-data/ HTTP/1.1\r\n\r\n";
  Send(MetadataV4(), request);
  Send(MetadataV4(), request);
  EXPECT_EQ(Drain().size(), 1u);
  EXPECT_EQ(inspector_.counters().retransmissions, 1u);
}

TEST_F(InspectorTest, PipelinedRequestsInOneSegment) {
  Send(MetadataV4(), "GET /a HTTP/1.1\r\n\r\nPUT /latest/api/token HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /b HTTP/1.1\r\n\r\n");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].url, "/a");
  EXPECT_EQ(hits[1].method, "PUT");
  EXPECT_EQ(hits[2].url, "/b");
}

TEST_F(InspectorTest, FinReportsAnUnfinishedRequestAsTruncated) {
  Send(MetadataV4(), "GET /latest/meta-data/iam/");
  EXPECT_TRUE(Drain().empty());
  TcpSpec fin = MetadataV4();
  fin.seq += 26;
  fin.flags = 0x11;  // FIN|ACK
  Send(fin, "");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_NE(hits[0].flags.find("truncated"), std::string::npos);
  EXPECT_EQ(inspector_.flow_count(), 0u);
}

TEST_F(InspectorTest, DotDotAlwaysAlertsAndFlagsAreReported) {
  inspector_.SetFilter(SharedFilter(rules::FilterMode::kBlacklist, "/latest/user-data"));
  Send(MetadataV4(1), "GET /latest/meta-data/ HTTP/1.1\r\n\r\n");
  Send(MetadataV4(2), "GET /latest/meta-data/../user-data HTTP/1.1\r\n\r\n");
  Send(MetadataV4(3), "GET /latest/%75ser-data HTTP/1.1\r\n\r\n");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].norm, "/latest/user-data");
  EXPECT_NE(hits[0].flags.find("dotdot"), std::string::npos);
  EXPECT_EQ(hits[1].norm, "/latest/user-data");
  EXPECT_NE(hits[1].flags.find("encoded"), std::string::npos);
  EXPECT_EQ(inspector_.counters().filtered, 1u);
}

TEST_F(InspectorTest, GarbageNeverCrashesAndIsCounted) {
  QueuedPacket packet;
  std::vector<uint8_t> bytes = BuildTcp(MetadataV4(), "GET / HTTP/1.1\r\n\r\n");
  for (size_t len = 0; len < bytes.size(); ++len) {
    packet.payload = std::span<const uint8_t>(bytes.data(), len);
    packet.original_length = static_cast<uint32_t>(bytes.size());
    inspector_.OnPacket(packet);
  }
  uint64_t errors = 0;
  for (uint64_t e : inspector_.counters().parse_errors) errors += e;
  EXPECT_GT(errors, 0u);
  EXPECT_EQ(inspector_.counters().packets, bytes.size());
}

// Whatever makes the sensor stop following a flow is reported, whatever the lists say: a
// harmless request that trips a cap must not blind the sensor to the next one (attack E1-E5).
TEST_F(InspectorTest, GoingBlindOnAFlowIsNeverSilent) {
  inspector_.SetFilter(SharedFilter(rules::FilterMode::kBlacklist, "/latest/meta-data/iam"));
  const std::string credentials = "GET /latest/meta-data/iam/security-credentials/r HTTP/1.1\r\n\r\n";
  const std::string openers[] = {
      "GET /latest/meta-data/instance-id?" + std::string(8300, 'a') + " HTTP/1.1\r\n\r\n",
      "GET /latest/meta-data/instance-id HTTP/1.1\r\nX-Pad: " + std::string(17000, 'p') + "\r\n\r\n",
      "POST /latest/meta-data/instance-id HTTP/1.1\r\nContent-Length: +0\r\n\r\n",
      "POST /latest/meta-data/instance-id HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /latest/meta-data/instance-id\r\n",
  };
  uint16_t port = 5000;
  for (const std::string& opener : openers) {
    TcpSpec spec = MetadataV4(++port);
    Send(spec, opener);
    spec.seq += static_cast<uint32_t>(opener.size());
    Send(spec, credentials);
    const auto hits = Drain();
    EXPECT_EQ(hits.size(), 1u) << opener.substr(0, 60);
    for (const auto& hit : hits) EXPECT_FALSE(hit.flags.empty()) << hit.url.substr(0, 60);
  }
}

// A raw-socket sender puts the credentials request on the wire after the harmless one that
// follows it in sequence space (attack 2): the late bytes are read and reported.
TEST_F(InspectorTest, LateBytesBeforeTheFirstSeenAreReadAndReported) {
  inspector_.SetFilter(SharedFilter(rules::FilterMode::kBlacklist, "/latest/meta-data/iam"));
  const std::string first = "GET /latest/meta-data/iam/security-credentials/r HTTP/1.1\r\n\r\n";
  const std::string second = "GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n";
  TcpSpec spec = MetadataV4(6000);
  spec.seq = 1000 + static_cast<uint32_t>(first.size());
  Send(spec, second);
  spec.seq = 1000;
  Send(spec, first);
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].norm, "/latest/meta-data/iam/security-credentials/r");
  EXPECT_NE(hits[0].flags.find("late_data"), std::string::npos);
  EXPECT_EQ(inspector_.counters().late_data, 1u);
}

// A sender that fragments its TCP segments (a raw socket; real clients never do towards a
// link-local service) hides the rest of each segment in fragments without a TCP header, which
// the rules cannot queue. The first fragment is reported at once, whatever the path lists say.
TEST_F(InspectorTest, IpFragmentsAreReportedWhateverTheLists) {
  inspector_.SetFilter(SharedFilter(rules::FilterMode::kBlacklist, "/latest/meta-data/iam"));
  auto send_first_fragment = [&](const TcpSpec& spec, std::string_view payload) {
    std::vector<uint8_t> bytes = BuildTcp(spec, payload);
    bytes[6] = 0x20;  // more fragments, offset 0
    bytes[7] = 0x00;
    QueuedPacket packet;
    packet.hook = NF_INET_PRE_ROUTING;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    inspector_.OnPacket(packet);
  };
  TcpSpec spec = MetadataV4(6100);
  send_first_fragment(spec, "GET /lat");
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_NE(hits[0].flags.find("ip_fragment"), std::string::npos) << hits[0].flags;
  EXPECT_NE(hits[0].flags.find("truncated"), std::string::npos) << hits[0].flags;
  EXPECT_EQ(hits[0].hook, "prerouting");

  // Only the TCP header in the first fragment: still one hit.
  send_first_fragment(MetadataV4(6101), "");
  hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_NE(hits[0].flags.find("ip_fragment"), std::string::npos) << hits[0].flags;

  // A whole request in the first fragment, then a harmless one on the same flow: both
  // reported, because the flow can no longer be vouched for.
  spec = MetadataV4(6102);
  const std::string first = "GET /latest/meta-data/instance-id HTTP/1.1\r\n\r\n";
  send_first_fragment(spec, first);
  spec.seq += static_cast<uint32_t>(first.size()) + 64;  // the unseen rest of the segment
  Send(spec, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n");
  hits = Drain();
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].norm, "/latest/meta-data/instance-id");
  EXPECT_EQ(hits[1].norm, "/latest/meta-data/ami-id");
  for (const auto& hit : hits) EXPECT_NE(hit.flags.find("ip_fragment"), std::string::npos);
  EXPECT_EQ(inspector_.counters().ip_fragments, 3u);
}

TEST(InspectorMemoryTest, StalledFlowsCannotGrowPastTheMemoryBudget) {
  Inspector::EventRing events(1 << 14);
  InspectorConfig config;
  config.flow_table_cap = 16384;
  config.flow_memory_budget = 1u << 20;  // 1 MiB
  Inspector inspector(config, SharedFilter(rules::FilterMode::kAll, ""), &events);
  const std::string stalled = "GET /" + std::string(8000, 'a');  // no line end: held
  for (uint16_t port = 1; port <= 1000; ++port) {
    const std::vector<uint8_t> bytes = BuildTcp(MetadataV4(port), stalled);
    QueuedPacket packet;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    inspector.OnPacket(packet);
    ASSERT_LE(inspector.flow_memory_bytes(), config.flow_memory_budget + (64u << 10));
  }
  EXPECT_GT(inspector.counters().flows_evicted, 800u);
  EXPECT_LT(inspector.flow_count(), 200u);
}

// The daemon's alert thread reads hits in place (Front/PopFront) and the packet thread fills
// the freed slot over what the hit before left: a hit must carry nothing of an earlier one.
TEST(InspectorSlotReuseTest, AHitInAReusedSlotCarriesNothingOfTheOneBefore) {
  auto config = InspectorConfig{};
  config.handshake_check = false;
  Inspector::EventRing reused_ring(1);  // every hit lands in the same slot
  Inspector reused(config, SharedFilter(rules::FilterMode::kAll, ""), &reused_ring);
  Inspector::EventRing fresh_ring(1);
  Inspector fresh(config, SharedFilter(rules::FilterMode::kAll, ""), &fresh_ring);
  auto send = [](Inspector& inspector, uint16_t port, std::string_view payload, bool with_uid,
                 uint8_t hook) {
    const std::vector<uint8_t> bytes = BuildTcp(MetadataV4(port), payload);
    QueuedPacket packet;
    packet.hook = hook;
    packet.payload = bytes;
    packet.original_length = static_cast<uint32_t>(bytes.size());
    packet.has_uid = with_uid;
    packet.uid = packet.gid = 4242;
    packet.indev = hook == NF_INET_LOCAL_OUT ? 0 : 3;
    inspector.OnPacket(packet);
  };
  auto take = [](Inspector::EventRing& ring) {
    alerting::Hit hit;
    InspectorEvent* event = ring.Front();
    EXPECT_NE(event, nullptr);
    if (event == nullptr) return hit;
    FillHit(*event, &hit);
    ReleaseLargeBuffers(event);
    ring.PopFront();
    return hit;
  };
  // A long, flagged, attributed IMDSv2 request with every header, then a bare forwarded one.
  send(reused, 41000,
       "PUT /latest/%2e%2e/api//token?" + std::string(200, 'q') +
           " HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: " + std::string(300, 'u') +
           "\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
       true, NF_INET_LOCAL_OUT);
  const alerting::Hit first = take(reused_ring);
  EXPECT_EQ(first.imds, "v2");
  EXPECT_EQ(first.uid, 4242);
  const std::string bare = "GET /x HTTP/1.0\r\n\r\n";
  send(reused, 41001, bare, false, NF_INET_FORWARD);
  send(fresh, 41001, bare, false, NF_INET_FORWARD);
  const alerting::Hit got = take(reused_ring);
  const alerting::Hit want = take(fresh_ring);
  EXPECT_EQ(got.url, want.url);
  EXPECT_EQ(got.norm, want.norm);
  EXPECT_EQ(got.method, want.method);
  EXPECT_EQ(got.imds, "v1");
  EXPECT_EQ(got.src, want.src);
  EXPECT_EQ(got.uid, -1);
  EXPECT_EQ(got.gid, -1);
  EXPECT_EQ(got.count, 1u);
  EXPECT_EQ(got.flags, want.flags);
  EXPECT_EQ(got.hook, want.hook);
  EXPECT_EQ(got.host, "");
  EXPECT_EQ(got.user_agent, "");
}

TEST(InspectorSlotReuseTest, LongRequestsDoNotStayInTheRing) {
  InspectorEvent event;
  event.url.assign(5000, 'u');
  event.user_agent.assign(100, 'a');
  const char* kept = event.user_agent.data();
  ReleaseLargeBuffers(&event);
  EXPECT_TRUE(event.url.empty());
  EXPECT_LT(event.url.capacity(), 5000u);
  EXPECT_EQ(event.user_agent.data(), kept);  // small: kept for reuse
}

class SmallInspectorTest : public InspectorTest {
 protected:
  SmallInspectorTest() : InspectorTest(16, 8) {}
};

// At stop the summary of what the full ring could not carry must still get out: the daemon
// retries FlushPending while the alert thread drains.
TEST_F(SmallInspectorTest, PendingOverflowIsFlushedOnceThereIsRoom) {
  for (uint16_t port = 1; port <= 12; ++port) {
    Send(MetadataV4(port), "GET /x HTTP/1.1\r\n\r\n");
  }
  EXPECT_EQ(inspector_.pending_overflow(), 4u);
  EXPECT_FALSE(inspector_.FlushPending());  // the ring (8) is still full
  uint64_t counted = 0;
  for (const auto& hit : Drain()) counted += hit.count;
  EXPECT_TRUE(inspector_.FlushPending());
  EXPECT_EQ(inspector_.pending_overflow(), 0u);
  for (const auto& hit : Drain()) counted += hit.count;
  EXPECT_EQ(counted, 12u);
}

TEST_F(SmallInspectorTest, FlowCapEvictsAndReportsWhatWasSeen) {
  for (uint16_t port = 1; port <= 40; ++port) Send(MetadataV4(port), "GET /stalled");
  EXPECT_EQ(inspector_.flow_count(), 16u);
  EXPECT_EQ(inspector_.counters().flows_evicted, 24u);
  // 24 truncated hits, the ring holds 8: the rest are counted, never silent, and their
  // count reaches the alert thread in a summary hit as soon as there is room.
  EXPECT_EQ(Drain().size(), 8u);
  EXPECT_EQ(inspector_.counters().events_dropped, 16u);
  inspector_.Tick();
  auto summary = Drain();
  ASSERT_EQ(summary.size(), 1u);
  EXPECT_EQ(summary[0].count, 16u);
  EXPECT_NE(summary[0].flags.find("queue_overflow"), std::string::npos);
  EXPECT_EQ(inspector_.counters().overflow_summaries, 1u);
}

TEST_F(SmallInspectorTest, CountsAddUpThroughAFullQueue) {
  uint64_t total = 0;
  for (uint16_t i = 0; i < 100; ++i) {
    Send(MetadataV4(static_cast<uint16_t>(1000 + i)), "GET /latest/meta-data/ HTTP/1.1\r\n\r\n");
    if (i % 30 == 29) {
      for (const auto& hit : Drain()) total += hit.count;
    }
  }
  inspector_.Tick();
  for (const auto& hit : Drain()) total += hit.count;
  inspector_.Tick();
  for (const auto& hit : Drain()) total += hit.count;
  EXPECT_EQ(total, 100u);
}

}  // namespace
}  // namespace nfq::sensor

namespace nfq::sensor {
namespace {

// Evasions found by review: each lets a request to a blacklisted path through unreported
// unless the sensor notices it cannot vouch for the flow and says so.
class EvasionTest : public InspectorTest {
 protected:
  EvasionTest() : InspectorTest(2, 64) {
    inspector_.SetFilter(SharedFilter(rules::FilterMode::kBlacklist, "/latest/meta-data/iam"));
  }
  static bool Has(const alerting::Hit& hit, std::string_view flag) {
    return hit.flags.find(flag) != std::string::npos;
  }
  // These tests' inspector without the handshake check (rules without the SYN-ACK rule),
  // publishing to the same ring.
  struct Lenient {
    explicit Lenient(Inspector::EventRing* events)
        : inspector(WithoutHandshakeCheck(), SharedFilter(rules::FilterMode::kBlacklist, "/latest/meta-data/iam"),
                    events) {}
    static InspectorConfig WithoutHandshakeCheck() {
      InspectorConfig config = Config(2);
      config.handshake_check = false;
      return config;
    }
    // A locally sent segment.
    void Send(const TcpSpec& spec, std::string_view payload) {
      const std::vector<uint8_t> bytes = BuildTcp(spec, payload);
      inspector.OnPacket(PacketOf(bytes, NF_INET_LOCAL_OUT));
    }
    Inspector inspector;
  };
  // The rest of post_head_'s body (cover_), then the credentials request: the server reads
  // cover_ as body and the credentials request after it.
  void SendTheRestOfThePost(TcpSpec spec) {
    spec.seq += static_cast<uint32_t>(post_head_.size());
    Send(spec, cover_ + evil_);
  }
  // One hit, flagged `flag` (and so always reported).
  void ExpectOneHitFlagged(std::string_view flag) {
    const auto hits = Drain();
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_TRUE(Has(hits[0], flag)) << hits[0].flags;
  }
  // The flow was followed: one hit, the credentials request, nothing flagged midstream.
  void ExpectOnlyTheCredentialsHit() {
    const auto hits = Drain();
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].norm, "/latest/meta-data/iam/security-credentials/");
    EXPECT_FALSE(Has(hits[0], "midstream")) << hits[0].flags;
  }
  const std::string evil_ = "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n\r\n";
  // A harmless request whose body is exactly the credentials request.
  const std::string cover_ =
      "GET /ok HTTP/1.1\r\nContent-Length: " + std::to_string(evil_.size()) + "\r\n\r\n";
  // A POST head whose body is "abcd" and then cover_ (sent later, on its own).
  const std::string post_head_ =
      "POST /ok HTTP/1.1\r\nContent-Length: " + std::to_string(4 + cover_.size()) + "\r\n\r\nabcd";
};

// A Content-Length longer than the kept header value (600 zeros, then the length) is read by
// the server in full: the sensor must not frame the body with a cut copy.
TEST_F(EvasionTest, ContentLengthLongerThanTheKeptValueIsUnframed) {
  const std::string head = "GET /ok HTTP/1.1\r\nContent-Length: " + std::string(600, '0') +
                           std::to_string(cover_.size()) + "\r\n\r\n";
  Send(MetadataV4(7001), head + cover_ + evil_);
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "unframed")) << hits[0].flags;
  // Trailing whitespace past the cap is not a cut: the value is still usable.
  const std::string spaced = "GET /ok HTTP/1.1\r\nContent-Length: 0" + std::string(600, ' ') + "\r\n\r\n";
  Send(MetadataV4(7002), spaced + evil_);
  const auto second = Drain();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].norm, "/latest/meta-data/iam/security-credentials/");
  EXPECT_FALSE(Has(second[0], "unframed")) << second[0].flags;
}

// Overlapping bytes that differ: the request they complete carries the flag (and is always
// reported), not only the requests after it. Linux keeps the in-order segment.
TEST_F(EvasionTest, InconsistentOverlapFlagsTheRequestItCompletes) {
  const std::string first = "GET /latest/meta-data/";
  const std::string in_order = "iam/security-credentials/ HTTP/1.1\r\n\r\n";
  std::string decoy = "nstance-id/";
  decoy += std::string(in_order.size() - 1 - decoy.size() - 13, 'x') + " HTTP/1.1\r\n\r\n";
  ASSERT_EQ(decoy.size(), in_order.size() - 1);
  TcpSpec spec = MetadataV4(7003);
  Send(spec, first);
  spec.seq = 1000 + static_cast<uint32_t>(first.size()) + 1;
  Send(spec, decoy);
  spec.seq = 1000 + static_cast<uint32_t>(first.size());
  Send(spec, in_order);
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "inconsistent")) << hits[0].flags;

  // A retransmission that differs and runs past what was seen.
  spec = MetadataV4(7004);
  Send(spec, "GET /latest/meta-data/ami");
  Send(spec, "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n\r\n");
  hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "inconsistent")) << hits[0].flags;
}

// MSG_OOB: the receiver takes the urgent byte out of the stream ("i" "X" "am/..." reads
// "/iam/..." to the server, "/iXam/..." to the sensor).
TEST_F(EvasionTest, UrgentDataFlagsTheFlow) {
  TcpSpec spec = MetadataV4(7005);
  Send(spec, "GET /latest/meta-data/i");
  spec.seq += 23;
  spec.flags = 0x38;  // URG|PSH|ACK
  Send(spec, "X");
  spec.seq += 1;
  Send(spec, "am/security-credentials/ HTTP/1.1\r\n\r\n");
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "urgent")) << hits[0].flags;
  EXPECT_EQ(inspector_.counters().urgent_segments, 2u);
}

// A flow the sensor dropped (here evicted at the flow cap of 2; the idle timeout does the
// same) and that comes back has no SYN: the sensor cannot know where the server's stream
// stands, so every request on it is reported, flagged midstream.
TEST_F(EvasionTest, FlowDroppedBySensorIsReportedMidstreamWhenItComesBack) {
  const std::string& head = post_head_;
  TcpSpec spec = MetadataV4(7006);
  Send(spec, head);
  Send(MetadataV4(7007), "GET /a HTTP/1.1\r\n\r\n");
  Send(MetadataV4(7008), "GET /b HTTP/1.1\r\n\r\n");  // evicts 7006
  EXPECT_EQ(inspector_.counters().flows_evicted, 1u);
  spec.seq += static_cast<uint32_t>(head.size());
  Send(spec, cover_ + evil_);  // no SYN: 7006 was opened before
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].norm, "/ok");
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;
  EXPECT_EQ(inspector_.counters().flows_midstream, 1u);
}

// Dropped between requests is no safer: a raw-socket sender can first replay bytes that end
// where the server's stream stands (dropped there as old), which a sensor starting fresh
// would read as a request whose body hides the next.
TEST_F(EvasionTest, ConnectionsJoinedWithoutTheirSynAreReportedWhateverTheLists) {
  midstream_ = true;
  TcpSpec spec = MetadataV4(7009);
  Send(spec, cover_);
  spec.seq += static_cast<uint32_t>(cover_.size());
  Send(spec, evil_);
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].norm, "/ok");
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;
}

// With the SYN seen, bytes that end at the first byte of the stream are before it: the
// server drops them as old, the sensor reads them on their own (late_data) and the real
// request in order.
TEST_F(EvasionTest, BytesBeforeTheFirstAfterTheSynAreReadOnTheirOwn) {
  TcpSpec spec = MetadataV4(7013);
  spec.seq = 5000;
  TcpSpec syn = spec;
  syn.seq = 4999;
  syn.flags = 0x02;
  SendRaw(syn, "");
  TcpSpec replay = spec;
  replay.seq = 5000 - static_cast<uint32_t>(cover_.size());
  SendRaw(replay, cover_);
  SendRaw(spec, evil_);
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].norm, "/ok");
  EXPECT_TRUE(Has(hits[0], "late_data")) << hits[0].flags;
  EXPECT_EQ(hits[1].norm, "/latest/meta-data/iam/security-credentials/");
}

// A second SYN (with or without data) on a followed connection is dropped by the server
// while it is established; the sensor cannot tell that from a reused tuple, so it restarts
// flagged midstream. A retransmitted SYN (same sequence number) changes nothing.
TEST_F(EvasionTest, ASecondSynRestartsTheFlowFlagged) {
  TcpSpec spec = MetadataV4(7014);
  TcpSpec syn = spec;
  syn.seq = 999;
  syn.flags = 0x02;
  SendRaw(syn, "");
  SendRaw(syn, "");  // retransmitted
  SendSynAck(syn);
  const std::string ok = "GET /ok HTTP/1.1\r\n\r\n";
  SendRaw(spec, ok);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(inspector_.counters().syn_restarts, 0u);
  const uint32_t next = spec.seq + static_cast<uint32_t>(ok.size());
  TcpSpec second = spec;
  second.flags = 0x02;
  second.seq = next - 1 - static_cast<uint32_t>(cover_.size());
  SendRaw(second, cover_);
  spec.seq = next;
  SendRaw(spec, evil_);
  const auto hits = Drain();
  ASSERT_GE(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;
  EXPECT_EQ(inspector_.counters().syn_restarts, 1u);
}

// A forged FIN without ACK (the server drops it) no longer closes the flow; and even after a
// close the server ignored (a bad checksum, a stale timestamp), or an eviction, a SYN on the
// same tuple starts a flow flagged midstream: it may be a forged SYN the server drops while
// the real connection goes on, its "first bytes" chosen to frame the real request as a body.
TEST_F(EvasionTest, ASynOnATupleJustFollowedIsFlagged) {
  TcpSpec syn = Syn(MetadataV4(7020), 999);
  SendRaw(syn, "");
  TcpSpec fin = MetadataV4(7020);
  fin.flags = 0x01;  // FIN without ACK
  SendRaw(fin, "");
  EXPECT_EQ(inspector_.counters().flows_closed, 0u);
  fin.flags = 0x11;  // a FIN the sensor takes; suppose the server dropped it
  SendRaw(fin, "");
  EXPECT_EQ(inspector_.counters().flows_closed, 1u);
  TcpSpec fake = MetadataV4(7020);
  fake.seq = 1000 - static_cast<uint32_t>(cover_.size()) - 1;
  fake.flags = 0x02;
  SendRaw(fake, cover_);
  TcpSpec data = MetadataV4(7020);
  SendRaw(data, evil_);
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;

  // Evicted (flow cap 2) between requests, then a forged SYN.
  TcpSpec spec = MetadataV4(7021);
  const std::string ok = "GET /ok HTTP/1.1\r\n\r\n";
  Send(spec, ok);
  Send(MetadataV4(7022), ok);
  Send(MetadataV4(7023), ok);  // evicts 7021
  const uint32_t next = spec.seq + static_cast<uint32_t>(ok.size());
  fake = MetadataV4(7021);
  fake.seq = next - static_cast<uint32_t>(cover_.size()) - 1;
  fake.flags = 0x02;
  SendRaw(fake, cover_);
  spec.seq = next;
  SendRaw(spec, evil_);
  hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;

  // SYN|FIN and SYN|RST close nothing.
  TcpSpec combo = MetadataV4(7024);
  Send(combo, ok);
  combo.seq += static_cast<uint32_t>(ok.size());
  combo.flags = 0x03;
  SendRaw(combo, "");
  combo.flags = 0x06;
  SendRaw(combo, "");
  EXPECT_EQ(inspector_.counters().flows_closed, 1u);
}

// Once the rules are seen to queue the server's SYN-ACKs, a SYN counts only when the server
// took it: a SYN it drops (the tuple is live: the server answers with a challenge ACK) is what
// a raw-socket sender forges after the sensor forgot the flow (a forged close, an eviction,
// the remembered-tuple ring pushed out) to frame the real stream as a body.
TEST_F(EvasionTest, DataBeforeTheServersSynAckIsFlaggedOnceRepliesAreQueued) {
  Send(MetadataV4(7030), "GET /ok HTTP/1.1\r\n\r\n");  // SYN, SYN-ACK, request
  EXPECT_EQ(inspector_.counters().handshake_replies, 1u);
  EXPECT_TRUE(Drain().empty());

  TcpSpec fake = MetadataV4(7031);  // a tuple the sensor does not remember
  fake.seq = 1000 - static_cast<uint32_t>(cover_.size()) - 1;
  fake.flags = 0x02;
  SendRaw(fake, "");
  SendSynAck(fake, fake.seq + 7);  // a SYN-ACK for another SYN confirms nothing
  TcpSpec first = MetadataV4(7031);
  first.seq = fake.seq + 1;
  SendRaw(first, cover_);
  TcpSpec data = MetadataV4(7031);
  SendRaw(data, evil_);
  const auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].norm, "/ok");
  EXPECT_TRUE(Has(hits[0], "midstream")) << hits[0].flags;
  EXPECT_EQ(inspector_.counters().flows_unconfirmed, 1u);
  EXPECT_EQ(inspector_.counters().handshake_unmatched, 1u);
}

// The same with the data in the SYN itself, and on IPv6; a SYN-ACK never creates a flow, and
// one from another address confirms nothing.
TEST_F(EvasionTest, SynAcksConfirmOnlyFromTheMetadataService) {
  Send(MetadataV6(7032), "GET /ok HTTP/1.1\r\n\r\n");
  EXPECT_EQ(inspector_.counters().handshake_replies, 1u);
  SendFromServer(testing::SynAckFor(MetadataV6(7033), 1000));  // no SYN on 7033
  EXPECT_EQ(inspector_.flow_count(), 1u);
  EXPECT_EQ(inspector_.counters().handshake_unmatched, 1u);

  TcpSpec syn = Syn(MetadataV6(7034), 999);
  SendRaw(syn, "");
  TcpSpec elsewhere = testing::SynAckFor(syn, 1000);
  elsewhere.src[15] = 0x55;  // not fd00:ec2::254
  SendFromServer(elsewhere);
  EXPECT_EQ(inspector_.counters().handshake_replies, 1u);
  TcpSpec data = MetadataV6(7034);
  SendRaw(data, evil_);
  ExpectOneHitFlagged("midstream");

  TcpSpec fast_open = Syn(MetadataV4(7035), 999);
  SendRaw(fast_open, evil_);
  ExpectOneHitFlagged("midstream");
  EXPECT_EQ(inspector_.counters().flows_unconfirmed, 2u);
}

// Rules without the SYN-ACK rule (an older version's, one's own): with --no-handshake-check
// a SYN is trusted without its SYN-ACK, as before the check.
TEST_F(EvasionTest, WithoutTheHandshakeCheckASynIsTrusted) {
  Lenient lenient(&events_);
  auto send = [&](const TcpSpec& spec, std::string_view payload) { lenient.Send(spec, payload); };
  send(Syn(MetadataV4(7036), 999), "");
  TcpSpec data = MetadataV4(7036);
  send(data, post_head_);
  data.seq += static_cast<uint32_t>(post_head_.size());
  send(data, cover_ + evil_);
  ExpectOnlyTheCredentialsHit();
  EXPECT_EQ(lenient.inspector.counters().flows_unconfirmed, 0u);
}

// With conntrack's tuples (kernels with CONFIG_NETFILTER_NETLINK_GLUE_CT), a connection
// DNATed to a local agent shows: its SYN-ACK comes from the agent, which the rules do not
// queue, so nothing is waited for. Only the flow's own entry in its own direction counts: a
// packet that matched some entry as a reply proves nothing.
TEST_F(EvasionTest, ADnatedFlowIsNotWaitedForByItsOwnConntrackEntryOnly) {
  auto request = [&](uint16_t port, bool reply_direction) {
    const TcpSpec syn = Syn(MetadataV4(port), 999);
    SendRaw(syn, "");
    const std::vector<uint8_t> bytes = BuildTcp(MetadataV4(port), evil_);
    QueuedPacket packet = PacketOf(bytes, NF_INET_LOCAL_OUT);
    packet.has_conntrack = true;
    packet.conntrack_reply_direction = reply_direction;
    packet.conntrack.original = ParsePacket(bytes).segment.key;
    packet.conntrack.reply = ReverseKey(packet.conntrack.original);
    packet.conntrack.reply.src = {127, 0, 0, 1};  // the agent
    packet.conntrack.reply.src_port = 8181;
    inspector_.OnPacket(packet);
    const auto hits = Drain();
    EXPECT_EQ(hits.size(), 1u);
    return hits.empty() ? std::string("none") : hits[0].flags;
  };
  EXPECT_EQ(request(7041, false).find("midstream"), std::string::npos);
  EXPECT_EQ(inspector_.counters().flows_redirected, 1u);
  EXPECT_NE(request(7042, true).find("midstream"), std::string::npos);
  EXPECT_EQ(inspector_.counters().flows_redirected, 1u);
  EXPECT_EQ(inspector_.counters().flows_unconfirmed, 1u);
}


// A SYN-ACK counts only when it came in where the flow's own reply comes in: for the
// instance's own connection the interface its SYN left on (the kernel's routing choice,
// policy routing included), for a container's anything but the container's own link, where
// a SYN-ACK the container forges "from" 169.254.169.254 comes in.
TEST_F(EvasionTest, ASynAckFromTheWrongInterfaceConfirmsNothing) {
  auto send = [&](const TcpSpec& spec, std::string_view payload, uint8_t hook, uint32_t indev,
                  uint32_t outdev) {
    const std::vector<uint8_t> bytes = BuildTcp(spec, payload);
    QueuedPacket packet = PacketOf(bytes, hook);
    packet.indev = indev;
    packet.outdev = outdev;
    inspector_.OnPacket(packet);
  };
  const TcpSpec container_syn = Syn(MetadataV4(7050), 999);
  send(container_syn, "", NF_INET_PRE_ROUTING, 3, 0);
  send(testing::SynAckFor(container_syn, 1000), "", NF_INET_FORWARD, 3, 3);  // forged, own link
  send(MetadataV4(7050), evil_, NF_INET_PRE_ROUTING, 3, 0);
  ExpectOneHitFlagged("midstream");
  EXPECT_EQ(inspector_.counters().handshake_foreign, 1u);

  const TcpSpec other = Syn(MetadataV4(7052), 999);
  send(other, "", NF_INET_PRE_ROUTING, 3, 0);
  send(testing::SynAckFor(other, 1000), "", NF_INET_FORWARD, 5, 3);  // from the uplink
  send(MetadataV4(7052), evil_, NF_INET_PRE_ROUTING, 3, 0);
  auto hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_FALSE(Has(hits[0], "midstream")) << hits[0].flags;

  const TcpSpec own_syn = Syn(MetadataV6(7051), 999);
  send(own_syn, "", NF_INET_LOCAL_OUT, 0, 8);
  send(testing::SynAckFor(own_syn, 1000), "", NF_INET_LOCAL_IN, 9, 0);  // not where it left
  EXPECT_EQ(inspector_.counters().handshake_foreign, 2u);
  send(testing::SynAckFor(own_syn, 1000), "", NF_INET_LOCAL_IN, 8, 0);  // where it left
  send(MetadataV6(7051), evil_, NF_INET_LOCAL_OUT, 0, 8);
  hits = Drain();
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_FALSE(Has(hits[0], "midstream")) << hits[0].flags;
  EXPECT_EQ(inspector_.counters().handshake_replies, 2u);
}

// TCP retransmits an unacknowledged segment even after its FIN: after the close, bytes that
// repeat what the flow delivered are that retransmission, not a flow joined midstream. Bytes
// that differ, or come after the close, still start a flow flagged midstream.
TEST_F(EvasionTest, ARetransmissionAfterTheCloseIsNotANewFlow) {
  TcpSpec spec = MetadataV4(7060);
  const std::string head = "GET /latest/meta-data/iam/security-credentials/x HTTP/1.1\r\n";
  const std::string tail = "Host: 169.254.169.254\r\n\r\n";
  Send(spec, head);
  TcpSpec last = spec;
  last.seq += static_cast<uint32_t>(head.size());
  Send(last, tail);
  TcpSpec fin = last;
  fin.seq += static_cast<uint32_t>(tail.size());
  fin.flags = 0x11;
  SendRaw(fin, "");
  EXPECT_EQ(inspector_.counters().flows_closed, 1u);
  ASSERT_EQ(Drain().size(), 1u);
  SendRaw(last, tail);  // the retransmission
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(inspector_.counters().retransmissions_after_close, 1u);
  EXPECT_EQ(inspector_.counters().flows_midstream, 0u);

  std::string changed = tail;
  changed[0] = 'X';
  SendRaw(last, changed);  // not what was read: a flow joined midstream
  EXPECT_EQ(inspector_.counters().flows_midstream, 1u);
}

// A client reuses a tuple at once when the server closed first (no TIME_WAIT on its side):
// a new SYN on a tuple just closed, which the server accepts with its SYN-ACK, is an ordinary
// connection. Only without the handshake check is it flagged, for want of a better test.
TEST_F(EvasionTest, AReusedTupleWithItsOwnSynAckIsAnOrdinaryConnection) {
  const std::string ok = "GET /ok HTTP/1.1\r\n\r\n";
  auto connection = [&](auto&& send, uint32_t isn) {
    const TcpSpec syn = Syn(MetadataV4(7040), isn);
    send(syn, "");
    SendSynAck(syn);
    TcpSpec data = MetadataV4(7040);
    data.seq = isn + 1;
    send(data, ok);
    TcpSpec fin = data;
    fin.seq += static_cast<uint32_t>(ok.size());
    fin.flags = 0x11;
    send(fin, "");
  };
  auto strict = [&](const TcpSpec& spec, std::string_view payload) { SendRaw(spec, payload); };
  connection(strict, 999);
  connection(strict, 50000);
  EXPECT_TRUE(Drain().empty());
  EXPECT_EQ(inspector_.counters().flows_closed, 2u);
  EXPECT_EQ(inspector_.counters().syn_restarts, 1u);
  EXPECT_EQ(inspector_.counters().flows_unconfirmed, 0u);

  Lenient lenient(&events_);
  auto lenient_send = [&](const TcpSpec& spec, std::string_view payload) { lenient.Send(spec, payload); };
  connection(lenient_send, 999);
  EXPECT_TRUE(Drain().empty());
  connection(lenient_send, 50000);
  ExpectOneHitFlagged("midstream");
}

// A second SYN needs its own SYN-ACK: the confirmation of the first does not carry over.
TEST_F(EvasionTest, ASecondSynNeedsItsOwnSynAck) {
  TcpSpec spec = MetadataV4(7037);
  Send(spec, "GET /ok HTTP/1.1\r\n\r\n");
  TcpSpec again = spec;
  again.seq = 5000;
  again.flags = 0x02;
  SendRaw(again, "");
  EXPECT_EQ(inspector_.counters().syn_restarts, 1u);
  SendSynAck(again);
  EXPECT_EQ(inspector_.counters().handshake_replies, 2u);
}

// A RST is taken at its own sequence number, and its payload is never stream data: a RST
// that ends at the next byte but starts before it is one the server ignores.
TEST_F(EvasionTest, RstWithDataIsTakenAtItsOwnSequenceNumber) {
  const std::string& head = post_head_;
  TcpSpec spec = MetadataV4(7015);
  Send(spec, head);
  TcpSpec rst = spec;
  rst.seq = spec.seq + static_cast<uint32_t>(head.size()) - 4;
  rst.flags = 0x14;  // RST|ACK
  SendRaw(rst, "abcd");
  EXPECT_EQ(inspector_.counters().flows_closed, 0u);
  EXPECT_EQ(inspector_.counters().closes_ignored, 1u);
  SendTheRestOfThePost(spec);
  ExpectOnlyTheCredentialsHit();
}

// An RST or FIN away from the next expected byte is one the server drops (RFC 5961); the
// sensor keeps the flow instead of forgetting it and misreading the rest of a body.
TEST_F(EvasionTest, OutOfWindowCloseIsIgnored) {
  const std::string& head = post_head_;
  TcpSpec spec = MetadataV4(7012);
  Send(spec, head);
  TcpSpec rst = spec;
  rst.seq = 0x80000000u;
  rst.flags = 0x04;
  Send(rst, "");
  TcpSpec fin = spec;
  fin.seq = spec.seq + 5000;
  fin.flags = 0x11;
  Send(fin, "");
  EXPECT_EQ(inspector_.counters().closes_ignored, 2u);
  EXPECT_EQ(inspector_.counters().flows_closed, 0u);
  SendTheRestOfThePost(spec);
  // The body was followed: the server and the sensor both read the credentials request.
  ExpectOnlyTheCredentialsHit();
  spec.seq += static_cast<uint32_t>(head.size());
  // A close at the next byte ends the flow.
  TcpSpec close = spec;
  close.seq = spec.seq + static_cast<uint32_t>(cover_.size() + evil_.size());
  close.flags = 0x11;
  Send(close, "");
  EXPECT_EQ(inspector_.counters().flows_closed, 1u);
  EXPECT_EQ(inspector_.flow_count(), 0u);
}

// The alert thread reuses one Hit for every event: nothing of the hit before may survive.
TEST(FillHit, LeavesNothingOfTheHitBefore) {
  InspectorEvent event;
  event.url = "/latest/meta-data/?a";
  event.norm = "/latest/meta-data/";
  event.method = "GET";
  event.host = "169.254.169.254";
  event.key.family = IpFamily::kV6;
  event.key.src[0] = 0xfd;
  event.key.src_port = 40000;
  event.first = event.last = alerting::Hit::Clock::time_point(std::chrono::seconds(1764806400));
  event.hook = NF_INET_LOCAL_OUT;
  alerting::Hit fresh;
  FillHit(event, &fresh);
  EXPECT_EQ(fresh.src, "[fd00::]:40000");
  EXPECT_EQ(fresh.imds, "v1");
  EXPECT_EQ(fresh.hook, "output");
  alerting::Hit reused;
  for (std::string* field : {&reused.url, &reused.norm, &reused.method, &reused.imds, &reused.src, &reused.owner,
                             &reused.cmdline, &reused.exe, &reused.ancestors, &reused.container, &reused.pod,
                             &reused.iface, &reused.flags, &reused.hook, &reused.host, &reused.user_agent}) {
    field->assign(100, 'x');
  }
  reused.uid = reused.gid = reused.pid = 7;
  reused.count = 9;
  reused.queue = 3;
  reused.first = reused.last = alerting::Hit::Clock::now();
  FillHit(event, &reused);
  EXPECT_EQ(alerting::HitJsonLine(reused), alerting::HitJsonLine(fresh));
}

}  // namespace
}  // namespace nfq::sensor
