// Where the route to the metadata service leads out of, per family. The server's SYN-ACK
// comes in on that interface; one forged by a container comes in on the container's link,
// and one forged on the instance itself on lo. The daemon takes a SYN-ACK as the server's
// only when it arrived there.
//
// Thread-safety: Refresh() from one thread at a time (it does netlink I/O: never the packet
// thread); ifindex() from any thread, lock-free.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "sensor/packet.h"

namespace nfq::sensor {

// The output interface of the kernel's route to dst (rtnetlink RTM_GETROUTE), 0 when there is
// none or the lookup failed.
uint32_t LookupRouteInterface(IpFamily family, const std::array<uint8_t, 16>& dst);

class MetadataRoute {
 public:
  // Looks both routes up again (169.254.169.254, fd00:ec2::254).
  void Refresh();
  // 0 when unknown (no route).
  uint32_t ifindex(IpFamily family) const {
    return (family == IpFamily::kV4 ? v4_ : v6_).load(std::memory_order_relaxed);
  }
  // For tests: pins the interfaces.
  void Set(uint32_t v4, uint32_t v6) {
    v4_.store(v4, std::memory_order_relaxed);
    v6_.store(v6, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint32_t> v4_{0};
  std::atomic<uint32_t> v6_{0};
};

}  // namespace nfq::sensor
