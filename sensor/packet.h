// IPv4/IPv6 + TCP parsing of a queued packet, over a bounds-checked cursor.
// Pure and allocation-free: safe on the packet thread. Never trusts a length field and
// never looks at checksums (locally generated packets carry partial ones: case Q6).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace nfq::sensor {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

struct FlowKey {
  IpFamily family = IpFamily::kV4;
  std::array<uint8_t, 16> src{};  // IPv4 uses the first 4 bytes, the rest stay zero
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;  // host byte order
  uint16_t dst_port = 0;
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& key) const noexcept;
};

enum class PacketError : uint8_t {
  kNone = 0,
  kEmpty,
  kBadIpVersion,
  kTruncatedIpHeader,
  kBadIpHeaderLength,
  kNotTcp,
  kFragment,            // non-first fragment, or first fragment too short for TCP header
  kTruncatedExtension,  // IPv6 extension header chain runs past the packet
  kTooManyExtensions,
  kTruncatedTcpHeader,
  kBadTcpOffset,
};

const char* PacketErrorName(PacketError error) noexcept;

namespace tcp_flag {
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10,
                         kUrg = 0x20;
}

struct TcpSegment {
  FlowKey key;
  uint32_t seq = 0;  // host byte order
  uint32_t ack = 0;  // acknowledgment number, host byte order (meaningful with kAck)
  uint8_t flags = 0;
  std::span<const uint8_t> payload;  // view into the packet buffer
  // The IP header announced more bytes than the buffer holds (copy range, GSO), or the
  // announced length was shorter than the TCP header (a lie, or 0 for a GSO/jumbo packet),
  // or this is the first of several IP fragments; payload is what is really there.
  bool truncated = false;
  // The first of several IP fragments: the rest of its bytes are in fragments that carry no
  // TCP header, which the rules cannot match and the daemon cannot place.
  bool ip_fragment = false;
};

struct PacketParseResult {
  PacketError error = PacketError::kNone;
  TcpSegment segment;  // valid only when error == kNone
};

// Parses a network-layer packet (as NFQUEUE delivers it: starting at the IP header).
PacketParseResult ParsePacket(std::span<const uint8_t> packet) noexcept;

// "169.254.169.254:80" or "[fd00:ec2::254]:80".
std::string FormatEndpoint(IpFamily family, const std::array<uint8_t, 16>& addr, uint16_t port);
// The same into *out (replacing what it held; its capacity is reused).
void FormatEndpointTo(IpFamily family, const std::array<uint8_t, 16>& addr, uint16_t port,
                      std::string* out);

}  // namespace nfq::sensor
