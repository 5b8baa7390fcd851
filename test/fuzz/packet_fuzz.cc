// ParsePacket on arbitrary bytes: never reads outside the buffer, and a parsed segment's
// payload always lies inside it.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sensor/packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nfq::sensor::PacketError;
  const std::span<const uint8_t> packet(data, size);
  const auto result = nfq::sensor::ParsePacket(packet);
  (void)nfq::sensor::PacketErrorName(result.error);
  if (result.error != PacketError::kNone) return 0;

  const auto& segment = result.segment;
  const auto& payload = segment.payload;
  if (!payload.empty() &&
      (payload.data() < data || payload.data() + payload.size() > data + size)) {
    std::abort();
  }
  const auto& key = segment.key;
  if (key.family != nfq::sensor::IpFamily::kV4 && key.family != nfq::sensor::IpFamily::kV6) {
    std::abort();
  }
  (void)nfq::sensor::FlowKeyHash{}(key);
  const std::string src = nfq::sensor::FormatEndpoint(key.family, key.src, key.src_port);
  const std::string dst = nfq::sensor::FormatEndpoint(key.family, key.dst, key.dst_port);
  if (src.empty() || dst.empty() || src == "?" || dst == "?") std::abort();
  return 0;
}
