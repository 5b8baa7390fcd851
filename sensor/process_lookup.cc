#include "sensor/process_lookup.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <array>
#include <cerrno>
#include <charconv>
#include <utility>
#include <vector>

#include "alerting/file_util.h"

namespace nfq::sensor {
namespace {

constexpr size_t kMaxAncestors = 3;
constexpr size_t kCmdlineCap = 512;
constexpr size_t kReadCap = 16 * 1024;  // cgroup files of nested containers stay far below
// Directory handles kept open: the processes that open connections most often are the
// newest described; 64 descriptors stay far below any open-file limit.
constexpr size_t kDirHandles = 64;

// Reads up to cap bytes of a (proc) file, relative to dir (AT_FDCWD: path as it is);
// nullopt when it cannot be opened or read.
std::optional<std::string> ReadSmallFile(const std::string& path, size_t cap = kReadCap,
                                         int dir = AT_FDCWD) {
  alerting::UniqueFd fd(::openat(dir, path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  std::array<char, 4096> chunk;
  while (out.size() < cap) {
    const ssize_t n = ::read(fd.get(), chunk.data(), std::min(chunk.size(), cap - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    out.append(chunk.data(), static_cast<size_t>(n));
  }
  return out;
}

std::optional<std::string> ReadLink(const std::string& path, int dir = AT_FDCWD) {
  std::array<char, 4096> buffer;
  const ssize_t n = ::readlinkat(dir, path.c_str(), buffer.data(), buffer.size());
  if (n < 0) return std::nullopt;
  return std::string(buffer.data(), static_cast<size_t>(n));
}

template <class Int>
std::optional<Int> ParseInt(std::string_view s) {
  Int value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

struct Stat {
  std::string comm;
  char state = '?';
  int32_t ppid = 0;
  uint64_t start_time = 0;
};

// "pid (comm) state ppid ..." where comm may hold spaces and parentheses.
std::optional<Stat> ParseStat(std::string_view text) {
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  Stat stat;
  stat.comm = EscapeCmdline(text.substr(open + 1, close - open - 1), 64);
  std::string_view rest = text.substr(close + 1);
  // Fields from 3 (state) on, separated by single spaces.
  std::array<std::string_view, 20> fields;
  size_t count = 0;
  while (!rest.empty() && count < fields.size()) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const size_t space = rest.find(' ');
    fields[count++] = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space);
  }
  if (count < 20) return std::nullopt;  // field 22 (starttime) is fields[19]
  if (!fields[0].empty()) stat.state = fields[0].front();
  const auto ppid = ParseInt<int32_t>(fields[1]);
  const auto start = ParseInt<uint64_t>(fields[19]);
  if (!ppid || !start) return std::nullopt;
  stat.ppid = *ppid;
  stat.start_time = *start;
  return stat;
}

// Effective uid from "Uid:\treal\teffective\tsaved\tfs".
int64_t ParseStatusUid(std::string_view status) {
  const size_t at = status.find("\nUid:");
  if (at == std::string_view::npos) return -1;
  std::string_view line = status.substr(at + 5, status.find('\n', at + 5) - (at + 5));
  int field = 0;
  while (!line.empty()) {
    while (!line.empty() && (line.front() == '\t' || line.front() == ' ')) line.remove_prefix(1);
    const size_t end = line.find_first_of("\t ");
    const std::string_view value = line.substr(0, end);
    if (field++ == 1) {
      const auto uid = ParseInt<int64_t>(value);
      return uid ? *uid : -1;
    }
    line = end == std::string_view::npos ? std::string_view{} : line.substr(end);
  }
  return -1;
}

std::string UserName(int64_t uid) {
  if (uid < 0) return {};
  passwd entry{};
  passwd* found = nullptr;
  std::array<char, 4096> buffer;
  if (getpwuid_r(static_cast<uid_t>(uid), &entry, buffer.data(), buffer.size(), &found) == 0 &&
      found != nullptr && found->pw_name != nullptr) {
    return found->pw_name;
  }
  return std::to_string(uid);
}

}  // namespace

namespace {

bool IsTokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '=' || c == '_' || c == '-';
}

// The value after "X-aws-ec2-metadata-token" in any quoting: "-H 'name: v'", "name=v",
// "{'name': 'v'}", "@{'name' = 'v'}".
void RedactHeaderValues(std::string& raw) {
  static constexpr std::string_view kHeader = "x-aws-ec2-metadata-token";
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  auto filler = [](char c) { return c == ' ' || c == '\t' || c == '\0' || c == '\'' || c == '"'; };
  for (size_t at = 0; at + kHeader.size() <= raw.size(); ++at) {
    size_t i = 0;
    while (i < kHeader.size() && lower(raw[at + i]) == kHeader[i]) ++i;
    if (i != kHeader.size()) continue;
    size_t pos = at + kHeader.size();
    if (pos < raw.size() && raw[pos] == '-') continue;  // ...-ttl-seconds: not a secret
    while (pos < raw.size() && filler(raw[pos])) ++pos;
    if (pos >= raw.size() || (raw[pos] != ':' && raw[pos] != '=')) continue;
    ++pos;
    while (pos < raw.size() && filler(raw[pos])) ++pos;
    size_t end = pos;
    while (end < raw.size() && !filler(raw[end]) && raw[end] != '}' && raw[end] != ',') ++end;
    if (end == pos) continue;
    raw.replace(pos, end - pos, "<redacted>");
    at = pos;
  }
}

// IMDSv2 tokens look like "AQAE" followed by base64: redact them wherever they stand
// ("--token AQAE...", environment dumps, scripts).
void RedactTokenShapes(std::string& raw) {
  static constexpr std::string_view kPrefix = "AQAE";
  static constexpr size_t kMinLength = 24;
  for (size_t at = raw.find(kPrefix); at != std::string::npos; at = raw.find(kPrefix, at + 1)) {
    size_t end = at;
    while (end < raw.size() && IsTokenChar(raw[end])) ++end;
    const bool word_start = at == 0 || !std::isalnum(static_cast<unsigned char>(raw[at - 1]));
    if (end - at >= kMinLength && word_start) {
      raw.replace(at, end - at, "<redacted>");
    }
  }
}

}  // namespace

std::string RedactUserinfo(std::string text) {
  for (size_t at = text.find("://"); at != std::string::npos; at = text.find("://", at + 3)) {
    const size_t start = at + 3;
    // The NUL that separates arguments ends the host part too: a literal would stop at it.
    static constexpr std::string_view kHostEnd{"/?# \t\0'\"", 8};
    const size_t stop = text.find_first_of(kHostEnd, start);
    const size_t amp = text.rfind('@', stop == std::string::npos ? text.size() : stop);
    if (amp == std::string::npos || amp < start) continue;
    text.replace(start, amp - start, "<redacted>");
  }
  return text;
}

std::string RedactCmdline(std::string raw) {
  RedactHeaderValues(raw);
  RedactTokenShapes(raw);
  return RedactUserinfo(std::move(raw));
}

std::string EscapeCmdline(std::string_view raw, size_t cap) {
  while (!raw.empty() && raw.back() == '\0') raw.remove_suffix(1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(raw.size(), cap));
  const size_t room_for_dots = cap >= 3 ? cap - 3 : 0;
  size_t cut_at = 0;  // last piece boundary that leaves room for "..."
  for (const char ch : raw) {
    if (out.size() <= room_for_dots) cut_at = out.size();
    const auto c = static_cast<unsigned char>(ch);
    char piece[4];
    size_t len = 1;
    if (c == 0) {
      piece[0] = ' ';
    } else if (c < 0x20 || c >= 0x7f || c == '\\') {
      piece[0] = '\\';
      piece[1] = 'x';
      piece[2] = kHex[c >> 4];
      piece[3] = kHex[c & 0xf];
      len = 4;
    } else {
      piece[0] = static_cast<char>(c);
    }
    if (out.size() + len > cap) {
      out.resize(cut_at);
      out.append(std::string_view("...").substr(0, cap - out.size()));
      return out;
    }
    out.append(piece, len);
  }
  return out;
}

ProcessLookup::ProcessLookup(std::string proc_root, size_t cache_cap)
    : root_(std::move(proc_root)), cache_cap_(std::max<size_t>(cache_cap, 1)) {}

namespace {

// "socket:[12345]" -> 12345.
std::optional<uint64_t> SocketInode(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (!link.starts_with(kPrefix) || !link.ends_with(']')) return std::nullopt;
  return ParseInt<uint64_t>(link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1));
}

std::optional<uint64_t> SocketInodeAt(int dir_fd, const char* name) {
  std::array<char, 64> target;
  const ssize_t n = ::readlinkat(dir_fd, name, target.data(), target.size());
  if (n <= 0) return std::nullopt;
  return SocketInode(std::string_view(target.data(), static_cast<size_t>(n)));
}

}  // namespace

int ProcessLookup::DirOf(int32_t pid) const {
  const auto it = dirs_.find(pid);
  return it == dirs_.end() ? -1 : it->second.dir.get();
}

std::bitset<ProcessLookup::kFdBits>* ProcessLookup::NotSocketFdsOf(int32_t pid) {
  const auto it = dirs_.find(pid);
  return it == dirs_.end() ? nullptr : &it->second.not_socket;
}

bool ProcessLookup::HoldsAt(int32_t pid, int fd, uint64_t inode) {
  const std::string name = "fd/" + std::to_string(fd);
  if (const int dir = DirOf(pid); dir >= 0) {
    // Fails once the described process has exited, whoever has its pid now.
    if (SocketInodeAt(dir, name.c_str()) != inode) return false;
    held_by_described_ = pid;
    return true;
  }
  const std::string path = root_ + "/" + std::to_string(pid) + "/" + name;
  return SocketInodeAt(AT_FDCWD, path.c_str()) == inode;
}

void ProcessLookup::DropDir(int32_t pid) {
  if (dirs_.erase(pid) != 0) dir_order_.remove(pid);
}

bool ProcessLookup::ListedHolds(int32_t pid, uint64_t inode) {
  int dir = DirOf(pid);
  alerting::UniqueFd fds;
  if (dir >= 0) {
    fds.reset(::openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fds) {
      // The described process has exited. Its pid may belong to another process by now,
      // which only the path finds: the handle goes.
      DropDir(pid);
      dir = -1;
    }
  }
  if (!fds) {
    const std::string path = root_ + "/" + std::to_string(pid) + "/fd";
    fds.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  }
  if (!fds) return false;
  DIR* entries = ::fdopendir(fds.get());
  if (entries == nullptr) return false;
  fds.release();  // closedir closes it
  ++counters_.listings;
  // Past the match, the listing goes on to remember other sockets, within bounds: a
  // process with a hundred thousand fds is not read to its end for sockets it may never use.
  const size_t remember_cap = std::max<size_t>(cache_cap_ / 4, 1);
  constexpr size_t kLinksPastMatch = 256;
  size_t remembered = 0;
  size_t past_match = 0;
  bool found = false;
  // Only with the handle of a described process: the bits are that process's, not those of
  // whoever has its pid by now. Deferred, never skipped: a bit is a guess about order only.
  std::bitset<kFdBits>* not_socket = dir >= 0 ? NotSocketFdsOf(pid) : nullptr;
  deferred_fds_.clear();
  auto look = [&](int fd, const char* name) {
    std::array<char, 64> target;
    ++counters_.links_read;
    const ssize_t n = ::readlinkat(::dirfd(entries), name, target.data(), target.size());
    uint64_t socket_inode = 0;
    bool is_socket = false;
    if (n > 0) {
      if (const auto parsed = SocketInode(std::string_view(target.data(), static_cast<size_t>(n)))) {
        socket_inode = *parsed;
        is_socket = true;
      }
    }
    if (not_socket != nullptr && fd < kFdBits) not_socket->set(static_cast<size_t>(fd), n > 0 && !is_socket);
    if (!is_socket) return;
    if (socket_inode == inode) found = true;
    if (socket_inode == inode || remembered < remember_cap) {
      Remember(socket_inode, pid, fd);
      ++remembered;
    }
  };
  while (const dirent* entry = ::readdir(entries)) {
    if (entry->d_name[0] == '.') continue;
    if (found && (++past_match > kLinksPastMatch || remembered >= remember_cap)) break;
    const auto fd = ParseInt<int>(entry->d_name);
    if (!fd || *fd < 0) continue;
    if (not_socket != nullptr && *fd < kFdBits && not_socket->test(static_cast<size_t>(*fd))) {
      if (!found) deferred_fds_.push_back(*fd);
      ++counters_.links_deferred;
      continue;
    }
    look(*fd, entry->d_name);
  }
  for (size_t i = 0; i < deferred_fds_.size() && !found; ++i) {
    const std::string name = std::to_string(deferred_fds_[i]);
    look(deferred_fds_[i], name.c_str());
  }
  ::closedir(entries);
  if (found && dir >= 0) held_by_described_ = pid;
  return found;
}

std::optional<int32_t> ProcessLookup::FindSocketOwner(uint64_t inode, int64_t uid_hint,
                                                      FunctionRef<bool()>* still_held) {
  held_by_described_ = -1;
  if (auto cached = inode_holders_.find(inode); cached != inode_holders_.end()) {
    const Holder holder = cached->second;
    if (HoldsAt(holder.pid, holder.fd, inode)) {
      ++counters_.inode_cache_hits;
      return holder.pid;
    }
    // Moved to another fd (dup2) or another process (passed over a unix socket): look again.
    if (ListedHolds(holder.pid, inode)) return holder.pid;
  }
  // Processes recently found for this uid first: a keep-alive client opening one more
  // connection, a cron job's next run under a new pid is found by the scan below.
  if (uid_hint >= 0) {
    for (auto it = process_order_.rbegin(); it != process_order_.rend(); ++it) {
      const auto known = processes_.find(*it);
      if (known == processes_.end() || known->second.uid != uid_hint || known->second.gone)
        continue;
      if (ListedHolds(*it, inode)) return *it;
    }
  }
  // A scan reads every process's fds: thousands of readlinks. Under a new connection per
  // request, most sockets the cheap looks above miss have just been closed.
  if (still_held != nullptr && !(*still_held)()) {
    ++counters_.scans_skipped;
    return std::nullopt;
  }
  ++counters_.scans;
  std::vector<int32_t> pids;
  if (DIR* proc = ::opendir(root_.c_str())) {
    while (const dirent* entry = ::readdir(proc)) {
      if (auto pid = ParseInt<int32_t>(entry->d_name); pid && *pid > 0) pids.push_back(*pid);
    }
    ::closedir(proc);
  }
  // Newest first. (Ordering by owner too would cost a stat per process before the first
  // look; against a client that lives a few milliseconds, the first look matters most.)
  std::sort(pids.begin(), pids.end(), std::greater<>());
  for (const int32_t pid : pids) {
    if (ListedHolds(pid, inode)) return pid;
  }
  return std::nullopt;
}

std::optional<ProcessInfo> ProcessLookup::Describe(int32_t pid) {
  const bool held = std::exchange(held_by_described_, -1) == pid;
  const auto cached = processes_.find(pid);
  if (held && cached != processes_.end() && !cached->second.gone) {
    // Its socket was just read through the handle opened before this description.
    ++counters_.describe_cache_hits;
    ++counters_.held_by_described;
    return cached->second;
  }
  const std::string base = root_ + "/" + std::to_string(pid);
  const auto stat_text = ReadSmallFile(base + "/stat");
  const std::optional<Stat> stat = stat_text ? ParseStat(*stat_text) : std::nullopt;
  if (cached != processes_.end()) {
    if (!stat || stat->state == 'Z') {
      cached->second.gone = true;
      DropDir(pid);
      ++counters_.describe_cache_hits;
      return cached->second;
    }
    if (stat->start_time == cached->second.start_time) {
      ++counters_.describe_cache_hits;
      return cached->second;
    }
  }
  alerting::UniqueFd dir;
  auto info = ReadProcess(pid, &dir);
  if (!info) return std::nullopt;
  RememberProcess(*info, std::move(dir));
  return info;
}

std::optional<ProcessInfo> ProcessLookup::ReadProcess(int32_t pid, alerting::UniqueFd* dir) const {
  // The handle first: everything below is read through it, so it and the description are
  // of the same process (or the reads fail).
  *dir = alerting::UniqueFd(
      ::open((root_ + "/" + std::to_string(pid)).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!*dir) return std::nullopt;
  const int at = dir->get();
  const auto stat_text = ReadSmallFile("stat", kReadCap, at);
  const std::optional<Stat> stat = stat_text ? ParseStat(*stat_text) : std::nullopt;
  if (!stat) return std::nullopt;
  ProcessInfo info;
  info.pid = pid;
  info.comm = stat->comm;
  info.start_time = stat->start_time;
  if (auto status = ReadSmallFile("status", kReadCap, at)) info.uid = ParseStatusUid(*status);
  info.owner = UserName(info.uid);
  const auto cmdline = ReadSmallFile("cmdline", kCmdlineCap * 4, at);
  if (cmdline) info.cmdline = EscapeCmdline(RedactCmdline(*cmdline), kCmdlineCap);
  const auto exe = ReadLink("exe", at);
  if (exe) info.exe = EscapeCmdline(*exe, kCmdlineCap);
  if (auto cgroup = ReadSmallFile("cgroup", kReadCap, at)) info.container = ParseCgroup(*cgroup);
  // Exited while being read (a zombie has no command line or executable left to read).
  const auto again = ReadSmallFile("stat", kReadCap, at);
  const std::optional<Stat> after = again ? ParseStat(*again) : std::nullopt;
  info.gone =
      stat->state == 'Z' || !after || after->state == 'Z' || after->start_time != stat->start_time;

  int32_t ppid = stat->ppid;
  for (size_t depth = 0; depth < kMaxAncestors && ppid > 0; ++depth) {
    const auto parent_text = ReadSmallFile(root_ + "/" + std::to_string(ppid) + "/stat");
    const std::optional<Stat> parent = parent_text ? ParseStat(*parent_text) : std::nullopt;
    if (!parent) break;
    if (!info.ancestors.empty()) info.ancestors += '<';
    info.ancestors += parent->comm + "(" + std::to_string(ppid) + ")";
    ppid = parent->ppid;
  }
  return info;
}

void ProcessLookup::Remember(uint64_t inode, int32_t pid, int fd) {
  if (const auto [it, inserted] = inode_holders_.try_emplace(inode, Holder{pid, fd}); inserted) {
    inode_order_.push_back(inode);
  } else {
    it->second = Holder{pid, fd};
  }
  while (inode_holders_.size() > cache_cap_ && !inode_order_.empty()) {
    inode_holders_.erase(inode_order_.front());
    inode_order_.pop_front();
  }
}

void ProcessLookup::RememberProcess(const ProcessInfo& info, alerting::UniqueFd dir) {
  const auto [it, inserted] = processes_.insert_or_assign(info.pid, info);
  if (inserted) {
    process_order_.push_back(info.pid);
  } else {
    // Most recently described last.
    process_order_.remove(info.pid);
    process_order_.push_back(info.pid);
  }
  while (processes_.size() > cache_cap_ && !process_order_.empty()) {
    processes_.erase(process_order_.front());
    DropDir(process_order_.front());
    process_order_.pop_front();
  }
  // A process described anew (a reused pid) replaces the handle of the one before.
  DropDir(info.pid);
  if (!dir || info.gone) return;
  dirs_.emplace(info.pid, DirHandle{std::move(dir), {}});
  dir_order_.push_back(info.pid);
  while (dirs_.size() > kDirHandles && !dir_order_.empty()) {
    dirs_.erase(dir_order_.front());
    dir_order_.pop_front();
  }
}

}  // namespace nfq::sensor
