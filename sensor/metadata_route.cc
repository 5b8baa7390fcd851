#include "sensor/metadata_route.h"

#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>
#include <vector>

#include <libmnl/libmnl.h>

namespace nfq::sensor {
namespace {

constexpr std::array<uint8_t, 16> kMetadataV4 = {169, 254, 169, 254};
constexpr std::array<uint8_t, 16> kMetadataV6 = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0,
                                                 0,    0,    0,    0,    0, 0, 0x02, 0x54};

// Closes the socket on every path out.
struct RouteSocket {
  mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  ~RouteSocket() {
    if (socket != nullptr) mnl_socket_close(socket);
  }
};

int FindOif(const nlattr* attr, void* data) {
  if (mnl_attr_get_type(attr) == RTA_OIF && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
    *static_cast<uint32_t*>(data) = mnl_attr_get_u32(attr);
  }
  return MNL_CB_OK;
}

int OnRoute(const nlmsghdr* nlh, void* data) {
  if (nlh->nlmsg_type != RTM_NEWROUTE) return MNL_CB_OK;
  mnl_attr_parse(nlh, sizeof(rtmsg), FindOif, data);
  return MNL_CB_OK;
}

}  // namespace

uint32_t LookupRouteInterface(IpFamily family, const std::array<uint8_t, 16>& dst) {
  RouteSocket rt;
  if (rt.socket == nullptr || mnl_socket_bind(rt.socket, 0, MNL_SOCKET_AUTOPID) < 0) return 0;
  const timeval timeout{1, 0};  // the kernel answers at once; never hang the caller
  setsockopt(mnl_socket_get_fd(rt.socket), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::vector<char> buffer(8192);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = 1;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  const bool v4 = family == IpFamily::kV4;
  rtm->rtm_family = v4 ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = v4 ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, v4 ? 4 : 16, dst.data());
  if (mnl_socket_sendto(rt.socket, nlh, nlh->nlmsg_len) < 0) return 0;
  const ssize_t n = mnl_socket_recvfrom(rt.socket, buffer.data(), buffer.size());
  if (n <= 0) return 0;
  uint32_t oif = 0;
  if (mnl_cb_run(buffer.data(), static_cast<size_t>(n), 1, mnl_socket_get_portid(rt.socket), OnRoute,
                 &oif) < 0) {
    return 0;
  }
  return oif;
}

void MetadataRoute::Refresh() {
  v4_.store(LookupRouteInterface(IpFamily::kV4, kMetadataV4), std::memory_order_relaxed);
  v6_.store(LookupRouteInterface(IpFamily::kV6, kMetadataV6), std::memory_order_relaxed);
}

}  // namespace nfq::sensor
