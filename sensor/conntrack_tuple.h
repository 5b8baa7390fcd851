// The connection-tracking tuples the kernel attaches to a queued packet (NFQA_CT, with
// NFQA_CFG_F_CONNTRACK): the connection as its first packet had it (original) and as its
// replies have it (reply). With NAT they differ from the addresses in the packet, which is
// how a reply to a masqueraded container is tied back to the container's flow.
//
// Pure and allocation-free; every length is checked (libmnl's attribute validation).
#pragma once

#include "sensor/packet.h"

struct nlattr;

namespace nfq::sensor {

struct ConntrackTuples {
  FlowKey original;  // TCP only: ports set; family of the IP attributes found
  FlowKey reply;
};

// Parses the NFQA_CT nest. False (out untouched) unless both tuples are complete, TCP,
// and of one family.
bool ParseConntrackTuples(const nlattr* ct_nest, ConntrackTuples* out);

}  // namespace nfq::sensor
