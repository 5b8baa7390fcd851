// One alert about requests to the instance metadata service, with the contract's fields
// (spec/contract.md, "A hit"). Plain value type; safe to copy between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace nfq::alerting {

struct Hit {
  using Clock = std::chrono::system_clock;

  std::string url;      // request target as sent (may include the query string)
  std::string norm;     // resolved path used for matching
  std::string method;   // any HTTP token, as sent
  std::string imds;     // "v1" or "v2"
  std::string src;      // client "addr:port" ("[addr]:port" for IPv6)
  int64_t uid = -1;     // socket owner uid, -1 when unknown (forwarded traffic)
  int64_t gid = -1;
  int64_t pid = -1;     // -1 when unknown
  std::string owner;    // user name of uid, empty when unknown
  std::string cmdline;  // calling process, empty when unknown
  // Who else (event log; the console gets the contract's fields above).
  std::string exe;        // calling process's executable, " (deleted)" kept
  std::string ancestors;  // parent chain, nearest first: "bash(4711)<sshd(812)<systemd(1)"
  std::string container;  // "<runtime>://<id>", e.g. "docker://3f2a...", empty on the host
  std::string pod;        // Kubernetes pod UID
  std::string iface;      // input interface of forwarded traffic (the caller is src)
  uint64_t count = 1;   // requests folded into this hit
  Clock::time_point first{};
  Clock::time_point last{};
  std::string flags;    // comma-separated anomalies, e.g. "dotdot,encoded,truncated"

  // Event-log only (not sent to the console).
  uint16_t queue = 0;
  std::string hook;     // "output", "forward" or "" when unknown
  std::string host;     // Host header as sent (informational; never used for decisions)
  std::string user_agent;
};

}  // namespace nfq::alerting
