#include "sensor/container_id.h"

#include <algorithm>

namespace nfq::sensor {
namespace {

constexpr size_t kIdLength = 64;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsContainerId(std::string_view s) {
  return s.size() == kIdLength && std::all_of(s.begin(), s.end(), IsLowerHex);
}

// Pod UIDs are RFC 4122 UUIDs (36 characters) for API pods and 32 hex digits (a config hash)
// for static pods; systemd slices write the dashes as underscores.
std::string PodUid(std::string_view s) {
  if (s.size() != 32 && s.size() != 36) return {};
  std::string out(s);
  for (char& c : out) {
    if (c == '_') c = '-';
    if (c != '-' && !IsLowerHex(c)) return {};
  }
  return out;
}

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (!s->starts_with(prefix)) return false;
  s->remove_prefix(prefix.size());
  return true;
}

bool ConsumeSuffix(std::string_view* s, std::string_view suffix) {
  if (!s->ends_with(suffix)) return false;
  s->remove_suffix(suffix.size());
  return true;
}

// One path component, e.g. "docker-<id>.scope". Fills what it recognises.
void ReadComponent(std::string_view component, std::string_view parent, bool below_kubepods,
                   ContainerInfo* info) {
  std::string_view s = component;
  // cgroup v1 with the systemd driver under containerd: "<pod slice>:cri-containerd:<id>".
  if (const size_t colon = s.find(":cri-containerd:"); colon != std::string_view::npos) {
    ReadComponent(s.substr(0, colon), parent, below_kubepods, info);
    const std::string_view id = s.substr(colon + std::string_view(":cri-containerd:").size());
    if (IsContainerId(id)) *info = {ContainerRuntime::kContainerd, std::string(id), info->pod_uid};
    return;
  }
  if (s.starts_with("kubepods")) {
    // kubepods-burstable-pod<uid>.slice (systemd driver)
    if (ConsumeSuffix(&s, ".slice")) {
      if (const size_t pod = s.rfind("-pod"); pod != std::string_view::npos) {
        if (std::string uid = PodUid(s.substr(pod + 4)); !uid.empty())
          info->pod_uid = std::move(uid);
      }
    }
    return;
  }
  if (below_kubepods && ConsumePrefix(&s, "pod")) {  // /kubepods/besteffort/pod<uid> (cgroupfs)
    if (std::string uid = PodUid(s); !uid.empty()) info->pod_uid = std::move(uid);
    return;
  }
  struct Scope {
    std::string_view prefix;
    ContainerRuntime runtime;
  };
  static constexpr Scope kScopes[] = {
      {"docker-", ContainerRuntime::kDocker},
      {"cri-containerd-", ContainerRuntime::kContainerd},
      {"crio-", ContainerRuntime::kCrio},
      {"libpod-", ContainerRuntime::kPodman},
  };
  for (const Scope& scope : kScopes) {
    std::string_view rest = component;
    if (!ConsumePrefix(&rest, scope.prefix)) continue;
    ConsumeSuffix(&rest, ".scope");  // podman with cgroupfs writes /libpod_parent/libpod-<id>
    if (IsContainerId(rest)) {
      info->runtime = scope.runtime;
      info->id = std::string(rest);
    }
    return;  // crio-conmon-<id>.scope, libpod-conmon-<id>.scope: not containers
  }
  if (IsContainerId(component)) {
    if (parent == "docker") {
      *info = {ContainerRuntime::kDocker, std::string(component), info->pod_uid};
    } else if (below_kubepods) {
      *info = {ContainerRuntime::kCri, std::string(component), info->pod_uid};
    } else if (parent.size() > 0 && info->id.empty()) {
      // /ecs/<task id>/<id> (Docker on ECS) and other cgroup parents Docker was given
      // (--cgroup-parent): a 64-hex leaf below a named parent is Docker's naming.
      *info = {ContainerRuntime::kDocker, std::string(component), info->pod_uid};
    }
  }
}

ContainerInfo ParsePath(std::string_view path) {
  ContainerInfo info;
  bool below_kubepods = false;
  std::string_view parent;
  while (!path.empty()) {
    const size_t slash = path.find('/');
    const std::string_view component = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (component.empty()) continue;
    ReadComponent(component, parent, below_kubepods, &info);
    if (component.starts_with("kubepods")) below_kubepods = true;
    parent = component;
  }
  return info;
}

}  // namespace

const char* ContainerRuntimeName(ContainerRuntime runtime) {
  switch (runtime) {
    case ContainerRuntime::kDocker:
      return "docker";
    case ContainerRuntime::kContainerd:
      return "containerd";
    case ContainerRuntime::kCrio:
      return "cri-o";
    case ContainerRuntime::kPodman:
      return "podman";
    case ContainerRuntime::kCri:
      return "cri";
    case ContainerRuntime::kNone:
      break;
  }
  return "";
}

ContainerInfo ParseCgroup(std::string_view text) {
  // Every line names the same container in practice; v1 hosts may leave some controllers
  // at the root (or at a systemd slice) while others show the container, so the first line
  // that names a container wins, and a pod seen on any line is kept.
  ContainerInfo best;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    // hierarchy-id:controller-list:path; the path itself may contain ':' (containerd v1).
    const size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const ContainerInfo info = ParsePath(line.substr(second + 1));
    if (best.id.empty() && !info.id.empty()) {
      best.runtime = info.runtime;
      best.id = info.id;
    }
    if (best.pod_uid.empty()) best.pod_uid = info.pod_uid;
    if (!best.id.empty() && !best.pod_uid.empty()) break;
  }
  return best;
}

void FormatContainerIdTo(const ContainerInfo& info, std::string* out) {
  out->clear();
  if (info.id.empty()) return;
  out->append(ContainerRuntimeName(info.runtime));
  out->append("://");
  out->append(info.id);
}

std::string FormatContainerId(const ContainerInfo& info) {
  std::string out;
  FormatContainerIdTo(info, &out);
  return out;
}

}  // namespace nfq::sensor
