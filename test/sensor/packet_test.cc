#include "sensor/packet.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/byte_cursor.h"

namespace nfq::sensor {
namespace {

using Bytes = std::vector<uint8_t>;

void Put16(Bytes& out, size_t at, uint16_t value) {
  out[at] = static_cast<uint8_t>(value >> 8);
  out[at + 1] = static_cast<uint8_t>(value & 0xff);
}

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

// A TCP header (20 bytes + options, padded to 4) followed by the payload.
struct TcpSpec {
  uint16_t src_port = 40000;
  uint16_t dst_port = 80;
  uint32_t seq = 0x01020304;
  uint32_t ack = 0x0a0b0c0d;
  uint8_t flags = tcp_flag::kAck | tcp_flag::kPsh;
  size_t option_bytes = 0;  // multiple of 4
  std::string payload = "GET / HTTP/1.1\r\n\r\n";
};

Bytes Tcp(const TcpSpec& spec) {
  Bytes out(20 + spec.option_bytes, 0);
  Put16(out, 0, spec.src_port);
  Put16(out, 2, spec.dst_port);
  out[4] = static_cast<uint8_t>(spec.seq >> 24);
  out[5] = static_cast<uint8_t>(spec.seq >> 16);
  out[6] = static_cast<uint8_t>(spec.seq >> 8);
  out[7] = static_cast<uint8_t>(spec.seq);
  Put16(out, 8, static_cast<uint16_t>(spec.ack >> 16));
  Put16(out, 10, static_cast<uint16_t>(spec.ack));
  out[12] = static_cast<uint8_t>(((20 + spec.option_bytes) / 4) << 4);
  out[13] = spec.flags;
  Put16(out, 14, 65535);
  for (size_t i = 20; i < out.size(); ++i) out[i] = 1;  // NOP options
  out.insert(out.end(), spec.payload.begin(), spec.payload.end());
  return out;
}

struct Ipv4Spec {
  uint8_t protocol = 6;
  size_t option_bytes = 0;
  int total_length = -1;             // -1: the real one
  uint16_t fragment_field = 0x4000;  // DF
  std::array<uint8_t, 4> src{10, 0, 0, 2};
  std::array<uint8_t, 4> dst{169, 254, 169, 254};
};

Bytes Ipv4(const Bytes& l4, const Ipv4Spec& spec = {}) {
  Bytes out(20 + spec.option_bytes, 0);
  out[0] = static_cast<uint8_t>(0x40 | ((20 + spec.option_bytes) / 4));
  const size_t total =
      spec.total_length >= 0 ? static_cast<size_t>(spec.total_length) : out.size() + l4.size();
  Put16(out, 2, static_cast<uint16_t>(total));
  Put16(out, 6, spec.fragment_field);
  out[8] = 64;
  out[9] = spec.protocol;
  std::copy(spec.src.begin(), spec.src.end(), out.begin() + 12);
  std::copy(spec.dst.begin(), spec.dst.end(), out.begin() + 16);
  Append(out, l4);
  return out;
}

constexpr std::array<uint8_t, 16> kV6Src{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
constexpr std::array<uint8_t, 16> kV6Dst{0xfd, 0, 0x0e, 0xc2, 0, 0, 0,    0,
                                         0,    0, 0,    0,    0, 0, 0x02, 0x54};

// `chain`: extension headers already built (each names its own next header).
Bytes Ipv6(uint8_t first_next_header, const Bytes& chain, const Bytes& l4,
           int payload_length = -1) {
  Bytes out(40, 0);
  out[0] = 0x60;
  const size_t length =
      payload_length >= 0 ? static_cast<size_t>(payload_length) : chain.size() + l4.size();
  Put16(out, 4, static_cast<uint16_t>(length));
  out[6] = first_next_header;
  out[7] = 64;
  std::copy(kV6Src.begin(), kV6Src.end(), out.begin() + 8);
  std::copy(kV6Dst.begin(), kV6Dst.end(), out.begin() + 24);
  Append(out, chain);
  Append(out, l4);
  return out;
}

// Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
Bytes GenericExt(uint8_t next, uint8_t len_units = 0) {
  Bytes out((size_t{len_units} + 1) * 8, 0);
  out[0] = next;
  out[1] = len_units;
  return out;
}
// AH: (len + 2) * 4 bytes.
Bytes AuthExt(uint8_t next, uint8_t len_units = 4) {
  Bytes out((size_t{len_units} + 2) * 4, 0);
  out[0] = next;
  out[1] = len_units;
  return out;
}
Bytes FragmentExt(uint8_t next, uint16_t offset_units, bool more) {
  Bytes out(8, 0);
  out[0] = next;
  Put16(out, 2, static_cast<uint16_t>((offset_units << 3) | (more ? 1 : 0)));
  out[7] = 42;
  return out;
}

std::string PayloadOf(const PacketParseResult& result) {
  return std::string(result.segment.payload.begin(), result.segment.payload.end());
}

// Keeps every packet parsed from a temporary alive, so the payload view stays valid.
PacketParseResult Parse(Bytes&& packet) {
  static std::deque<Bytes> kept;
  kept.push_back(std::move(packet));
  return ParsePacket(kept.back());
}
PacketParseResult Parse(const Bytes& packet) { return ParsePacket(packet); }

TEST(ByteCursor, ReadsBigEndianAndFailsStickily) {
  const Bytes bytes{0x12, 0x34, 0x56, 0x78, 0x9a};
  ByteCursor cursor(bytes);
  EXPECT_EQ(cursor.ReadU16be(), 0x1234);
  EXPECT_EQ(cursor.PeekU8(), 0x56);
  EXPECT_EQ(cursor.ReadU8(), 0x56);
  EXPECT_EQ(cursor.remaining(), 2u);
  EXPECT_EQ(cursor.ReadU32be(), 0u);  // only 2 left
  EXPECT_FALSE(cursor.ok());
  EXPECT_EQ(cursor.ReadU8(), 0);  // sticky
  EXPECT_EQ(cursor.remaining(), 0u);
  EXPECT_TRUE(cursor.Rest().empty());
  EXPECT_FALSE(cursor.PeekU8().has_value());
}

TEST(ByteCursor, SubAndSkip) {
  const Bytes bytes{1, 2, 3, 4, 5, 6};
  ByteCursor cursor(bytes);
  ByteCursor sub = cursor.Sub(4);
  EXPECT_TRUE(sub.ok());
  EXPECT_EQ(sub.ReadU32be(), 0x01020304u);
  EXPECT_EQ(cursor.position(), 4u);
  EXPECT_FALSE(cursor.Sub(3).ok());
  EXPECT_FALSE(cursor.ok());
  ByteCursor other(bytes);
  EXPECT_TRUE(other.Skip(6));
  EXPECT_FALSE(other.PeekU8().has_value());
  EXPECT_FALSE(other.Skip(1));
  EXPECT_TRUE(other.ReadBytes(1).empty());
  ByteCursor empty;
  EXPECT_EQ(empty.ReadU16be(), 0);
  EXPECT_FALSE(empty.ok());
}

TEST(ParsePacket, Ipv4Tcp) {
  TcpSpec spec;
  spec.flags = tcp_flag::kPsh | tcp_flag::kAck | tcp_flag::kFin;
  const Bytes packet = Ipv4(Tcp(spec));
  const auto result = Parse(packet);
  ASSERT_EQ(result.error, PacketError::kNone);
  const auto& segment = result.segment;
  EXPECT_EQ(segment.key.family, IpFamily::kV4);
  EXPECT_EQ(segment.key.src[0], 10);
  EXPECT_EQ(segment.key.src[3], 2);
  EXPECT_EQ(segment.key.src[4], 0);
  EXPECT_EQ(segment.key.dst[0], 169);
  EXPECT_EQ(segment.key.src_port, 40000);
  EXPECT_EQ(segment.key.dst_port, 80);
  EXPECT_EQ(segment.seq, 0x01020304u);
  EXPECT_EQ(segment.ack, 0x0a0b0c0du);
  EXPECT_EQ(segment.flags, spec.flags);
  EXPECT_FALSE(segment.truncated);
  EXPECT_EQ(PayloadOf(result), spec.payload);
  EXPECT_EQ(segment.payload.data(), packet.data() + 40);
  EXPECT_EQ(FormatEndpoint(segment.key.family, segment.key.dst, segment.key.dst_port),
            "169.254.169.254:80");
  EXPECT_EQ(FormatEndpoint(segment.key.family, segment.key.src, segment.key.src_port),
            "10.0.0.2:40000");
}

// IPv4 endpoints are formatted by hand: the same text as inet_ntop for every octet value.
TEST(FormatEndpoint, Ipv4IsWhatInetNtopWrites) {
  for (int octet = 0; octet < 256; ++octet) {
    std::array<uint8_t, 16> addr{};
    addr[0] = static_cast<uint8_t>(octet);
    addr[1] = static_cast<uint8_t>(255 - octet);
    addr[2] = static_cast<uint8_t>(octet / 10);
    addr[3] = static_cast<uint8_t>(octet % 100);
    char text[INET_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(AF_INET, addr.data(), text, sizeof text), nullptr);
    for (uint16_t port : {uint16_t{0}, uint16_t{80}, static_cast<uint16_t>(octet * 257), uint16_t{65535}}) {
      EXPECT_EQ(FormatEndpoint(IpFamily::kV4, addr, port), std::string(text) + ":" + std::to_string(port));
    }
  }
}

TEST(ParsePacket, Ipv4WithIpAndTcpOptions) {
  TcpSpec spec;
  spec.option_bytes = 12;
  const Bytes packet = Ipv4(Tcp(spec), {.option_bytes = 8});
  const auto result = Parse(packet);
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_EQ(PayloadOf(result), spec.payload);
  EXPECT_EQ(result.segment.payload.data(), packet.data() + 28 + 32);
}

TEST(ParsePacket, EmptyPayloadSyn) {
  TcpSpec spec;
  spec.flags = tcp_flag::kSyn;
  spec.payload.clear();
  const auto result = Parse(Ipv4(Tcp(spec)));
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_TRUE(result.segment.payload.empty());
  EXPECT_EQ(result.segment.flags, tcp_flag::kSyn);
}

TEST(ParsePacket, EveryTruncationOfIpv4) {
  TcpSpec spec;
  spec.option_bytes = 4;
  const Bytes packet = Ipv4(Tcp(spec), {.option_bytes = 4});
  const size_t tcp_start = 24, payload_start = 48;
  for (size_t n = 0; n <= packet.size(); ++n) {
    SCOPED_TRACE(n);
    const auto result = ParsePacket(std::span(packet.data(), n));
    if (n == 0) {
      EXPECT_EQ(result.error, PacketError::kEmpty);
    } else if (n < tcp_start) {
      EXPECT_EQ(result.error, PacketError::kTruncatedIpHeader);
    } else if (n < payload_start) {
      EXPECT_EQ(result.error, PacketError::kTruncatedTcpHeader);
    } else {
      ASSERT_EQ(result.error, PacketError::kNone);
      EXPECT_EQ(result.segment.truncated, n < packet.size());
      EXPECT_EQ(PayloadOf(result), spec.payload.substr(0, n - payload_start));
    }
  }
}

TEST(ParsePacket, EveryTruncationOfIpv6WithExtensions) {
  Bytes chain = GenericExt(43, 1);  // hop-by-hop, 16 bytes, next: routing
  Append(chain, GenericExt(60));    // routing, 8 bytes, next: destination options
  Append(chain, GenericExt(6));     // destination options, next: TCP
  const TcpSpec spec;
  const Bytes packet = Ipv6(0, chain, Tcp(spec));
  const size_t tcp_start = 40 + chain.size(), payload_start = tcp_start + 20;
  for (size_t n = 0; n <= packet.size(); ++n) {
    SCOPED_TRACE(n);
    const auto result = ParsePacket(std::span(packet.data(), n));
    if (n == 0) {
      EXPECT_EQ(result.error, PacketError::kEmpty);
    } else if (n < 40) {
      EXPECT_EQ(result.error, PacketError::kTruncatedIpHeader);
    } else if (n < tcp_start) {
      EXPECT_EQ(result.error, PacketError::kTruncatedExtension);
    } else if (n < payload_start) {
      EXPECT_EQ(result.error, PacketError::kTruncatedTcpHeader);
    } else {
      ASSERT_EQ(result.error, PacketError::kNone);
      EXPECT_EQ(result.segment.truncated, n < packet.size());
      EXPECT_EQ(PayloadOf(result), spec.payload.substr(0, n - payload_start));
    }
  }
}

TEST(ParsePacket, Ipv4LengthLongerThanBufferIsTruncated) {
  const TcpSpec spec;
  const Bytes packet = Ipv4(Tcp(spec), {.total_length = 60000});
  const auto result = Parse(packet);
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_TRUE(result.segment.truncated);
  EXPECT_EQ(PayloadOf(result), spec.payload);
}

TEST(ParsePacket, Ipv4LengthShorterThanBufferDropsPadding) {
  const TcpSpec spec;
  Bytes packet = Ipv4(Tcp(spec));
  packet.resize(packet.size() + 6, 0);  // Ethernet-style padding
  const auto result = Parse(packet);
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_FALSE(result.segment.truncated);
  EXPECT_EQ(PayloadOf(result), spec.payload);
  // A length that cuts the payload is believed (the rest is not part of the datagram).
  Bytes cut = Ipv4(Tcp(spec), {.total_length = 45});
  const auto cut_result = Parse(cut);
  ASSERT_EQ(cut_result.error, PacketError::kNone);
  EXPECT_FALSE(cut_result.segment.truncated);
  EXPECT_EQ(PayloadOf(cut_result), spec.payload.substr(0, 5));
}

TEST(ParsePacket, Ipv4LengthShorterThanHeadersIsIgnored) {
  const TcpSpec spec;
  for (int total : {0, 10, 20, 39}) {
    SCOPED_TRACE(total);
    const auto result = Parse(Ipv4(Tcp(spec), {.total_length = total}));
    ASSERT_EQ(result.error, PacketError::kNone);
    EXPECT_TRUE(result.segment.truncated);
    EXPECT_EQ(PayloadOf(result), spec.payload);
  }
  // Exactly the headers: an empty payload, believed.
  const auto exact = Parse(Ipv4(Tcp(spec), {.total_length = 40}));
  ASSERT_EQ(exact.error, PacketError::kNone);
  EXPECT_FALSE(exact.segment.truncated);
  EXPECT_TRUE(exact.segment.payload.empty());
}

TEST(ParsePacket, BadHeaderLengths) {
  Bytes packet = Ipv4(Tcp({}));
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    packet[0] = static_cast<uint8_t>(0x40 | ihl);
    EXPECT_EQ(Parse(packet).error, PacketError::kBadIpHeaderLength) << int{ihl};
  }
  packet[0] = 0x4f;  // a 60-byte IP header
  EXPECT_EQ(Parse(Bytes(packet.begin(), packet.begin() + 40)).error,
            PacketError::kTruncatedIpHeader);
  ASSERT_LT(packet.size(), 60u);
  EXPECT_EQ(Parse(packet).error, PacketError::kTruncatedIpHeader);

  Bytes bad_offset = Ipv4(Tcp({}));
  for (uint8_t offset = 0; offset < 5; ++offset) {
    bad_offset[20 + 12] = static_cast<uint8_t>(offset << 4);
    EXPECT_EQ(Parse(bad_offset).error, PacketError::kBadTcpOffset) << int{offset};
  }
  TcpSpec no_payload;
  no_payload.payload.clear();
  Bytes long_offset = Ipv4(Tcp(no_payload));
  long_offset[20 + 12] = 0xf0;  // 60-byte TCP header in a 20-byte one
  EXPECT_EQ(Parse(long_offset).error, PacketError::kTruncatedTcpHeader);
}

TEST(ParsePacket, VersionAndProtocol) {
  EXPECT_EQ(ParsePacket({}).error, PacketError::kEmpty);
  Bytes packet = Ipv4(Tcp({}));
  for (int version : {0, 1, 5, 7, 15}) {
    packet[0] = static_cast<uint8_t>((version << 4) | 5);
    EXPECT_EQ(Parse(packet).error, PacketError::kBadIpVersion) << version;
  }
  EXPECT_EQ(Parse(Ipv4(Tcp({}), {.protocol = 17})).error, PacketError::kNotTcp);
  EXPECT_EQ(Parse(Ipv4(Tcp({}), {.protocol = 1})).error, PacketError::kNotTcp);
  const Bytes one_byte{0x45};
  EXPECT_EQ(Parse(one_byte).error, PacketError::kTruncatedIpHeader);
  const Bytes one_byte_v6{0x60};
  EXPECT_EQ(Parse(one_byte_v6).error, PacketError::kTruncatedIpHeader);
}

TEST(ParsePacket, Ipv4Fragments) {
  const TcpSpec spec;
  // Non-first fragments never carry a TCP header we can trust.
  for (int field : {0x0001, 0x2001, 0x1fff, 0x20b9}) {
    EXPECT_EQ(Parse(Ipv4(Tcp(spec), {.fragment_field = static_cast<uint16_t>(field)})).error,
              PacketError::kFragment)
        << field;
  }
  // First fragment with the whole TCP header: parsed, but the payload is partial.
  const auto first = Parse(Ipv4(Tcp(spec), {.fragment_field = 0x2000}));
  ASSERT_EQ(first.error, PacketError::kNone);
  EXPECT_TRUE(first.segment.truncated);
  EXPECT_TRUE(first.segment.ip_fragment);
  EXPECT_EQ(PayloadOf(first), spec.payload);
  // First fragment too short for the TCP header.
  Bytes tiny = Ipv4(Tcp(spec), {.fragment_field = 0x2000});
  tiny.resize(28);
  EXPECT_EQ(Parse(tiny).error, PacketError::kFragment);
  // DF alone is not a fragment.
  const auto df = Parse(Ipv4(Tcp(spec), {.fragment_field = 0x4000}));
  ASSERT_EQ(df.error, PacketError::kNone);
  EXPECT_FALSE(df.segment.truncated);
  EXPECT_FALSE(df.segment.ip_fragment);
}

TEST(ParsePacket, Ipv6Plain) {
  const TcpSpec spec;
  const auto result = Parse(Ipv6(6, {}, Tcp(spec)));
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_EQ(result.segment.key.family, IpFamily::kV6);
  EXPECT_EQ(result.segment.key.dst, kV6Dst);
  EXPECT_EQ(result.segment.key.src, kV6Src);
  EXPECT_FALSE(result.segment.truncated);
  EXPECT_EQ(PayloadOf(result), spec.payload);
  EXPECT_EQ(FormatEndpoint(IpFamily::kV6, result.segment.key.dst, 80), "[fd00:ec2::254]:80");
  EXPECT_EQ(FormatEndpoint(IpFamily::kV6, result.segment.key.src, 40000), "[fd00::2]:40000");
}

TEST(ParsePacket, Ipv6EachExtensionHeader) {
  const TcpSpec spec;
  struct Case {
    const char* name;
    uint8_t type;
    Bytes ext;
  };
  const std::vector<Case> cases = {
      {"hop-by-hop", 0, GenericExt(6)},
      {"hop-by-hop long", 0, GenericExt(6, 3)},
      {"routing", 43, GenericExt(6, 2)},
      {"destination options", 60, GenericExt(6)},
      {"authentication", 51, AuthExt(6, 4)},
      {"authentication odd", 51, AuthExt(6, 1)},
      {"atomic fragment", 44, FragmentExt(6, 0, false)},
      {"mobility", 135, GenericExt(6)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto result = Parse(Ipv6(c.type, c.ext, Tcp(spec)));
    ASSERT_EQ(result.error, PacketError::kNone);
    EXPECT_FALSE(result.segment.truncated);
    EXPECT_EQ(PayloadOf(result), spec.payload);
    EXPECT_EQ(result.segment.key.dst_port, 80);
  }
}

TEST(ParsePacket, Ipv6FullChain) {
  Bytes chain = GenericExt(60);
  Append(chain, GenericExt(43));
  Append(chain, GenericExt(44, 1));
  Append(chain, FragmentExt(51, 0, false));
  Append(chain, AuthExt(60));
  Append(chain, GenericExt(6));
  const TcpSpec spec;
  const auto result = Parse(Ipv6(0, chain, Tcp(spec)));
  ASSERT_EQ(result.error, PacketError::kNone);
  EXPECT_EQ(PayloadOf(result), spec.payload);
}

TEST(ParsePacket, Ipv6NotTcp) {
  EXPECT_EQ(Parse(Ipv6(17, {}, Tcp({}))).error, PacketError::kNotTcp);
  EXPECT_EQ(Parse(Ipv6(58, {}, Tcp({}))).error, PacketError::kNotTcp);
  EXPECT_EQ(Parse(Ipv6(50, {}, Tcp({}))).error, PacketError::kNotTcp);  // ESP
  EXPECT_EQ(Parse(Ipv6(59, {}, Tcp({}))).error, PacketError::kNotTcp);  // no next header
  EXPECT_EQ(Parse(Ipv6(0, GenericExt(59), {})).error, PacketError::kNotTcp);
  EXPECT_EQ(Parse(Ipv6(0, GenericExt(50), Tcp({}))).error, PacketError::kNotTcp);
}

TEST(ParsePacket, Ipv6Fragments) {
  const TcpSpec spec;
  EXPECT_EQ(Parse(Ipv6(44, FragmentExt(6, 185, true), Tcp(spec))).error, PacketError::kFragment);
  EXPECT_EQ(Parse(Ipv6(44, FragmentExt(6, 185, false), Tcp(spec))).error, PacketError::kFragment);
  const auto first = Parse(Ipv6(44, FragmentExt(6, 0, true), Tcp(spec)));
  ASSERT_EQ(first.error, PacketError::kNone);
  EXPECT_TRUE(first.segment.truncated);
  EXPECT_EQ(PayloadOf(first), spec.payload);
  Bytes tiny = Ipv6(44, FragmentExt(6, 0, true), Tcp(spec));
  tiny.resize(40 + 8 + 10);
  EXPECT_EQ(Parse(tiny).error, PacketError::kFragment);
  // A fragment header cut short.
  Bytes cut = Ipv6(44, FragmentExt(6, 0, false), {});
  cut.resize(44);
  EXPECT_EQ(Parse(cut).error, PacketError::kTruncatedExtension);
}

// Linux accepts any number of extension headers, so the parser must reach TCP behind all of
// them (a cap of 8 once hid a request behind 9 destination options); the packet bounds the walk.
TEST(ParsePacket, Ipv6ExtensionChainsOfAnyLengthReachTcp) {
  const TcpSpec spec;
  for (int count : {7, 8, 9, 40, 1000}) {
    Bytes chain;
    for (int i = 0; i < count; ++i) Append(chain, GenericExt(i + 1 == count ? 6 : 60));
    const auto result = Parse(Ipv6(60, chain, Tcp(spec)));
    EXPECT_EQ(result.error, PacketError::kNone) << count;
    EXPECT_EQ(PayloadOf(result), spec.payload) << count;
  }
}

TEST(ParsePacket, Ipv6ExtensionLengthPastPacket) {
  Bytes ext = GenericExt(6);
  ext[1] = 200;  // claims 1608 bytes
  EXPECT_EQ(Parse(Ipv6(0, ext, Tcp({}))).error, PacketError::kTruncatedExtension);
  Bytes ah = AuthExt(6);
  ah[1] = 255;
  EXPECT_EQ(Parse(Ipv6(51, ah, Tcp({}))).error, PacketError::kTruncatedExtension);
}

TEST(ParsePacket, Ipv6LyingPayloadLength) {
  const TcpSpec spec;
  const auto longer = Parse(Ipv6(6, {}, Tcp(spec), 9000));
  ASSERT_EQ(longer.error, PacketError::kNone);
  EXPECT_TRUE(longer.segment.truncated);
  EXPECT_EQ(PayloadOf(longer), spec.payload);
  const auto jumbo = Parse(Ipv6(0, GenericExt(6), Tcp(spec), 0));  // jumbogram / BIG TCP
  ASSERT_EQ(jumbo.error, PacketError::kNone);
  EXPECT_TRUE(jumbo.segment.truncated);
  EXPECT_EQ(PayloadOf(jumbo), spec.payload);
  const auto shorter = Parse(Ipv6(6, {}, Tcp(spec), 23));
  ASSERT_EQ(shorter.error, PacketError::kNone);
  EXPECT_FALSE(shorter.segment.truncated);
  EXPECT_EQ(PayloadOf(shorter), spec.payload.substr(0, 3));
}

TEST(FlowKey, HashAndEquality) {
  const auto a = Parse(Ipv4(Tcp({}))).segment.key;
  auto b = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(FlowKeyHash{}(a), FlowKeyHash{}(b));
  std::set<size_t> hashes;
  for (uint16_t port = 1; port <= 1000; ++port) {
    b.src_port = port;
    hashes.insert(FlowKeyHash{}(b));
  }
  EXPECT_EQ(hashes.size(), 1000u);
  auto v6 = a;
  v6.family = IpFamily::kV6;
  EXPECT_NE(a, v6);
  EXPECT_NE(FlowKeyHash{}(a), FlowKeyHash{}(v6));
}

TEST(PacketErrorName, EveryValueNamed) {
  std::set<std::string> names;
  for (int e = 0; e <= static_cast<int>(PacketError::kBadTcpOffset); ++e) {
    const std::string name = PacketErrorName(static_cast<PacketError>(e));
    EXPECT_NE(name, "unknown");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(PacketError::kBadTcpOffset) + 1);
  EXPECT_STREQ(PacketErrorName(PacketError::kNone), "none");
}

TEST(ParsePacket, RandomBytesStayInBounds) {
  std::mt19937 rng(12345);
  const Bytes seeds[] = {Ipv4(Tcp({})), Ipv6(0, GenericExt(44), FragmentExt(6, 0, true)),
                         Ipv6(51, AuthExt(6), Tcp({}))};
  for (int round = 0; round < 20000; ++round) {
    Bytes packet = seeds[static_cast<size_t>(round) % 3];
    const int flips = 1 + static_cast<int>(rng() % 6);
    for (int f = 0; f < flips; ++f) {
      packet[rng() % packet.size()] = static_cast<uint8_t>(rng());
    }
    packet.resize(rng() % (packet.size() + 1));
    const auto result = Parse(packet);
    if (result.error == PacketError::kNone) {
      const auto& payload = result.segment.payload;
      ASSERT_GE(payload.data(), packet.data());
      ASSERT_LE(payload.data() + payload.size(), packet.data() + packet.size());
    }
  }
}

}  // namespace
}  // namespace nfq::sensor
