#include "sensor/nfqueue.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

extern "C" {
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
}

#include <fmt/format.h>

namespace nfq::sensor {
namespace {

// One datagram holds one packet of up to the copy range plus netlink and attribute headers.
// A multiple of the page size, so that every buffer of a read starts aligned.
constexpr size_t kReceiveBufferSize = 0x10000 + 8192;
constexpr uint32_t kCopyRange = 0xffff;
constexpr int kSetupTimeoutMs = 2000;
// Verdict and config messages are a netlink header plus a few small attributes.
constexpr size_t kSmallMessageSize = 512;

bool ModulePresent() { return access("/proc/net/netfilter/nfnetlink_queue", F_OK) == 0; }

// The kernel answers EPERM both without CAP_NET_ADMIN and when another socket holds the
// queue; the queue table tells the two apart.
bool QueueBoundElsewhere(uint16_t queue_num) {
  FILE* table = std::fopen("/proc/net/netfilter/nfnetlink_queue", "re");
  if (table == nullptr) return false;
  unsigned number = 0, portid = 0;
  bool bound = false;
  char line[256];
  while (std::fgets(line, sizeof line, table) != nullptr) {
    if (std::sscanf(line, "%u %u", &number, &portid) == 2 && number == queue_num && portid != 0) {
      bound = true;
    }
  }
  std::fclose(table);
  return bound;
}

QueueOpenResult Failure(QueueOpenError error, std::string message) {
  QueueOpenResult result;
  result.error = error;
  result.message = std::move(message);
  return result;
}

bool IsPacketMessage(const nlmsghdr* nlh) {
  return NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_QUEUE &&
         NFNL_MSG_TYPE(nlh->nlmsg_type) == NFQNL_MSG_PACKET;
}

// Extracts packet metadata; false when the message lacks what a verdict needs.
bool DecodePacket(const nlmsghdr* nlh, QueuedPacket* packet) {
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return false;
  const auto* header =
      static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  packet->packet_id = ntohl(header->packet_id);
  packet->hook = header->hook;
  packet->hw_protocol = ntohs(header->hw_protocol);
  if (attr[NFQA_PAYLOAD] != nullptr) {
    packet->payload = {static_cast<const uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD])),
                       mnl_attr_get_payload_len(attr[NFQA_PAYLOAD])};
  }
  packet->original_length = static_cast<uint32_t>(packet->payload.size());
  if (attr[NFQA_CAP_LEN] != nullptr) packet->original_length = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
  if (attr[NFQA_UID] != nullptr) {
    packet->has_uid = true;
    packet->uid = ntohl(mnl_attr_get_u32(attr[NFQA_UID]));
  }
  if (attr[NFQA_GID] != nullptr) packet->gid = ntohl(mnl_attr_get_u32(attr[NFQA_GID]));
  if (attr[NFQA_IFINDEX_INDEV] != nullptr) packet->indev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV]));
  if (attr[NFQA_IFINDEX_OUTDEV] != nullptr) packet->outdev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV]));
  packet->has_conntrack = attr[NFQA_CT] != nullptr && attr[NFQA_CT_INFO] != nullptr &&
                          ParseConntrackTuples(attr[NFQA_CT], &packet->conntrack);
  // enum ip_conntrack_info: IP_CT_IS_REPLY (3) and above are the reply direction.
  if (packet->has_conntrack) packet->conntrack_reply_direction = ntohl(mnl_attr_get_u32(attr[NFQA_CT_INFO])) >= 3;
  return true;
}

}  // namespace

// Sends configuration messages and waits for their acknowledgements. Packets that arrive
// meanwhile are accepted on the spot.
struct QueueSetup {
  NfQueue& queue;
  uint32_t seq = 1;

  // Returns 0 or the errno the kernel answered with.
  int Request(nlmsghdr* nlh) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++seq;
    if (mnl_socket_sendto(queue.socket_, nlh, nlh->nlmsg_len) < 0) return errno;
    for (;;) {
      pollfd pfd{queue.fd(), POLLIN, 0};
      const int ready = poll(&pfd, 1, kSetupTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return ETIMEDOUT;
      const ssize_t n = mnl_socket_recvfrom(queue.socket_, queue.buffer_.data(), queue.buffer_.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ENOBUFS) {
          ++queue.counters_.enobufs;
          continue;
        }
        return errno;
      }
      int remaining = static_cast<int>(n);
      for (auto* nlh_in = reinterpret_cast<nlmsghdr*>(queue.buffer_.data());
           mnl_nlmsg_ok(nlh_in, remaining); nlh_in = mnl_nlmsg_next(nlh_in, &remaining)) {
        if (nlh_in->nlmsg_type == NLMSG_ERROR && nlh_in->nlmsg_seq == seq) {
          const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh_in));
          return -err->error;
        }
        QueuedPacket packet;
        if (IsPacketMessage(nlh_in) && DecodePacket(nlh_in, &packet)) queue.SendAccept(packet.packet_id, 1);
      }
    }
  }
};

