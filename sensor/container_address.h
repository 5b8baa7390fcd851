// Which container a forwarded packet came from, by its source address, as the container
// runtimes on this host record it in their state files (no daemon API calls):
//   CNI host-local IPAM (containerd, CRI-O, Kubernetes, podman with CNI):
//       <root>/var/lib/cni/networks/<network>/<ip>   first line: the container id
//   Docker: <root>/var/lib/docker/containers/<id>/config.v2.json
//       NetworkSettings.Networks.<name>.IPAddress / GlobalIPv6Address
// The files are read at most every `refresh` (and only when an address is asked for), into a
// table of at most `max_entries` addresses. Off the packet path: the alert thread asks.
//
// Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace nfq::sensor {

class ContainerAddressMap {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ContainerAddressMap(std::string root = "/",
                               Clock::duration refresh = std::chrono::seconds(10),
                               size_t max_entries = 65536);

  // "<runtime>://<id>" for the container holding address (IPv4 or IPv6 text), or "".
  std::string Find(const std::string& address, Clock::time_point now = Clock::now());

  size_t size() const { return by_address_.size(); }

 private:
  void Reload();
  void ReadCni();
  void ReadDocker();
  void Add(const std::string& address, std::string container);

  std::string root_;
  Clock::duration refresh_;
  size_t max_entries_;
  Clock::time_point loaded_at_{};
  bool loaded_ = false;
  std::unordered_map<std::string, std::string> by_address_;
};

}  // namespace nfq::sensor
