#include "sensor/container_id.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nfq::sensor {
namespace {

const std::string kDocker = "3f2a9c1e5b7d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";
const std::string kCri = "8b1f0e2d3c4a5b6978695a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d";
const std::string kPod = "d7c4e0b2-5f1a-4c3e-9b8d-2a6f0e1c7b35";

std::string Fixture(const std::string& name) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "fixtures" / "cgroup" / name;
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Case {
  const char* fixture;
  ContainerRuntime runtime;
  std::string id;
  std::string pod;
};

// Short names in test listings (ctest shows gtest's value print otherwise: 80 raw bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.fixture; }

class CgroupFixture : public ::testing::TestWithParam<Case> {};

TEST_P(CgroupFixture, Parses) {
  const Case& c = GetParam();
  const ContainerInfo info = ParseCgroup(Fixture(c.fixture));
  EXPECT_EQ(info.runtime, c.runtime) << ContainerRuntimeName(info.runtime);
  EXPECT_EQ(info.id, c.id);
  EXPECT_EQ(info.pod_uid, c.pod);
}

INSTANTIATE_TEST_SUITE_P(
    RealWorld, CgroupFixture,
    ::testing::Values(
        Case{"docker_v1.txt", ContainerRuntime::kDocker, kDocker, ""},
        Case{"docker_v2_systemd.txt", ContainerRuntime::kDocker, kDocker, ""},
        // With a private cgroup namespace the container sees itself at the root.
        Case{"docker_v2_private_ns.txt", ContainerRuntime::kNone, "", ""},
        Case{"containerd_k8s_v2_systemd.txt", ContainerRuntime::kContainerd, kCri, kPod},
        Case{"containerd_k8s_v1_systemd.txt", ContainerRuntime::kContainerd, kCri, kPod},
        Case{"k8s_v1_cgroupfs.txt", ContainerRuntime::kCri, kCri, kPod},
        Case{"k8s_v2_cgroupfs_guaranteed.txt", ContainerRuntime::kCri, kCri, kPod},
        Case{"crio_k8s_v2.txt", ContainerRuntime::kCrio, kCri, kPod},
        Case{"crio_conmon_v2.txt", ContainerRuntime::kNone, "", kPod},
        Case{"podman_v2_root.txt", ContainerRuntime::kPodman, kCri, ""},
        Case{"podman_v2_rootless.txt", ContainerRuntime::kPodman, kCri, ""},
        Case{"podman_conmon_v2.txt", ContainerRuntime::kNone, "", ""},
        Case{"podman_v1_cgroupfs.txt", ContainerRuntime::kPodman, kCri, ""},
        Case{"k8s_static_pod_v2.txt", ContainerRuntime::kContainerd, kCri,
             "5d2b8d0c6f3f1e9a7b7c1a1d3b2a4c5e"},
        Case{"ecs_v2.txt", ContainerRuntime::kDocker, kDocker, ""},
        Case{"host_session_v2.txt", ContainerRuntime::kNone, "", ""},
        Case{"host_v1.txt", ContainerRuntime::kNone, "", ""},
        Case{"garbage_short_id.txt", ContainerRuntime::kNone, "", ""}),
    [](const ::testing::TestParamInfo<Case>& param_info) {
      std::string name = param_info.param.fixture;
      name = name.substr(0, name.find('.'));
      return name;
    });

TEST(ContainerId, FormatsLikeKubernetes) {
  ContainerInfo info{ContainerRuntime::kDocker, kDocker, ""};
  EXPECT_EQ(FormatContainerId(info), "docker://" + kDocker);
  EXPECT_EQ(FormatContainerId(ContainerInfo{}), "");
}

TEST(ContainerId, HostileInputHasADefinedOutcome) {
  for (const char* text :
       {"", ":", "::", "0::", "\n\n\n", "0::/docker/", "0::/docker/XYZ", "0::/kubepods/pod/",
        "0::/kubepods-pod.slice", "no colons here",
        "0::/a:cri-containerd:", "0::/kubepods/podZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ/x"}) {
    EXPECT_TRUE(ParseCgroup(text).empty()) << text;
  }
  // Upper-case hex is not what any runtime writes.
  std::string upper = kDocker;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(ParseCgroup("0::/docker/" + upper).empty());
  // No trailing newline, CRLF-free single line.
  EXPECT_EQ(ParseCgroup("0::/docker/" + kDocker).id, kDocker);
}

}  // namespace
}  // namespace nfq::sensor
