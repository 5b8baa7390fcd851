#include "sensor/socket_lookup.h"

// netinet/in.h before the linux/ headers: the other order redefines struct in_addr.
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace nfq::sensor {
namespace {

constexpr size_t kReceiveBuffer = 32 * 1024;

struct DiagRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};

int AddressFamily(IpFamily family) { return family == IpFamily::kV4 ? AF_INET : AF_INET6; }
size_t AddressBytes(IpFamily family) { return family == IpFamily::kV4 ? 4 : 16; }

bool SameAddress(IpFamily family, const std::array<uint8_t, 16>& a, const __be32* b) {
  return std::memcmp(a.data(), b, AddressBytes(family)) == 0;
}

// Millisecond budget left until deadline, at least 0.
int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// /proc/net/tcp prints each 32-bit word of an address with %08X of its in-memory value.
bool ParseProcAddress(const std::string& text, size_t bytes, std::array<uint8_t, 16>* out,
                      uint16_t* port) {
  const size_t colon = text.find(':');
  if (colon != bytes * 2) return false;
  for (size_t word = 0; word < bytes / 4; ++word) {
    uint32_t value = 0;
    if (std::sscanf(text.c_str() + word * 8, "%8x", &value) != 1) return false;
    std::memcpy(out->data() + word * 4, &value, 4);
  }
  unsigned value = 0;
  if (std::sscanf(text.c_str() + colon + 1, "%4x", &value) != 1) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

SocketLookup::SocketLookup(std::chrono::milliseconds timeout)
    : timeout_(timeout),
      socket_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {}

SocketLookupStatus SocketLookup::Find(const SocketQuery& query, SocketInfo* out) {
  if (!socket_) return ProcNet(query, out);
  SocketLookupStatus status = Diag(query, Mode::kExact, out);
  if (status == SocketLookupStatus::kNotFound) {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_dump_) return status;
    next_dump_ = now + kDumpInterval;
    status = Diag(query, Mode::kDump, out);
    out->by_exact_tuple = false;
  }
  return status;
}

SocketLookupStatus SocketLookup::FindExact(const SocketQuery& query, SocketInfo* out) {
  return socket_ ? Diag(query, Mode::kExact, out) : ProcNet(query, out);
}

SocketLookupStatus SocketLookup::Diag(const SocketQuery& query, Mode mode, SocketInfo* out) {
  DiagRequest request{};
  request.header.nlmsg_len = sizeof request;
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags =
      static_cast<uint16_t>(NLM_F_REQUEST | (mode == Mode::kDump ? NLM_F_DUMP : 0));
  request.header.nlmsg_seq = ++sequence_;
  request.body.sdiag_family = static_cast<uint8_t>(AddressFamily(query.family));
  request.body.sdiag_protocol = IPPROTO_TCP;
  // Every state but LISTEN (a listener never sends to the metadata service). A dump also
  // leaves out TIME_WAIT and NEW_SYN_RECV: no process holds those (inode 0), and under a new
  // connection per request they are nearly all of the sockets a dump would format and copy.
  constexpr uint32_t kListen = 1u << 10, kTimeWait = 1u << 6, kNewSynRecv = 1u << 12;
  request.body.idiag_states = mode == Mode::kDump ? ~(kListen | kTimeWait | kNewSynRecv) : ~kListen;
  if (mode == Mode::kExact) {
    request.body.id.idiag_sport = htons(query.local_port);
    request.body.id.idiag_dport = htons(query.remote_port);
    std::memcpy(request.body.id.idiag_src, query.local.data(), AddressBytes(query.family));
    std::memcpy(request.body.id.idiag_dst, query.remote.data(), AddressBytes(query.family));
  }
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    const ssize_t sent = ::sendto(socket_.get(), &request, sizeof request, 0,
                                  reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
    if (sent >= 0) break;
    if (errno != EINTR) return SocketLookupStatus::kUnavailable;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  std::vector<char>& buffer = buffer_;
  buffer.resize(kReceiveBuffer);
  SocketLookupStatus result = SocketLookupStatus::kNotFound;
  for (;;) {
    const ssize_t n = ::recv(socket_.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return SocketLookupStatus::kUnavailable;
      pollfd pfd{socket_.get(), POLLIN, 0};
      const int wait_ms = RemainingMs(deadline);
      if (wait_ms == 0 || ::poll(&pfd, 1, wait_ms) <= 0) {
        return result == SocketLookupStatus::kFound ? result : SocketLookupStatus::kTimeout;
      }
      continue;
    }
    // The NLMSG_* macros use C casts; walk the datagram by hand.
    size_t offset = 0;
    const auto length = static_cast<size_t>(n);
    while (length - offset >= sizeof(nlmsghdr)) {
      const auto* msg = reinterpret_cast<const nlmsghdr*>(buffer.data() + offset);
      if (msg->nlmsg_len < sizeof(nlmsghdr) || msg->nlmsg_len > length - offset) break;
      offset += (msg->nlmsg_len + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1u);
      const char* payload = reinterpret_cast<const char*>(msg) + NLMSG_HDRLEN;
      if (msg->nlmsg_seq != request.header.nlmsg_seq) continue;  // late answer to a timed-out query
      if (msg->nlmsg_type == NLMSG_DONE) return result;
      if (msg->nlmsg_type == NLMSG_ERROR) {
        if (msg->nlmsg_len < NLMSG_HDRLEN + sizeof(nlmsgerr))
          return SocketLookupStatus::kUnavailable;
        const auto* error = reinterpret_cast<const nlmsgerr*>(payload);
        if (error->error == -ENOENT || error->error == 0) return SocketLookupStatus::kNotFound;
        return SocketLookupStatus::kUnavailable;
      }
      if (msg->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          msg->nlmsg_len < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
        continue;
      }
      const auto* diag = reinterpret_cast<const inet_diag_msg*>(payload);
      const bool match =
          mode == Mode::kExact || (result != SocketLookupStatus::kFound &&
                                   ntohs(diag->id.idiag_sport) == query.local_port &&
                                   SameAddress(query.family, query.local, diag->id.idiag_src));
      if (match) {
        out->inode = diag->idiag_inode;
        out->uid = diag->idiag_uid;
        out->state = diag->idiag_state;
        result = SocketLookupStatus::kFound;
        // An exact lookup answers with one message and no DONE; a dump is read to its DONE
        // so nothing of it is left for the next query.
        if (mode == Mode::kExact) return result;
      }
    }
  }
}

SocketLookupStatus SocketLookup::ProcNet(const SocketQuery& query, SocketInfo* out) const {
  std::ifstream in(query.family == IpFamily::kV4 ? "/proc/net/tcp" : "/proc/net/tcp6");
  if (!in) return SocketLookupStatus::kUnavailable;
  std::string line;
  std::getline(in, line);  // header
  const size_t bytes = AddressBytes(query.family);
  while (std::getline(in, line)) {
    char local[64], remote[64];
    unsigned state = 0;
    unsigned long uid = 0;
    unsigned long long inode = 0;
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (std::sscanf(line.c_str(), "%*s %63s %63s %x %*s %*s %*s %lu %*s %llu", local, remote,
                    &state, &uid, &inode) != 5) {
      continue;
    }
    std::array<uint8_t, 16> local_addr{}, remote_addr{};
    uint16_t local_port = 0, remote_port = 0;
    if (!ParseProcAddress(local, bytes, &local_addr, &local_port) ||
        !ParseProcAddress(remote, bytes, &remote_addr, &remote_port)) {
      continue;
    }
    if (local_port == query.local_port && local_addr == query.local &&
        remote_port == query.remote_port && remote_addr == query.remote) {
      out->inode = inode;
      out->uid = static_cast<uint32_t>(uid);
      out->state = static_cast<uint8_t>(state);
      return SocketLookupStatus::kFound;
    }
  }
  return SocketLookupStatus::kNotFound;
}

}  // namespace nfq::sensor