NfQueue::NfQueue(mnl_socket* socket, uint16_t queue_num, uint32_t rcvbuf)
    : socket_(socket), queue_num_(queue_num), rcvbuf_bytes_(rcvbuf), buffer_(kReceiveBufferSize),
      read_buffers_(std::make_unique_for_overwrite<char[]>(kMaxDatagramsPerRead * kReceiveBufferSize)) {
  portid_ = mnl_socket_get_portid(socket_);
  read_packets_.reserve(2 * kMaxDatagramsPerRead);
}

NfQueue::NfQueue(NfQueue&& other) noexcept { *this = std::move(other); }

NfQueue& NfQueue::operator=(NfQueue&& other) noexcept {
  if (this != &other) {
    Close();
    socket_ = std::exchange(other.socket_, nullptr);
    queue_num_ = other.queue_num_;
    rcvbuf_bytes_ = other.rcvbuf_bytes_;
    conntrack_info_ = other.conntrack_info_;
    portid_ = other.portid_;
    last_packet_id_ = other.last_packet_id_;
    seen_packet_ = other.seen_packet_;
    buffer_ = std::move(other.buffer_);
    read_buffers_ = std::move(other.read_buffers_);
    read_packets_ = std::move(other.read_packets_);
    counters_ = other.counters_;
  }
  return *this;
}

NfQueue::~NfQueue() { Close(); }

int NfQueue::fd() const { return mnl_socket_get_fd(socket_); }

QueueOpenResult NfQueue::Open(const QueueConfig& config) {
  if (!ModulePresent()) {
    return Failure(QueueOpenError::kModuleMissing,
                   "the nfnetlink_queue kernel module is not loaded; fix: modprobe nfnetlink_queue "
                   "(and add it to /etc/modules-load.d/)");
  }
  mnl_socket* socket = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (socket == nullptr) {
    return Failure(QueueOpenError::kSocket,
                   fmt::format("cannot open a netfilter netlink socket: {}", std::strerror(errno)));
  }
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(socket);
    return Failure(QueueOpenError::kSocket,
                   fmt::format("cannot bind the netlink socket: {}", std::strerror(err)));
  }
  const int fd = mnl_socket_get_fd(socket);
  // FORCE ignores rmem_max but needs CAP_NET_ADMIN; a plain SO_RCVBUF is the fallback.
  int requested = static_cast<int>(config.rcvbuf_bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &requested, sizeof requested) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &requested, sizeof requested);
  }
  int actual = 0;
  socklen_t actual_len = sizeof actual;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &actual, &actual_len);
  // NETLINK_NO_ENOBUFS stays off on purpose: every overrun must be seen and counted.

  QueueOpenResult result;
  result.queue.reset(new NfQueue(socket, config.queue_num, static_cast<uint32_t>(actual)));
  NfQueue& queue = *result.queue;
  QueueSetup setup{queue};
  std::vector<char> request(8192);

  nlmsghdr* nlh = nfq_nlmsg_put(request.data(), NFQNL_MSG_CONFIG, config.queue_num);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  if (const int err = setup.Request(nlh); err != 0) {
    result.queue.reset();
    const int reason = (err == EPERM && QueueBoundElsewhere(config.queue_num)) ? EBUSY : err;
    switch (reason) {
      case EPERM:
        return Failure(QueueOpenError::kNoPermission,
                       fmt::format("binding NFQUEUE {} needs CAP_NET_ADMIN; fix: run as root or "
                                   "grant CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_NET_ADMIN)",
                                   config.queue_num));
      case EBUSY:
        return Failure(QueueOpenError::kAlreadyBound,
                       fmt::format("NFQUEUE {} is already bound by another process; fix: stop it "
                                   "(see /proc/net/netfilter/nfnetlink_queue) or use --queue-num "
                                   "with a free number, in the rules too",
                                   config.queue_num));
      case EINVAL:
      case ENOENT:
      case EOPNOTSUPP:
        return Failure(QueueOpenError::kModuleMissing,
                       fmt::format("the kernel refused to bind NFQUEUE {} ({}); fix: modprobe "
                                   "nfnetlink_queue",
                                   config.queue_num, std::strerror(err)));
      default:
        return Failure(QueueOpenError::kSocket,
                       fmt::format("cannot bind NFQUEUE {}: {}", config.queue_num, std::strerror(err)));
    }
  }

  // Fail-open: when the queue is full the kernel accepts instead of dropping (case Q2).
  // GSO: whole super-packets, no segmentation cost. UID/GID: the socket owner comes along.
  // CONNTRACK: the connection's tuples, to tie NATed replies to their flow; it needs
  // nf_conntrack_netlink, and without it the rest still works, so it is asked for first.
  const uint32_t base_flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID;
  auto configure = [&](uint32_t flags) {
    nlh = nfq_nlmsg_put(request.data(), NFQNL_MSG_CONFIG, config.queue_num);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, kCopyRange);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, config.queue_maxlen);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(flags));
    return setup.Request(nlh);
  };
  int err = configure(base_flags | NFQA_CFG_F_CONNTRACK);
  if (err == EAGAIN) err = configure(base_flags | NFQA_CFG_F_CONNTRACK);  // module just loaded
  queue.conntrack_info_ = err == 0;
  if (err != 0) err = configure(base_flags);
  if (err != 0) {
    result.queue.reset();
    return Failure(QueueOpenError::kSocket,
                   fmt::format("cannot configure NFQUEUE {} (copy range, queue length, fail-open): {}",
                               config.queue_num, std::strerror(err)));
  }
  return result;
}

