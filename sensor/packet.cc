#include "sensor/packet.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "sensor/byte_cursor.h"

namespace nfq::sensor {
namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr size_t kIpv4MinHeader = 20;
constexpr size_t kIpv6Header = 40;
constexpr size_t kTcpMinHeader = 20;
// Real stacks send a handful, but Linux accepts any number, so a smaller cap would let a
// crafted chain hide a request. Each header is at least 8 bytes, so a 64 KiB packet holds at
// most 8192 of them: the walk is bounded by the packet either way.
constexpr int kMaxIpv6Extensions = 8192;
constexpr size_t kNoAnnouncedEnd = std::numeric_limits<size_t>::max();

// IPv6 extension header types (RFC 8200 4.1, RFC 7045).
constexpr uint8_t kHopByHop = 0, kRouting = 43, kFragmentHeader = 44, kDestOptions = 60,
                  kAuthHeader = 51, kMobility = 135, kHip = 139, kShim6 = 140;

PacketParseResult Fail(PacketError error) {
  PacketParseResult result;
  result.error = error;
  return result;
}

// `announced_end`: where the IP header says the packet ends (kNoAnnouncedEnd if unknown).
// `first_fragment`: more fragments follow, so the payload here is only the beginning.
PacketParseResult ParseTcp(std::span<const uint8_t> packet, size_t tcp_offset, size_t announced_end,
                           bool first_fragment, const FlowKey& ip_key) {
  ByteCursor tcp(packet.subspan(tcp_offset));
  const PacketError short_header =
      first_fragment ? PacketError::kFragment : PacketError::kTruncatedTcpHeader;
  if (!tcp.Has(kTcpMinHeader)) return Fail(short_header);

  PacketParseResult result;
  TcpSegment& segment = result.segment;
  segment.key = ip_key;
  segment.key.src_port = tcp.ReadU16be();
  segment.key.dst_port = tcp.ReadU16be();
  segment.seq = tcp.ReadU32be();
  segment.ack = tcp.ReadU32be();
  const size_t header_length = size_t{static_cast<uint8_t>(tcp.ReadU8() >> 4)} * 4;
  segment.flags = tcp.ReadU8();
  if (header_length < kTcpMinHeader) return Fail(PacketError::kBadTcpOffset);
  if (packet.size() - tcp_offset < header_length) return Fail(short_header);

  const size_t payload_begin = tcp_offset + header_length;
  size_t payload_end = packet.size();
  segment.truncated = first_fragment;
  segment.ip_fragment = first_fragment;
  if (announced_end == kNoAnnouncedEnd) {
    // Nothing announced: the buffer is the packet.
  } else if (announced_end < payload_begin || announced_end > packet.size()) {
    // A length shorter than the headers is a lie or a GSO/jumbo super-packet (length 0); a
    // longer one means the copy range cut the packet. Either way the buffer is what we have.
    segment.truncated = true;
  } else {
    payload_end = announced_end;  // bytes past it are link-layer padding
  }
  segment.payload = packet.subspan(payload_begin, payload_end - payload_begin);
  return result;
}

PacketParseResult ParseIpv4(std::span<const uint8_t> packet) {
  ByteCursor ip(packet);
  if (!ip.Has(kIpv4MinHeader)) return Fail(PacketError::kTruncatedIpHeader);
  const size_t header_length = size_t{static_cast<uint8_t>(ip.ReadU8() & 0x0f)} * 4;
  ip.Skip(1);  // DSCP/ECN
  const size_t total_length = ip.ReadU16be();
  ip.Skip(2);  // identification
  const uint16_t fragment_field = ip.ReadU16be();
  ip.Skip(1);  // TTL
  const uint8_t protocol = ip.ReadU8();
  ip.Skip(2);  // checksum: never checked (case Q6)
  FlowKey key;
  key.family = IpFamily::kV4;
  const auto src = ip.ReadBytes(4);
  const auto dst = ip.ReadBytes(4);
  std::memcpy(key.src.data(), src.data(), src.size());
  std::memcpy(key.dst.data(), dst.data(), dst.size());

  if (header_length < kIpv4MinHeader) return Fail(PacketError::kBadIpHeaderLength);
  if (header_length > packet.size()) return Fail(PacketError::kTruncatedIpHeader);
  if (protocol != kProtoTcp) return Fail(PacketError::kNotTcp);
  const bool more_fragments = (fragment_field & 0x2000) != 0;
  const uint16_t fragment_offset = fragment_field & 0x1fff;
  if (fragment_offset != 0) return Fail(PacketError::kFragment);
  return ParseTcp(packet, header_length, total_length, more_fragments, key);
}

PacketParseResult ParseIpv6(std::span<const uint8_t> packet) {
  ByteCursor ip(packet);
  if (!ip.Has(kIpv6Header)) return Fail(PacketError::kTruncatedIpHeader);
  ip.Skip(4);  // version, traffic class, flow label
  const size_t payload_length = ip.ReadU16be();
  uint8_t next_header = ip.ReadU8();
  ip.Skip(1);  // hop limit
  FlowKey key;
  key.family = IpFamily::kV6;
  const auto src = ip.ReadBytes(16);
  const auto dst = ip.ReadBytes(16);
  std::memcpy(key.src.data(), src.data(), src.size());
  std::memcpy(key.dst.data(), dst.data(), dst.size());

  bool first_fragment = false;
  for (int extensions = 0; next_header != kProtoTcp; ++extensions) {
    if (extensions == kMaxIpv6Extensions) return Fail(PacketError::kTooManyExtensions);
    size_t length = 0;
    const auto type_byte = ip.PeekU8(0);
    const auto length_byte = ip.PeekU8(1);
    switch (next_header) {
      case kHopByHop:
      case kRouting:
      case kDestOptions:
      case kMobility:
      case kHip:
      case kShim6:
        if (!length_byte) return Fail(PacketError::kTruncatedExtension);
        length = (size_t{*length_byte} + 1) * 8;
        break;
      case kAuthHeader:
        if (!length_byte) return Fail(PacketError::kTruncatedExtension);
        length = (size_t{*length_byte} + 2) * 4;
        break;
      case kFragmentHeader: {
        length = 8;
        if (!ip.Has(length)) return Fail(PacketError::kTruncatedExtension);
        const auto high = *ip.PeekU8(2);
        const auto low = *ip.PeekU8(3);
        const auto field = static_cast<uint16_t>((high << 8) | low);
        if ((field >> 3) != 0) return Fail(PacketError::kFragment);
        if ((field & 1) != 0) first_fragment = true;
        break;
      }
      default:  // ESP (50), no next header (59), UDP, ICMPv6, ...
        return Fail(PacketError::kNotTcp);
    }
    if (!ip.Skip(length)) return Fail(PacketError::kTruncatedExtension);
    next_header = *type_byte;
  }
  return ParseTcp(packet, ip.position(), kIpv6Header + payload_length, first_fragment, key);
}

uint64_t Load64(const uint8_t* bytes) {
  uint64_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

uint64_t Mix(uint64_t hash, uint64_t value) {
  // One round of a multiply-xorshift mixer (the murmur3 finalizer's constants).
  hash ^= value;
  hash ^= hash >> 33;
  hash *= 0xff51afd7ed558ccdULL;
  hash ^= hash >> 33;
  hash *= 0xc4ceb9fe1a85ec53ULL;
  hash ^= hash >> 33;
  return hash;
}

}  // namespace

size_t FlowKeyHash::operator()(const FlowKey& key) const noexcept {
  uint64_t hash = 0x9e3779b97f4a7c15ULL;
  hash = Mix(hash, Load64(key.src.data()));
  hash = Mix(hash, Load64(key.src.data() + 8));
  hash = Mix(hash, Load64(key.dst.data()));
  hash = Mix(hash, Load64(key.dst.data() + 8));
  hash = Mix(hash, (uint64_t{key.src_port} << 24) | (uint64_t{key.dst_port} << 8) |
                       static_cast<uint64_t>(key.family));
  return static_cast<size_t>(hash);
}

const char* PacketErrorName(PacketError error) noexcept {
  switch (error) {
    case PacketError::kNone:
      return "none";
    case PacketError::kEmpty:
      return "empty";
    case PacketError::kBadIpVersion:
      return "bad_ip_version";
    case PacketError::kTruncatedIpHeader:
      return "truncated_ip_header";
    case PacketError::kBadIpHeaderLength:
      return "bad_ip_header_length";
    case PacketError::kNotTcp:
      return "not_tcp";
    case PacketError::kFragment:
      return "fragment";
    case PacketError::kTruncatedExtension:
      return "truncated_extension";
    case PacketError::kTooManyExtensions:
      return "too_many_extensions";
    case PacketError::kTruncatedTcpHeader:
      return "truncated_tcp_header";
    case PacketError::kBadTcpOffset:
      return "bad_tcp_offset";
  }
  return "unknown";
}

PacketParseResult ParsePacket(std::span<const uint8_t> packet) noexcept {
  if (packet.empty()) return Fail(PacketError::kEmpty);
  switch (packet[0] >> 4) {
    case 4:
      return ParseIpv4(packet);
    case 6:
      return ParseIpv6(packet);
    default:
      return Fail(PacketError::kBadIpVersion);
  }
}

void FormatEndpointTo(IpFamily family, const std::array<uint8_t, 16>& addr, uint16_t port,
                      std::string* out) {
  out->clear();
  auto append_number = [out](unsigned value) {
    const fmt::format_int digits(value);
    out->append(digits.data(), digits.size());
  };
  if (family == IpFamily::kV4) {
    // By hand: inet_ntop formats IPv4 through snprintf, once per hit.
    for (size_t i = 0; i < 4; ++i) {
      if (i != 0) out->push_back('.');
      append_number(addr[i]);
    }
  } else {
    char text[INET6_ADDRSTRLEN] = {};
    if (inet_ntop(AF_INET6, addr.data(), text, sizeof text) == nullptr) {
      out->push_back('?');  // cleared above
      return;
    }
    out->push_back('[');
    out->append(text);
    out->push_back(']');
  }
  out->push_back(':');
  append_number(port);
}

std::string FormatEndpoint(IpFamily family, const std::array<uint8_t, 16>& addr, uint16_t port) {
  std::string endpoint;
  FormatEndpointTo(family, addr, port, &endpoint);
  return endpoint;
}

}  // namespace nfq::sensor
