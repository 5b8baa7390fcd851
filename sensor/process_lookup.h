// From a socket inode to the process that holds it, and what an alert says about that
// process: pid, user, command line, executable, comm, up to three ancestors, container.
//
// The owner of a socket is found by scanning /proc/*/fd for "socket:[inode]", newest
// processes first (a short-lived client that just connected has one of the highest pids)
// after the processes recently found for the same uid. Listing a process's fds reads every
// link; every socket seen on the way is remembered with its holder and fd number, so the
// next lookup of one of them is a single readlink of that fd. (The worker runs behind the
// packets under load: the sockets of the connections still waiting for it are open when an
// earlier one's listing runs, and are found there.) Caches: inode -> (pid, fd), checked
// again before use, and pid -> description (keyed by start time too, so a reused pid never
// inherits another process's description).
//
// The most recently described processes also keep a handle on their /proc/<pid> directory,
// opened before the description was read. Such a handle never follows a reused pid: once
// its process has exited, every look-up through it fails. So a socket found through it
// belongs to the very process described, and Describe then answers from the cache without
// reading /proc/<pid>/stat again (under a new connection per request, one readlink instead
// of open, read and close per connection).
//
// Thread-safety: one thread at a time. Blocking file-system reads: worker threads only.
#pragma once

#include <array>
#include <cstdint>
#include <bitset>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "alerting/file_util.h"
#include "sensor/container_id.h"
#include "sensor/function_ref.h"

namespace nfq::sensor {

struct ProcessInfo {
  int32_t pid = -1;
  int64_t uid = -1;       // effective uid of the process
  std::string owner;      // user name of uid; the number when it has no name
  std::string cmdline;    // escaped and capped (EscapeCmdline)
  std::string exe;        // readlink of /proc/pid/exe, " (deleted)" kept
  std::string comm;       // escaped
  std::string ancestors;  // "bash(4711)<sshd(812)<systemd(1)", nearest first, up to 3
  ContainerInfo container;
  uint64_t start_time = 0;  // clock ticks after boot (/proc/pid/stat field 22)
  bool gone = false;        // exited before everything could be read; fields hold what was
};

// Command line bytes (NUL-separated) as one printable line: NULs become spaces (trailing
// ones dropped), control characters, backslash and bytes >= 0x7f become \xNN, and the result
// stops at cap bytes (ending in "..." when cut).
std::string EscapeCmdline(std::string_view raw, size_t cap = 512);

// Replaces the value after an IMDSv2 token header name in a raw (NUL-separated) command line
// ("curl -H 'X-aws-ec2-metadata-token: AQAE...'") with "<redacted>": token values never
// reach a hit or a log line. Case-insensitive; the -ttl-seconds header is left alone.
// Also: anything shaped like an IMDSv2 token ("AQAE" + base64), and URL userinfo.
std::string RedactCmdline(std::string raw);

// "scheme://user:password@host" -> "scheme://<redacted>@host", wherever it stands in a
// command line (an argument ends the host part at a space, quote or NUL). Request targets
// have their own rules: RedactTargetInPlace (sensor/userinfo.h).
std::string RedactUserinfo(std::string text);

class ProcessLookup {
 public:
  // proc_root: "/proc" except in tests.
  explicit ProcessLookup(std::string proc_root = "/proc", size_t cache_cap = 512);

  // The pid holding the socket, or nullopt. uid_hint (the socket's uid, -1 for none) only
  // orders the search. still_held, when given, is asked before the scan of every process:
  // false (the socket has been closed meanwhile, which no scan can find) ends the search.
  std::optional<int32_t> FindSocketOwner(uint64_t inode, int64_t uid_hint = -1,
                                         FunctionRef<bool()>* still_held = nullptr);

  // Describes pid; nullopt when it never existed as far as /proc knows. A pid that exited
  // since it was last described comes back from the cache with gone = true.
  std::optional<ProcessInfo> Describe(int32_t pid);

  struct Counters {
    uint64_t scans = 0;          // full /proc scans
    uint64_t scans_skipped = 0;  // not needed: the socket was closed before the scan
    uint64_t inode_cache_hits = 0;  // found with one readlink, where an earlier listing saw it
    uint64_t describe_cache_hits = 0;
    uint64_t listings = 0;          // fd directories listed
    uint64_t links_read = 0;        // fd links read by listings
    uint64_t links_deferred = 0;    // fds a listing left for last (no socket there before);
                                    // read only when no other fd held the socket
    uint64_t held_by_described = 0;  // owner found through a directory handle: no stat read
  };
  const Counters& counters() const { return counters_; }

 private:
  // Lists pid's fds looking for `inode`, remembering the other sockets it passes.
  bool ListedHolds(int32_t pid, uint64_t inode);
  // One readlink: does pid hold the socket at fd?
  bool HoldsAt(int32_t pid, int fd, uint64_t inode);
  std::optional<ProcessInfo> ReadProcess(int32_t pid, alerting::UniqueFd* dir) const;
  void Remember(uint64_t inode, int32_t pid, int fd);
  void RememberProcess(const ProcessInfo& info, alerting::UniqueFd dir);
  // The directory handle of a described pid, or -1.
  int DirOf(int32_t pid) const;
  // Fds below kFdBits of a described pid that held no socket at its last listing: the next
  // listing reads them last, and only when no socket before them is the one looked for.
  // A JVM holds hundreds of jar files, and a client's new socket is almost never among them.
  static constexpr int kFdBits = 1024;
  std::bitset<kFdBits>* NotSocketFdsOf(int32_t pid);
  void DropDir(int32_t pid);

  std::string root_;
  size_t cache_cap_;
  struct Holder {
    int32_t pid;
    int fd;
  };
  std::unordered_map<uint64_t, Holder> inode_holders_;
  std::list<uint64_t> inode_order_;  // oldest first
  std::unordered_map<int32_t, ProcessInfo> processes_;
  std::list<int32_t> process_order_;  // oldest first
  // Directory handles of the newest described processes (at most kDirHandles of them).
  struct DirHandle {
    alerting::UniqueFd dir;
    std::bitset<kFdBits> not_socket;
  };
  std::unordered_map<int32_t, DirHandle> dirs_;
  std::vector<int> deferred_fds_;  // ListedHolds' working space
  std::list<int32_t> dir_order_;  // oldest first
  // The pid whose socket was last found through its directory handle: alive, and the
  // process described. Cleared by Describe and by every search.
  int32_t held_by_described_ = -1;
  Counters counters_;
};

}  // namespace nfq::sensor
