#include "sensor/conntrack_tuple.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

namespace nfq::sensor {
namespace {

struct Endpoint {
  std::vector<uint8_t> src, dst;
  uint16_t sport, dport;
  uint8_t proto = IPPROTO_TCP;
};

void PutTuple(nlmsghdr* nlh, uint16_t type, const Endpoint& e) {
  nlattr* tuple = mnl_attr_nest_start(nlh, type);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  const bool v4 = e.src.size() == 4;
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, e.src.size(), e.src.data());
  mnl_attr_put(nlh, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, e.dst.size(), e.dst.data());
  mnl_attr_nest_end(nlh, ip);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, e.proto);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(e.sport));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(e.dport));
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, tuple);
}

// An NFQA_CT-like nest (type 11) holding both tuples; returns the bytes of the nest.
std::vector<uint8_t> CtNest(const Endpoint& original, const Endpoint& reply) {
  std::vector<char> buffer(4096);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buffer.data());
  nlattr* ct = mnl_attr_nest_start(nlh, 11);
  PutTuple(nlh, CTA_TUPLE_ORIG, original);
  PutTuple(nlh, CTA_TUPLE_REPLY, reply);
  mnl_attr_nest_end(nlh, ct);
  const auto* begin = reinterpret_cast<const uint8_t*>(ct);
  return {begin, begin + ct->nla_len};
}

const Endpoint kContainer{{10, 200, 2, 2}, {169, 254, 169, 254}, 40000, 80};
const Endpoint kMasqueraded{{169, 254, 169, 254}, {10, 200, 1, 1}, 80, 61000};

TEST(ConntrackTuples, ReadsBothTuplesOfAMasqueradedConnection) {
  const std::vector<uint8_t> nest = CtNest(kContainer, kMasqueraded);
  ConntrackTuples tuples;
  ASSERT_TRUE(ParseConntrackTuples(reinterpret_cast<const nlattr*>(nest.data()), &tuples));
  EXPECT_EQ(tuples.original.family, IpFamily::kV4);
  EXPECT_EQ(FormatEndpoint(IpFamily::kV4, tuples.original.src, tuples.original.src_port), "10.200.2.2:40000");
  EXPECT_EQ(FormatEndpoint(IpFamily::kV4, tuples.original.dst, tuples.original.dst_port), "169.254.169.254:80");
  EXPECT_EQ(FormatEndpoint(IpFamily::kV4, tuples.reply.dst, tuples.reply.dst_port), "10.200.1.1:61000");
}

TEST(ConntrackTuples, ReadsIpv6) {
  Endpoint original{std::vector<uint8_t>(16, 0), std::vector<uint8_t>(16, 0), 40000, 80};
  original.src[0] = 0xfd;
  original.dst = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  Endpoint reply{original.dst, original.src, 80, 40000};
  const std::vector<uint8_t> nest = CtNest(original, reply);
  ConntrackTuples tuples;
  ASSERT_TRUE(ParseConntrackTuples(reinterpret_cast<const nlattr*>(nest.data()), &tuples));
  EXPECT_EQ(FormatEndpoint(IpFamily::kV6, tuples.original.dst, tuples.original.dst_port), "[fd00:ec2::254]:80");
}

TEST(ConntrackTuples, RefusesOtherProtocolsMixedFamiliesAndNothing) {
  ConntrackTuples tuples;
  EXPECT_FALSE(ParseConntrackTuples(nullptr, &tuples));
  Endpoint udp = kContainer;
  udp.proto = IPPROTO_UDP;
  std::vector<uint8_t> nest = CtNest(udp, kMasqueraded);
  EXPECT_FALSE(ParseConntrackTuples(reinterpret_cast<const nlattr*>(nest.data()), &tuples));
  Endpoint v6 = kMasqueraded;
  v6.src.assign(16, 1);
  v6.dst.assign(16, 2);
  nest = CtNest(kContainer, v6);
  EXPECT_FALSE(ParseConntrackTuples(reinterpret_cast<const nlattr*>(nest.data()), &tuples));
}

// Every truncation of the nest (its length field cut down to match): never a read past it,
// and no success until both tuples are whole.
TEST(ConntrackTuples, EveryTruncationIsRefusedOrWhole) {
  const std::vector<uint8_t> whole = CtNest(kContainer, kMasqueraded);
  for (size_t length = 4; length < whole.size(); ++length) {
    std::vector<uint8_t> cut(whole.begin(), whole.begin() + static_cast<long>(length));
    auto* attr = reinterpret_cast<nlattr*>(cut.data());
    attr->nla_len = static_cast<uint16_t>(length);
    ConntrackTuples tuples;
    EXPECT_FALSE(ParseConntrackTuples(attr, &tuples)) << length;
  }
}

}  // namespace
}  // namespace nfq::sensor
