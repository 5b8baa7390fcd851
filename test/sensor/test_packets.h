// Builds IPv4/IPv6 TCP packets for tests, as NFQUEUE delivers them (from the IP header).
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace nfq::sensor::testing {

struct TcpSpec {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  bool ipv6 = false;
  uint16_t src_port = 40000;
  uint16_t dst_port = 80;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint8_t flags = 0x18;  // PSH|ACK
};

// The server's SYN-ACK for a client's SYN (spec: the client's direction, seq its SYN's).
inline TcpSpec SynAckFor(const TcpSpec& client_syn, uint32_t ack) {
  TcpSpec reply = client_syn;
  std::swap(reply.src, reply.dst);
  std::swap(reply.src_port, reply.dst_port);
  reply.seq = 777000;
  reply.ack = ack;
  reply.flags = 0x12;  // SYN|ACK
  return reply;
}

inline TcpSpec V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t src_port = 40000) {
  TcpSpec spec;
  spec.src = {10, 0, 0, 2};
  spec.dst = {a, b, c, d};
  spec.src_port = src_port;
  return spec;
}

inline TcpSpec MetadataV4(uint16_t src_port = 40000) { return V4(169, 254, 169, 254, src_port); }

inline TcpSpec MetadataV6(uint16_t src_port = 40000) {
  TcpSpec spec;
  spec.ipv6 = true;
  spec.src = {0xfd, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  spec.dst = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  spec.src_port = src_port;
  return spec;
}

inline void Put16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v);
}

inline void Put32(std::vector<uint8_t>& out, size_t at, uint32_t v) {
  Put16(out, at, static_cast<uint16_t>(v >> 16));
  Put16(out, at + 2, static_cast<uint16_t>(v));
}

// A packet with a 20-byte TCP header and the payload; checksums left zero (never checked).
inline std::vector<uint8_t> BuildTcp(const TcpSpec& spec, std::string_view payload) {
  const size_t ip_len = spec.ipv6 ? 40 : 20;
  std::vector<uint8_t> out(ip_len + 20 + payload.size());
  if (spec.ipv6) {
    out[0] = 0x60;
    Put16(out, 4, static_cast<uint16_t>(20 + payload.size()));
    out[6] = 6;  // next header: TCP
    out[7] = 64;
    std::copy(spec.src.begin(), spec.src.end(), out.begin() + 8);
    std::copy(spec.dst.begin(), spec.dst.end(), out.begin() + 24);
  } else {
    out[0] = 0x45;
    Put16(out, 2, static_cast<uint16_t>(out.size()));
    out[8] = 64;
    out[9] = 6;
    std::copy(spec.src.begin(), spec.src.begin() + 4, out.begin() + 12);
    std::copy(spec.dst.begin(), spec.dst.begin() + 4, out.begin() + 16);
  }
  Put16(out, ip_len, spec.src_port);
  Put16(out, ip_len + 2, spec.dst_port);
  Put32(out, ip_len + 4, spec.seq);
  Put32(out, ip_len + 8, spec.ack);
  out[ip_len + 12] = 5 << 4;
  out[ip_len + 13] = spec.flags;
  Put16(out, ip_len + 14, 65535);
  std::copy(payload.begin(), payload.end(), out.begin() + static_cast<long>(ip_len + 20));
  return out;
}

}  // namespace nfq::sensor::testing
