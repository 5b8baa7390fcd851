#include "sensor/socket_lookup.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "alerting/file_util.h"

namespace nfq::sensor {
namespace {

// A connected loopback pair; the client's end is what an outbound flow's first packet shows.
struct LoopbackPair {
  alerting::UniqueFd listener, client, server;
  SocketQuery query;  // the client's socket, as SocketQuery::ForOutbound would build it

  bool Open(IpFamily family) {
    const int af = family == IpFamily::kV4 ? AF_INET : AF_INET6;
    listener = alerting::UniqueFd(::socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0));
    client = alerting::UniqueFd(::socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener || !client) return false;
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == IpFamily::kV4) {
      auto* in = reinterpret_cast<sockaddr_in*>(&addr);
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(sockaddr_in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_loopback;
      len = sizeof(sockaddr_in6);
    }
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if (::bind(listener.get(), sa, len) != 0 || ::listen(listener.get(), 1) != 0) return false;
    if (::getsockname(listener.get(), sa, &len) != 0) return false;
    if (::connect(client.get(), sa, len) != 0) return false;
    server = alerting::UniqueFd(::accept(listener.get(), nullptr, nullptr));
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    ::getsockname(client.get(), reinterpret_cast<sockaddr*>(&local), &local_len);
    query.family = family;
    if (family == IpFamily::kV4) {
      const auto* l = reinterpret_cast<sockaddr_in*>(&local);
      const auto* r = reinterpret_cast<sockaddr_in*>(&addr);
      std::memcpy(query.local.data(), &l->sin_addr, 4);
      std::memcpy(query.remote.data(), &r->sin_addr, 4);
      query.local_port = ntohs(l->sin_port);
      query.remote_port = ntohs(r->sin_port);
    } else {
      const auto* l = reinterpret_cast<sockaddr_in6*>(&local);
      const auto* r = reinterpret_cast<sockaddr_in6*>(&addr);
      std::memcpy(query.local.data(), &l->sin6_addr, 16);
      std::memcpy(query.remote.data(), &r->sin6_addr, 16);
      query.local_port = ntohs(l->sin6_port);
      query.remote_port = ntohs(r->sin6_port);
    }
    return static_cast<bool>(server);
  }

  uint64_t ClientInode() const {
    struct stat st {};
    ::fstat(client.get(), &st);
    return st.st_ino;
  }
};

class SocketLookupTest : public ::testing::TestWithParam<IpFamily> {};

TEST_P(SocketLookupTest, FindsOwnClientSocket) {
  LoopbackPair pair;
  if (!pair.Open(GetParam()))
    GTEST_SKIP() << "no loopback for this family: " << std::strerror(errno);
  SocketLookup lookup;
  if (!lookup.uses_sock_diag()) GTEST_SKIP() << "sock_diag unavailable (reading /proc/net/tcp)";
  SocketInfo info;
  ASSERT_EQ(lookup.Find(pair.query, &info), SocketLookupStatus::kFound);
  EXPECT_EQ(info.inode, pair.ClientInode());
  EXPECT_EQ(info.uid, ::geteuid());
  // Many in a row on one netlink socket: sequence numbers keep answers apart.
  for (int i = 0; i < 50; ++i) {
    SocketInfo again;
    ASSERT_EQ(lookup.Find(pair.query, &again), SocketLookupStatus::kFound);
    ASSERT_EQ(again.inode, info.inode);
  }
}

TEST_P(SocketLookupTest, DumpFindsTheLocalEndWhenTheRemoteWasRewritten) {
  LoopbackPair pair;
  if (!pair.Open(GetParam())) GTEST_SKIP() << "no loopback for this family";
  SocketLookup lookup;
  if (!lookup.uses_sock_diag()) GTEST_SKIP() << "sock_diag unavailable";
  SocketQuery natted = pair.query;
  natted.remote_port = static_cast<uint16_t>(natted.remote_port + 1);  // as if DNATed
  SocketInfo info;
  ASSERT_EQ(lookup.Find(natted, &info), SocketLookupStatus::kFound);
  EXPECT_EQ(info.inode, pair.ClientInode());
}

TEST_P(SocketLookupTest, UnknownSocketIsNotFound) {
  LoopbackPair pair;
  if (!pair.Open(GetParam())) GTEST_SKIP() << "no loopback for this family";
  SocketLookup lookup;
  SocketQuery missing = pair.query;
  missing.local_port = 1;  // nobody connects from port 1
  SocketInfo info;
  EXPECT_EQ(lookup.Find(missing, &info), SocketLookupStatus::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Families, SocketLookupTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const auto& param_info) {
                           return param_info.param == IpFamily::kV4 ? "v4" : "v6";
                         });

}  // namespace
}  // namespace nfq::sensor
