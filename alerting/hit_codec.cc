#include "alerting/hit_codec.h"

#include <cstdint>
#include <cstring>

namespace nfq::alerting {
namespace {

constexpr uint8_t kVersion = 1;

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutString(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool U64(uint64_t* v) {
    if (b_.size() < 8) return false;
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) {
      r |= static_cast<uint64_t>(static_cast<unsigned char>(b_[static_cast<size_t>(i)])) << (8 * i);
    }
    b_.remove_prefix(8);
    *v = r;
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u = 0;
    if (!U64(&u)) return false;
    std::memcpy(v, &u, sizeof u);
    return true;
  }
  bool String(std::string* s) {
    uint64_t n = 0;
    if (!U64(&n) || n > b_.size()) return false;
    s->assign(b_.substr(0, static_cast<size_t>(n)));
    b_.remove_prefix(static_cast<size_t>(n));
    return true;
  }
  bool Time(Hit::Clock::time_point* t) {
    int64_t ns = 0;
    if (!I64(&ns)) return false;
    *t = Hit::Clock::time_point(
        std::chrono::duration_cast<Hit::Clock::duration>(std::chrono::nanoseconds(ns)));
    return true;
  }
  bool Byte(uint8_t* v) {
    if (b_.empty()) return false;
    *v = static_cast<uint8_t>(b_.front());
    b_.remove_prefix(1);
    return true;
  }
  bool done() const { return b_.empty(); }

 private:
  std::string_view b_;
};

uint64_t AsU64(int64_t v) {
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof u);
  return u;
}
int64_t Nanos(Hit::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string EncodeHit(const Hit& hit) {
  std::string out;
  out.reserve(128 + hit.url.size() + hit.norm.size() + hit.cmdline.size());
  out.push_back(static_cast<char>(kVersion));
  for (const std::string* s : {&hit.url, &hit.norm, &hit.method, &hit.imds, &hit.src,
                               &hit.owner, &hit.cmdline, &hit.flags, &hit.hook, &hit.host,
                               &hit.user_agent}) {
    PutString(out, *s);
  }
  PutU64(out, AsU64(hit.uid));
  PutU64(out, AsU64(hit.gid));
  PutU64(out, AsU64(hit.pid));
  PutU64(out, hit.count);
  PutU64(out, AsU64(Nanos(hit.first)));
  PutU64(out, AsU64(Nanos(hit.last)));
  PutU64(out, hit.queue);
  return out;
}

std::optional<Hit> DecodeHit(std::string_view bytes) {
  Reader r(bytes);
  Hit h;
  uint8_t version = 0;
  if (!r.Byte(&version) || version != kVersion) return std::nullopt;
  for (std::string* s : {&h.url, &h.norm, &h.method, &h.imds, &h.src, &h.owner, &h.cmdline,
                         &h.flags, &h.hook, &h.host, &h.user_agent}) {
    if (!r.String(s)) return std::nullopt;
  }
  uint64_t queue = 0;
  if (!r.I64(&h.uid) || !r.I64(&h.gid) || !r.I64(&h.pid) || !r.U64(&h.count) ||
      !r.Time(&h.first) || !r.Time(&h.last) || !r.U64(&queue) || !r.done() || queue > 0xFFFF) {
    return std::nullopt;
  }
  h.queue = static_cast<uint16_t>(queue);
  return h;
}

}  // namespace nfq::alerting