bool NfQueue::EnableWaitingReceive(std::chrono::milliseconds timeout) {
  const int fd = mnl_socket_get_fd(socket_);
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return false;
  const int flags = fcntl(fd, F_GETFL);
  return flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0;
}

size_t NfQueue::ReceiveDatagrams(PacketCallback callback, void* context, bool* would_block, bool wait) {
  // mnl_socket_recvfrom's checks for each datagram, with a choice of waiting for the first:
  // from the kernel (port id 0), never truncated. MSG_WAITFORONE: the rest only if waiting.
  std::array<sockaddr_nl, kMaxDatagramsPerRead> senders{};
  std::array<iovec, kMaxDatagramsPerRead> iovs;
  std::array<mmsghdr, kMaxDatagramsPerRead> msgs{};
  for (size_t i = 0; i < kMaxDatagramsPerRead; ++i) {
    iovs[i] = {read_buffers_.get() + i * kReceiveBufferSize, kReceiveBufferSize};
    msgs[i].msg_hdr.msg_name = &senders[i];
    msgs[i].msg_hdr.msg_namelen = sizeof senders[i];
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n;
  do {
    n = ::recvmmsg(mnl_socket_get_fd(socket_), msgs.data(), kMaxDatagramsPerRead,
                   wait ? MSG_WAITFORONE : MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      *would_block = true;
    } else if (errno == ENOBUFS) {
      // The kernel could not deliver some packet messages to us. The packets themselves are
      // still queued; the next batch verdict accepts them. Only visibility is lost.
      ++counters_.enobufs;
    } else {
      ++counters_.recv_errors;
      *would_block = true;  // do not spin on a persistent error; poll decides
    }
    return 0;
  }
  ++counters_.reads;
  read_packets_.clear();
  uint32_t highest_id = 0;
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    const msghdr& hdr = msgs[i].msg_hdr;
    if ((hdr.msg_flags & MSG_TRUNC) != 0 || senders[i].nl_pid != 0) {
      ++counters_.malformed_messages;
      continue;
    }
    ++counters_.messages;
    int remaining = static_cast<int>(msgs[i].msg_len);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(iovs[i].iov_base); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (!IsPacketMessage(nlh)) continue;
      QueuedPacket& packet = read_packets_.emplace_back();
      if (!DecodePacket(nlh, &packet)) {
        read_packets_.pop_back();
        ++counters_.malformed_messages;
        continue;
      }
      // Queue ids only grow (modulo 2^32) in the order the kernel sends the messages.
      highest_id = packet.packet_id;
    }
  }
  if (read_packets_.empty()) return 0;
  SendAccept(highest_id, read_packets_.size());
  for (const QueuedPacket& packet : read_packets_) {
    ++counters_.packets;
    counters_.bytes += packet.original_length;
    callback(context, packet);
  }
  return read_packets_.size();
}

void NfQueue::SendAccept(uint32_t packet_id, size_t received_packets) {
  alignas(nlmsghdr) char buf[kSmallMessageSize];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT_BATCH, queue_num_);
  nfq_nlmsg_verdict_put(nlh, static_cast<int>(packet_id), NF_ACCEPT);
  if (mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len) < 0) {
    ++counters_.verdict_errors;
  } else {
    ++counters_.verdict_messages;
    counters_.verdicts += received_packets;
  }
  if (received_packets == 0) return;
  last_packet_id_ = packet_id;
  seen_packet_ = true;
}

void NfQueue::Close() {
  if (socket_ == nullptr) return;
  // Read and accept what is waiting on the socket, then accept everything still queued: the
  // batch verdict covers every id up to the one given, and ids are allocated in order.
  auto ignore = [](void*, const QueuedPacket&) {};
  for (int i = 0; i < 4096; ++i) {
    bool would_block = false;
    ReceiveDatagrams(ignore, nullptr, &would_block);
    if (would_block) break;
  }
  // Not counted as a verdict: it answers packets this process never received.
  SendAccept(last_packet_id_ + (1u << 30), /*received_packets=*/0);
  alignas(nlmsghdr) char buf[kSmallMessageSize];
  nlmsghdr* nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue_num_);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
  mnl_socket_sendto(socket_, nlh, nlh->nlmsg_len);
  mnl_socket_close(socket_);
  socket_ = nullptr;
}

}  // namespace nfq::sensor
