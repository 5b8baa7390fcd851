// An NFQUEUE binding on the libmnl-based libnetfilter_queue API. Move-only owner of the
// netlink socket. Every packet it hands out has already been ACCEPTed: the verdict is sent
// before the caller sees the bytes, so no parser or sink can delay or lose a verdict.
//
// Verdicts are sent as NFQNL_MSG_VERDICT_BATCH for the highest id of a read: one read takes
// every datagram waiting (up to kMaxDatagramsPerRead, recvmmsg), and one batch verdict
// accepts every queued packet with an id up to the highest, because the kernel numbers
// queued packets in order. Under load that is one read and one verdict for several packets,
// and one pass of the reinjected packets through the stack. Packets whose netlink message
// was lost (ENOBUFS) or arrived while the queue was being configured are accepted by the
// next verdict too, instead of waiting in the kernel forever.
//
// Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "sensor/conntrack_tuple.h"

struct mnl_socket;

namespace nfq::sensor {

struct QueueConfig {
  uint16_t queue_num = 0;
  uint32_t queue_maxlen = 4096;
  uint32_t rcvbuf_bytes = 8u << 20;
};

// Why the queue could not be opened; each maps to a one-line cause and fix.
enum class QueueOpenError {
  kNone,
  kModuleMissing,    // nfnetlink_queue not available in this kernel / namespace
  kNoPermission,     // no CAP_NET_ADMIN
  kAlreadyBound,     // another process holds the queue number
  kSocket,           // anything else; see message
};

struct QueueOpenResult;

// Metadata the kernel attaches to a queued packet.
struct QueuedPacket {
  uint32_t packet_id = 0;  // host byte order
  uint8_t hook = 0;        // NF_INET_* hook number
  uint16_t hw_protocol = 0;
  std::span<const uint8_t> payload;  // network-layer bytes, at most the copy range
  uint32_t original_length = 0;      // NFQA_CAP_LEN when the kernel cut the packet, else payload size
  bool has_uid = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t indev = 0;
  uint32_t outdev = 0;
  // Connection tracking's view of the packet's connection (only when conntrack is active in
  // the namespace and the queue could ask for it: NfQueue::conntrack_info()).
  bool has_conntrack = false;
  bool conntrack_reply_direction = false;  // the packet matched its entry's reply tuple
  ConntrackTuples conntrack;
};

struct QueueCounters {
  uint64_t reads = 0;             // receive calls that returned datagrams
  uint64_t messages = 0;          // datagrams
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t verdicts = 0;          // packets a sent verdict accepted
  uint64_t verdict_messages = 0;  // batch verdicts sent (one per read)
  uint64_t verdict_errors = 0;
  uint64_t enobufs = 0;          // kernel dropped netlink messages: lost visibility, not packets
  uint64_t malformed_messages = 0;
  uint64_t recv_errors = 0;
};

class NfQueue {
 public:
  static QueueOpenResult Open(const QueueConfig& config);

  NfQueue(NfQueue&&) noexcept;
  NfQueue& operator=(NfQueue&&) noexcept;
  NfQueue(const NfQueue&) = delete;
  NfQueue& operator=(const NfQueue&) = delete;
  ~NfQueue();

  int fd() const;

  static constexpr size_t kMaxDatagramsPerRead = 16;

  // Reads the datagrams waiting, up to kMaxDatagramsPerRead, waiting for the first up to the
  // receive timeout (see EnableWaitingReceive): one system call, where poll + read + the
  // read that finds nothing cost three per datagram. Sends one ACCEPT covering every packet
  // read, then calls on_packet(const QueuedPacket&) for each, in queue order. Returns the
  // number of packets handled; 0 when nothing came. ENOBUFS is counted and survived; EINTR
  // retried.
  template <class OnPacket>
  size_t ReceiveWaiting(OnPacket&& on_packet);
  // Makes reads wait (the socket leaves non-blocking mode) for at most `timeout`, so the
  // caller still gets control that often; reads that must not wait pass MSG_DONTWAIT.
  // False (errno set) when the kernel refused.
  bool EnableWaitingReceive(std::chrono::milliseconds timeout);

  // Shutdown: reads and accepts what is still waiting in the socket, then accepts every
  // packet still queued in the kernel, then unbinds. Packets queued in the microseconds
  // between the last verdict and the unbind are dropped by the kernel and retransmitted by
  // TCP, which the queue-bypass rule then lets through.

  void Close();

  const QueueCounters& counters() const { return counters_; }
  // As the kernel reports it: twice what was asked for (it counts its bookkeeping).
  uint32_t rcvbuf_bytes() const { return rcvbuf_bytes_; }
  // The kernel attaches conntrack tuples to queued packets (needs nf_conntrack_netlink).
  bool conntrack_info() const { return conntrack_info_; }

 private:
  using PacketCallback = void (*)(void* context, const QueuedPacket& packet);

  NfQueue(mnl_socket* socket, uint16_t queue_num, uint32_t rcvbuf);
  // One read (see ReceiveWaiting). Returns packets handled; sets *would_block when nothing
  // was waiting. `wait`: block for the first datagram up to the receive timeout.
  size_t ReceiveDatagrams(PacketCallback callback, void* context, bool* would_block, bool wait = false);
  // Accepts every queued packet up to packet_id; `received_packets` of them were read (0:
  // the shutdown verdict for packets never read, which moves no bookkeeping).
  void SendAccept(uint32_t packet_id, size_t received_packets);

  friend struct QueueSetup;

  mnl_socket* socket_ = nullptr;
  uint16_t queue_num_ = 0;
  uint32_t rcvbuf_bytes_ = 0;
  bool conntrack_info_ = false;
  uint32_t portid_ = 0;
  uint32_t last_packet_id_ = 0;
  bool seen_packet_ = false;
  std::vector<char> buffer_;  // configuration replies
  // kMaxDatagramsPerRead receive buffers, left uninitialised: a page is touched only when a
  // datagram that long arrives.
  std::unique_ptr<char[]> read_buffers_;
  std::vector<QueuedPacket> read_packets_;  // one read's packets; capacity kept
  QueueCounters counters_;
};

struct QueueOpenResult {
  QueueOpenError error = QueueOpenError::kNone;
  std::string message;  // one line: cause and fix
  std::unique_ptr<NfQueue> queue;
};

template <class OnPacket>
size_t NfQueue::ReceiveWaiting(OnPacket&& on_packet) {
  auto trampoline = [](void* context, const QueuedPacket& packet) {
    (*static_cast<std::remove_reference_t<OnPacket>*>(context))(packet);
  };
  bool would_block = false;
  return ReceiveDatagrams(trampoline, &on_packet, &would_block, /*wait=*/true);
}

}  // namespace nfq::sensor
