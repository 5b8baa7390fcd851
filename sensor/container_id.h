// Which container (and Kubernetes pod) a process runs in, read from the text of
// /proc/<pid>/cgroup. Pure function over the text: no I/O, never throws on any bytes.
//
// Recognised (cgroup v1 "N:controllers:/path" and v2 "0::/path" lines alike):
//   Docker      /docker/<64hex>, .../docker-<64hex>.scope, /ecs/<task>/<64hex>
//   containerd  .../cri-containerd-<64hex>.scope, .../kubepods-...slice:cri-containerd:<64hex>
//   CRI-O       .../crio-<64hex>.scope
//   podman      .../libpod-<64hex>.scope, /libpod_parent/libpod-<64hex>
//   Kubernetes  pod UID from kubepods-<qos>-pod<uid_with_underscores>.slice or
//               /kubepods/<qos>/pod<uid>/; a bare <64hex> below kubepods is a container of
//               an unnamed CRI runtime (cgroupfs driver).
// Conmon / infra helper scopes (crio-conmon-, libpod-conmon-) are not containers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nfq::sensor {

enum class ContainerRuntime : uint8_t { kNone, kDocker, kContainerd, kCrio, kPodman, kCri };

// "docker", "containerd", "cri-o", "podman", "cri" (runtime not named in the path), "".
const char* ContainerRuntimeName(ContainerRuntime runtime);

struct ContainerInfo {
  ContainerRuntime runtime = ContainerRuntime::kNone;
  std::string id;       // full 64-hex container id; empty when not in a container
  std::string pod_uid;  // Kubernetes pod UID (dashed form), empty when not in a pod
  bool empty() const { return id.empty() && pod_uid.empty(); }
  bool operator==(const ContainerInfo&) const = default;
};

ContainerInfo ParseCgroup(std::string_view cgroup_text);

// "<runtime>://<id>" as Kubernetes writes containerID ("docker://3f2a...", full id), or ""
// when not in a container.
std::string FormatContainerId(const ContainerInfo& info);
// The same into *out (replacing what it held; its capacity is reused).
void FormatContainerIdTo(const ContainerInfo& info, std::string* out);

}  // namespace nfq::sensor
