#include "alerting/fold.h"

#include <algorithm>

#include <fmt/format.h>

#include "alerting/hit_format.h"

namespace nfq::alerting {

Folder::Folder(std::chrono::milliseconds window, size_t max_keys)
    : window_(window), max_keys_(max_keys) {}

std::string Folder::AddressWithoutPort(const std::string& src) {
  if (!src.empty() && src.front() == '[') {
    const auto close = src.find(']');
    return close == std::string::npos ? src : src.substr(1, close - 1);
  }
  const auto colon = src.rfind(':');
  if (colon != std::string::npos && src.find(':') == colon) return src.substr(0, colon);
  return src;  // bare IPv6 or no port
}

std::string Folder::CallerIdentity(const Hit& hit) {
  std::string out;
  CallerIdentityTo(hit, &out);
  return out;
}

void Folder::CallerIdentityTo(const Hit& hit, std::string* out) {
  // Local traffic: the program, the user and the container, never the pid (300 short-lived
  // curls of one user are one caller) and never the port. Forwarded traffic has no local
  // process: the source address and the interface it came in on are the caller.
  out->clear();
  if (hit.hook == "output") {
    const fmt::format_int uid(hit.uid);
    if (!hit.exe.empty()) {
      out->append("exe=").append(hit.exe).append("|uid=").append(uid.data(), uid.size());
      out->append("|ctr=").append(hit.container);
      return;
    }
    out->append("uid=").append(uid.data(), uid.size()).append("|unattributed");
    return;
  }
  out->append("src=").append(AddressWithoutPort(hit.src)).append("|iface=").append(hit.iface);
}

std::optional<Hit> Folder::Offer(const Hit& hit, SteadyTime now) {
  if (window_.count() <= 0) return hit;
  CallerIdentityTo(hit, &caller_);
  auto it = table_.find(KeyView{caller_, hit.method, hit.norm, hit.imds});
  if (it != table_.end() && now >= it->second.closes) {
    // Closed but not yet expired: Expire would emit it; keep counts exact by letting the
    // caller see the new hit as the first of a fresh window after the old one is emitted.
    return hit;
  }
  if (it == table_.end()) {
    if (table_.size() >= max_keys_) return hit;
    Window w{now + window_, hit};
    w.pending.count = 0;
    table_.emplace(Key{caller_, hit.method, hit.norm, hit.imds}, std::move(w));
    return hit;
  }
  Hit& p = it->second.pending;
  if (p.count == 0) {
    p = hit;
  } else {
    // Every detail is the latest request's (url as sent, port, process and its parents,
    // user agent: one request's, never a mix of two); count, span and flags accumulate.
    const uint64_t count = p.count + hit.count;
    const auto first = std::min(p.first, hit.first);
    const auto last = std::max(p.last, hit.last);
    std::string flags = hit.flags.empty() || hit.flags == p.flags ? std::move(p.flags)
                                                                  : MergeFlags(p.flags, hit.flags);
    p = hit;
    p.count = count;
    p.first = first;
    p.last = last;
    p.flags = std::move(flags);
  }
  folded_ += hit.count;
  return std::nullopt;
}

std::vector<Hit> Folder::Expire(SteadyTime now) {
  std::vector<Hit> out;
  for (auto it = table_.begin(); it != table_.end();) {
    if (now >= it->second.closes) {
      if (it->second.pending.count > 0) out.push_back(std::move(it->second.pending));
      it = table_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<Hit> Folder::DrainAll() {
  std::vector<Hit> out;
  for (auto& [key, w] : table_) {
    if (w.pending.count > 0) out.push_back(std::move(w.pending));
  }
  table_.clear();
  return out;
}

std::vector<Hit> Folder::Pending() const {
  std::vector<Hit> out;
  for (const auto& [key, w] : table_) {
    if (w.pending.count > 0) out.push_back(w.pending);
  }
  return out;
}

std::optional<Folder::SteadyTime> Folder::NextDeadline() const {
  std::optional<SteadyTime> next;
  for (const auto& [key, w] : table_) {
    if (!next || w.closes < *next) next = w.closes;
  }
  return next;
}

}  // namespace nfq::alerting
