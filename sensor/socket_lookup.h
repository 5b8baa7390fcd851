// Finds the local TCP socket of a flow (inode and owner uid) in the kernel's socket tables,
// via netlink sock_diag: an exact lookup of the 4-tuple (INET_DIAG_NOCOOKIE); when that
// misses (e.g. a NAT rule changed the remote address before our hook) a dump of the family
// filtered here by the local address and port, at most one every kDumpInterval: a dump walks
// the kernel's whole established table, shared by all network namespaces unless one was given
// its own, so every TIME_WAIT socket of every container too (a quarter of a million on this
// project's lab server under a new connection per request: milliseconds per dump), and
// nearly every miss is a socket already closed, which no dump finds.
// /proc/net/tcp{,6} is read only when the kernel has no sock_diag.
//
// Sockets are looked up in the network namespace of the calling thread.
// Thread-safety: one thread at a time (owns one netlink socket). Blocks at most `timeout`
// per call: for a worker thread, never for the packet thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "sensor/packet.h"
#include "alerting/file_util.h"

namespace nfq::sensor {

struct SocketQuery {
  IpFamily family = IpFamily::kV4;
  std::array<uint8_t, 16> local{};  // IPv4 uses the first 4 bytes
  uint16_t local_port = 0;          // host byte order
  std::array<uint8_t, 16> remote{};
  uint16_t remote_port = 0;

  // The local socket of an outbound flow: its source is our end.
  static SocketQuery ForOutbound(const FlowKey& key) {
    return {key.family, key.src, key.src_port, key.dst, key.dst_port};
  }
};

struct SocketInfo {
  uint64_t inode = 0;  // 0 for sockets without a file (TIME_WAIT, orphaned after close)
  uint32_t uid = 0;
  uint8_t state = 0;  // TCP_* state
  bool by_exact_tuple = true;  // false: found by a dump, matched on the local end only
};

enum class SocketLookupStatus : uint8_t {
  kFound,
  kNotFound,
  kTimeout,      // the kernel did not answer in time
  kUnavailable,  // neither sock_diag nor /proc/net/tcp could be read
};

class SocketLookup {
 public:
  explicit SocketLookup(std::chrono::milliseconds timeout = std::chrono::milliseconds(50));

  SocketLookup(const SocketLookup&) = delete;
  SocketLookup& operator=(const SocketLookup&) = delete;

  SocketLookupStatus Find(const SocketQuery& query, SocketInfo* out);
  // The exact 4-tuple only, never a dump: is a socket found before still there?
  SocketLookupStatus FindExact(const SocketQuery& query, SocketInfo* out);

  // False when sock_diag could not be opened and lookups read /proc/net/tcp instead.
  bool uses_sock_diag() const { return static_cast<bool>(socket_); }

 private:
  enum class Mode : uint8_t { kExact, kDump };
  SocketLookupStatus Diag(const SocketQuery& query, Mode mode, SocketInfo* out);
  SocketLookupStatus ProcNet(const SocketQuery& query, SocketInfo* out) const;

  static constexpr std::chrono::milliseconds kDumpInterval{250};
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point next_dump_{};
  alerting::UniqueFd socket_;
  uint32_t sequence_ = 0;
  std::vector<char> buffer_;
};

}  // namespace nfq::sensor
