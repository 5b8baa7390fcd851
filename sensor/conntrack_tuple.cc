#include "sensor/conntrack_tuple.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

namespace nfq::sensor {
namespace {

// Collects the attributes of one nest level by type; unknown or out-of-range types are
// skipped, each kept one is checked against its expected length.
template <size_t kMax>
struct Nest {
  const nlattr* attr[kMax + 1] = {};

  explicit Nest(const nlattr* nest) {
    mnl_attr_parse_nested(nest, &Nest::Collect, this);
  }
  static int Collect(const nlattr* a, void* data) {
    auto* self = static_cast<Nest*>(data);
    const size_t type = mnl_attr_get_type(a);
    if (type > kMax) return MNL_CB_OK;
    self->attr[type] = a;
    return MNL_CB_OK;
  }
  const nlattr* Get(size_t type, uint16_t length) const {
    const nlattr* a = attr[type];
    return a != nullptr && mnl_attr_get_payload_len(a) == length ? a : nullptr;
  }
  const nlattr* GetNest(size_t type) const {
    const nlattr* a = attr[type];
    return a != nullptr && mnl_attr_validate(a, MNL_TYPE_NESTED) >= 0 ? a : nullptr;
  }
};

bool ParseTuple(const nlattr* tuple_nest, FlowKey* key) {
  const Nest<CTA_TUPLE_MAX> tuple(tuple_nest);
  const nlattr* ip_nest = tuple.GetNest(CTA_TUPLE_IP);
  const nlattr* proto_nest = tuple.GetNest(CTA_TUPLE_PROTO);
  if (ip_nest == nullptr || proto_nest == nullptr) return false;

  const Nest<CTA_PROTO_MAX> proto(proto_nest);
  const nlattr* number = proto.Get(CTA_PROTO_NUM, 1);
  const nlattr* src_port = proto.Get(CTA_PROTO_SRC_PORT, 2);
  const nlattr* dst_port = proto.Get(CTA_PROTO_DST_PORT, 2);
  if (number == nullptr || mnl_attr_get_u8(number) != IPPROTO_TCP || src_port == nullptr ||
      dst_port == nullptr) {
    return false;
  }
  FlowKey out;
  const Nest<CTA_IP_MAX> ip(ip_nest);
  if (const nlattr* s4 = ip.Get(CTA_IP_V4_SRC, 4), *d4 = ip.Get(CTA_IP_V4_DST, 4); s4 && d4) {
    out.family = IpFamily::kV4;
    std::memcpy(out.src.data(), mnl_attr_get_payload(s4), 4);
    std::memcpy(out.dst.data(), mnl_attr_get_payload(d4), 4);
  } else if (const nlattr* s6 = ip.Get(CTA_IP_V6_SRC, 16), *d6 = ip.Get(CTA_IP_V6_DST, 16); s6 && d6) {
    out.family = IpFamily::kV6;
    std::memcpy(out.src.data(), mnl_attr_get_payload(s6), 16);
    std::memcpy(out.dst.data(), mnl_attr_get_payload(d6), 16);
  } else {
    return false;
  }
  out.src_port = ntohs(mnl_attr_get_u16(src_port));
  out.dst_port = ntohs(mnl_attr_get_u16(dst_port));
  *key = out;
  return true;
}

}  // namespace

bool ParseConntrackTuples(const nlattr* ct_nest, ConntrackTuples* out) {
  if (ct_nest == nullptr || mnl_attr_validate(ct_nest, MNL_TYPE_NESTED) < 0) return false;
  const Nest<CTA_MAX> ct(ct_nest);
  const nlattr* original = ct.GetNest(CTA_TUPLE_ORIG);
  const nlattr* reply = ct.GetNest(CTA_TUPLE_REPLY);
  ConntrackTuples parsed;
  if (original == nullptr || reply == nullptr || !ParseTuple(original, &parsed.original) ||
      !ParseTuple(reply, &parsed.reply) || parsed.original.family != parsed.reply.family) {
    return false;
  }
  *out = parsed;
  return true;
}

}  // namespace nfq::sensor
