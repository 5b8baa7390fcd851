// Folds identical hits inside a time window: the first of a key goes out at once, the rest
// are counted and leave as one follow-up hit (count, first, last) when the window closes.
// Key: (caller identity, method, norm, imds): an IMDSv1 request never hides in an IMDSv2
// window; see CallerIdentity. Counts add up exactly: the counts of
// everything Offer/Expire/DrainAll return sum to the counts offered.
// Not thread-safe; the owner serialises calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "alerting/hit.h"

namespace nfq::alerting {

class Folder {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  // window 0: nothing folds. max_keys bounds the table; hits of new keys beyond it are
  // passed through (never dropped).
  Folder(std::chrono::milliseconds window, size_t max_keys = 4096);

  // Returns the hit to send now, or nullopt if it was folded into a pending window.
  std::optional<Hit> Offer(const Hit& hit, SteadyTime now);
  // Follow-ups of windows that closed by `now`.
  std::vector<Hit> Expire(SteadyTime now);
  // Every pending follow-up, windows closed early (at stop).
  std::vector<Hit> DrainAll();
  // Copies of the pending follow-ups, the table unchanged (for the fold journal).
  std::vector<Hit> Pending() const;
  // When Expire next has something to do.
  std::optional<SteadyTime> NextDeadline() const;

  uint64_t folded() const { return folded_; }
  size_t size() const { return table_.size(); }

  // "10.0.0.1:3456" -> "10.0.0.1", "[fd00::1]:80" -> "fd00::1"; anything else unchanged.
  static std::string AddressWithoutPort(const std::string& src);
  // Executable, uid and container for local traffic (hook "output"); uid alone when the
  // process was not found; source address and interface for forwarded traffic. Never a pid.
  static std::string CallerIdentity(const Hit& hit);
  // The same into *out (replacing what it held; its capacity is reused).
  static void CallerIdentityTo(const Hit& hit, std::string* out);

 private:
  struct Window {
    SteadyTime closes;
    Hit pending;  // count 0 until a second hit arrives
  };
  using Key = std::tuple<std::string, std::string, std::string, std::string>;  // + imds
  // Found without copying the hit's strings into a Key: KeyLess compares either as views.
  using KeyView = std::tuple<std::string_view, std::string_view, std::string_view, std::string_view>;
  struct KeyLess {
    using is_transparent = void;
    static KeyView View(const KeyView& v) { return v; }
    static KeyView View(const Key& k) {
      return {std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k)};
    }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return View(a) < View(b);
    }
  };

  std::chrono::milliseconds window_;
  size_t max_keys_;
  std::map<Key, Window, KeyLess> table_;
  std::string caller_;  // Offer's scratch for the caller identity
  uint64_t folded_ = 0;
};

}  // namespace nfq::alerting
