#include "sensor/process_lookup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "alerting/file_util.h"

namespace nfq::sensor {
namespace {

TEST(EscapeCmdline, NulsBecomeSpacesAndControlsAreEscaped) {
  using namespace std::string_literals;
  EXPECT_EQ(EscapeCmdline("curl\0-s\0http://x/\0"s), "curl -s http://x/");
  EXPECT_EQ(EscapeCmdline("a\nb\x1b[31m\\"s), "a\\x0ab\\x1b[31m\\x5c");
  EXPECT_EQ(EscapeCmdline("caf\xc3\xa9"s), "caf\\xc3\\xa9");
  EXPECT_EQ(EscapeCmdline(""), "");
  EXPECT_EQ(EscapeCmdline("\0\0"s), "");
  const std::string cut = EscapeCmdline(std::string(1000, 'x'), 16);
  EXPECT_EQ(cut, "xxxxxxxxxxxxx...");
  EXPECT_EQ(EscapeCmdline(std::string(16, 'x'), 16), std::string(16, 'x'));
  // An escape is never cut in half.
  EXPECT_EQ(EscapeCmdline("abcdefghijkl\x01zzzz", 16), "abcdefghijkl...");
  EXPECT_LE(EscapeCmdline(std::string(100, '\x01'), 2).size(), 2u);
}

TEST(RedactCmdline, TokenValuesNeverSurvive) {
  using namespace std::string_literals;
  const std::string token = "AQAEAFAKETOKENVALUE0123456789abcdef==";
  for (const std::string& raw :
       {"curl\0-H\0X-aws-ec2-metadata-token: "s + token + "\0http://x/\0"s,
        "curl\0-HX-aws-ec2-metadata-token:"s + token + "\0"s,
        "curl\0-H\0x-AWS-ec2-metadata-token:\0"s + token + "\0"s,
        "sh\0-c\0curl -H 'X-aws-ec2-metadata-token: "s + token + "' http://x/\0"s,
        "wget\0--header=X-aws-ec2-metadata-token:"s + token + "\0"s,
        // Quotes between the name and the separator (Python dicts, PowerShell hashtables).
        "python3\0-c\0urlopen(Request(u, headers={'X-aws-ec2-metadata-token': '"s + token + "'}))\0"s,
        "pwsh\0-c\0iwr -Headers @{'X-aws-ec2-metadata-token' = '"s + token + "'} $u\0"s,
        // No header name at all: the token's shape gives it away.
        "fetch-creds\0--token\0"s + token + "\0"s, "env\0IMDS_TOKEN="s + token + "\0"s}) {
    const std::string out = EscapeCmdline(RedactCmdline(raw));
    EXPECT_EQ(out.find(token), std::string::npos) << out;
    EXPECT_NE(out.find("<redacted>"), std::string::npos) << out;
  }
  const std::string ttl = "curl\0-H\0X-aws-ec2-metadata-token-ttl-seconds: 21600\0"s;
  EXPECT_EQ(RedactCmdline(ttl), ttl);
  EXPECT_EQ(RedactCmdline("X-aws-ec2-metadata-token"), "X-aws-ec2-metadata-token");
}

TEST(RedactCmdline, UrlCredentialsNeverSurvive) {
  EXPECT_EQ(RedactCmdline("curl http://admin:hunter2@169.254.169.254/latest/"),
            "curl http://<redacted>@169.254.169.254/latest/");
  EXPECT_EQ(RedactUserinfo("http://169.254.169.254/a@b"), "http://169.254.169.254/a@b");
  EXPECT_EQ(RedactUserinfo("no url here"), "no url here");
  // Arguments end at NUL or a quote: an '@' in a later argument is not the URL's userinfo.
  using namespace std::string_literals;
  EXPECT_EQ(RedactUserinfo("curl\0http://169.254.169.254\0-d\0a@b"s), "curl\0http://169.254.169.254\0-d\0a@b"s);
  EXPECT_EQ(RedactUserinfo("x='http://host' y@z"), "x='http://host' y@z");
  EXPECT_EQ(RedactUserinfo("curl\0http://u:p@h/\0"s), "curl\0http://<redacted>@h/\0"s);
}

TEST(ProcessLookup, OwnSocketLeadsToOwnPid) {
  alerting::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd);
  struct stat st {};
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  ProcessLookup lookup;
  const auto pid = lookup.FindSocketOwner(st.st_ino, ::geteuid());
  ASSERT_TRUE(pid);
  EXPECT_EQ(*pid, ::getpid());
  // Second time from the inode cache, checked against the process's fds.
  EXPECT_EQ(lookup.FindSocketOwner(st.st_ino), ::getpid());
  EXPECT_EQ(lookup.counters().inode_cache_hits, 1u);
  EXPECT_FALSE(lookup.FindSocketOwner(1));  // no such socket
}

TEST(ProcessLookup, SocketsSeenInAListingAreFoundLaterWithOneReadlink) {
  ProcessLookup lookup;
  ASSERT_TRUE(lookup.Describe(::getpid()));  // known for the uid: looked at first
  auto inode_of = [](int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return static_cast<uint64_t>(st.st_ino);
  };
  auto new_socket = [] { return alerting::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); };
  alerting::UniqueFd a = new_socket(), b = new_socket(), c = new_socket();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(a.get()), ::geteuid()), ::getpid());
  EXPECT_EQ(lookup.counters().listings, 1u);
  // b and c were open when a's listing ran.
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(b.get()), ::geteuid()), ::getpid());
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(c.get()), ::geteuid()), ::getpid());
  EXPECT_EQ(lookup.counters().inode_cache_hits, 2u);
  EXPECT_EQ(lookup.counters().listings, 1u);
  // Opened after the listing: listed again.
  alerting::UniqueFd d = new_socket();
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(d.get()), ::geteuid()), ::getpid());
  EXPECT_EQ(lookup.counters().listings, 2u);
  // Moved to another fd number: the remembered fd no longer holds it; found by listing.
  const uint64_t c_inode = inode_of(c.get());
  alerting::UniqueFd moved(::fcntl(c.get(), F_DUPFD_CLOEXEC, 100));
  ASSERT_TRUE(moved);
  c.reset();
  EXPECT_EQ(lookup.FindSocketOwner(c_inode, ::geteuid()), ::getpid());
  EXPECT_EQ(lookup.counters().listings, 3u);
  EXPECT_FALSE(lookup.FindSocketOwner(1, ::geteuid()));
}

// A client's new socket is almost never at an fd that held a file, pipe or epoll at the last
// listing: those are read last, and only when no socket fd holds it (here: one that does).
TEST(ProcessLookup, ListingReadsFdsThatHeldNoSocketOnlyWhenNothingElseMatches) {
  ProcessLookup lookup;
  ASSERT_TRUE(lookup.Describe(::getpid()));  // a handle: the listings are this process's
  auto inode_of = [](int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    return static_cast<uint64_t>(st.st_ino);
  };
  auto new_socket = [] { return alerting::UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)); };
  std::vector<alerting::UniqueFd> files;
  for (int i = 0; i < 40; ++i) files.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  alerting::UniqueFd a = new_socket();
  ASSERT_TRUE(a);
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(a.get()), ::geteuid()), ::getpid());
  const uint64_t first_reads = lookup.counters().links_read;
  EXPECT_GE(first_reads, 41u);
  EXPECT_EQ(lookup.counters().links_deferred, 0u);
  // The listing of this very process saw its own directory fd, the lowest free one: a file
  // here from now on, as such fds are in a client.
  alerting::UniqueFd plug(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  alerting::UniqueFd b = new_socket();
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(b.get()), ::geteuid()), ::getpid());
  EXPECT_GE(lookup.counters().links_deferred, 40u);
  EXPECT_LE(lookup.counters().links_read - first_reads, first_reads - 40);
  EXPECT_EQ(lookup.counters().listings, 2u);
  // The socket at an fd that held a file before: found all the same, read last.
  const int reused = files[5].get();
  files[5].reset();
  alerting::UniqueFd c = new_socket();
  ASSERT_EQ(c.get(), reused);  // the lowest free fd
  EXPECT_EQ(lookup.FindSocketOwner(inode_of(c.get()), ::geteuid()), ::getpid());
  EXPECT_FALSE(lookup.FindSocketOwner(1, ::geteuid()));
}

// A fake /proc: a scan's listing remembers the other sockets it passed, never a non-socket.
TEST(ProcessLookup, ListingRemembersOnlySocketsAndOnlyWhatItSaw) {
  const auto root =
      std::filesystem::temp_directory_path() / ("nfq-proc-fds-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root / "4711" / "fd");
  std::filesystem::create_symlink("socket:[100]", root / "4711/fd/3");
  std::filesystem::create_symlink("socket:[200]", root / "4711/fd/4");
  std::filesystem::create_symlink("pipe:[300]", root / "4711/fd/5");
  std::filesystem::create_symlink("socket:[x]", root / "4711/fd/6");
  ProcessLookup lookup(root.string());
  EXPECT_EQ(lookup.FindSocketOwner(100), 4711);
  EXPECT_EQ(lookup.counters().scans, 1u);
  EXPECT_EQ(lookup.FindSocketOwner(200), 4711);
  EXPECT_EQ(lookup.counters().inode_cache_hits, 1u);
  EXPECT_EQ(lookup.counters().scans, 1u);
  EXPECT_FALSE(lookup.FindSocketOwner(300));  // a pipe's inode is no socket
  EXPECT_EQ(lookup.counters().scans, 2u);
  // The fd now holds another socket: the cached holder is checked, not trusted.
  std::filesystem::remove(root / "4711/fd/4");
  std::filesystem::create_symlink("socket:[201]", root / "4711/fd/4");
  EXPECT_FALSE(lookup.FindSocketOwner(200));
  EXPECT_EQ(lookup.FindSocketOwner(201), 4711);
  // Closed meanwhile (the caller's re-check says so): no scan of every process.
  const uint64_t scans = lookup.counters().scans;
  bool open = false;
  auto is_open = [&open] { return open; };
  FunctionRef<bool()> still_held(is_open);
  EXPECT_FALSE(lookup.FindSocketOwner(999, -1, &still_held));
  EXPECT_EQ(lookup.counters().scans, scans);
  EXPECT_EQ(lookup.counters().scans_skipped, 1u);
  open = true;
  EXPECT_FALSE(lookup.FindSocketOwner(999, -1, &still_held));
  EXPECT_EQ(lookup.counters().scans, scans + 1);
  std::filesystem::remove_all(root);
}

void WriteFakeFile(const std::filesystem::path& p, const std::string& s) { std::ofstream(p) << s; }

void MakeFakeProcess(const std::filesystem::path& dir, uint64_t start, uint64_t sock) {
  std::filesystem::create_directories(dir / "fd");
  WriteFakeFile(dir / "stat", "4711 (curl) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " +
                              std::to_string(start) + " 0 0\n");
  WriteFakeFile(dir / "status", "Name:\tcurl\nUid:\t0\t0\t0\t0\n");
  WriteFakeFile(dir / "cmdline", std::string("curl\0x", 6));
  std::filesystem::create_symlink("socket:[" + std::to_string(sock) + "]", dir / "fd/3");
}

pid_t CloneWithPid(pid_t want) {
  clone_args args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = want > 0 ? reinterpret_cast<uint64_t>(&want) : 0;
  args.set_tid_size = want > 0 ? 1 : 0;
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

// Child: opens a socket, sends its inode, waits to be killed.
pid_t SpawnSocketHolder(pid_t want, uint64_t* inode) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return -1;
  const pid_t child = CloneWithPid(want);
  if (child == 0) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    struct stat st {};
    ::fstat(s, &st);
    const uint64_t ino = st.st_ino;
    [[maybe_unused]] auto n = ::write(ready[1], &ino, sizeof ino);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  if (child > 0 && ::read(ready[0], inode, sizeof *inode) != sizeof *inode) return -1;
  ::close(ready[0]);
  return child;
}

// A socket found through the directory handle of a described process is that process's:
// Describe answers from the cache without reading stat again. Once the process has exited,
// the handle finds nothing, whoever has the pid now.
TEST(ProcessLookup, SocketFoundThroughTheDescribedProcessesHandleNeedsNoStatRead) {
  uint64_t inode = 0;
  const pid_t child = SpawnSocketHolder(0, &inode);
  ASSERT_GT(child, 0);
  ProcessLookup lookup;
  ASSERT_TRUE(lookup.Describe(child));
  EXPECT_EQ(lookup.FindSocketOwner(inode, ::geteuid()), child);  // a listing, by the handle
  const auto listed = lookup.Describe(child);
  ASSERT_TRUE(listed);
  EXPECT_FALSE(listed->gone);
  EXPECT_EQ(lookup.counters().held_by_described, 1u);
  EXPECT_EQ(lookup.FindSocketOwner(inode, ::geteuid()), child);  // one readlink, by the handle
  ASSERT_TRUE(lookup.Describe(child));
  EXPECT_EQ(lookup.counters().held_by_described, 2u);
  // A Describe not right after its socket was found reads stat as before.
  ASSERT_TRUE(lookup.Describe(child));
  EXPECT_EQ(lookup.counters().held_by_described, 2u);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(lookup.FindSocketOwner(inode, ::geteuid()));
  const auto gone = lookup.Describe(child);
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->gone);
  EXPECT_EQ(lookup.counters().held_by_described, 2u);
}

// The handle of a described process that exited must not hide the next process with its pid.
// Fake /proc: pid 4711 is described (handle kept), exits, and a new process gets pid 4711.
TEST(ProcessLookup, FakeProcReusedPidIsFoundPastTheExitedProcessesHandle) {
  const auto root = std::filesystem::temp_directory_path() / ("nfq-proc-reuse-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  MakeFakeProcess(root / "4711", 100, 500);
  ProcessLookup lookup(root.string());
  ASSERT_EQ(lookup.FindSocketOwner(500, 0), 4711);
  ASSERT_TRUE(lookup.Describe(4711));
  // The process exits; pid 4711 is reused by another process holding socket 900.
  std::filesystem::remove_all(root / "4711");
  MakeFakeProcess(root / "4711", 200, 900);
  EXPECT_EQ(lookup.FindSocketOwner(900, 0), 4711) ;
  EXPECT_EQ(lookup.FindSocketOwner(900, -1), 4711) ;
  std::filesystem::remove_all(root);
}

// Real kernel: clone3(set_tid) reuses the pid of a described, reaped process (root only).
TEST(ProcessLookup, ReusedPidIsFoundPastTheExitedProcessesHandle) {
  if (::geteuid() != 0) GTEST_SKIP() << "clone3 set_tid needs CAP_SYS_ADMIN";
  uint64_t first_inode = 0, second_inode = 0;
  const pid_t first = SpawnSocketHolder(0, &first_inode);
  ASSERT_GT(first, 0);
  ProcessLookup lookup;
  ASSERT_EQ(lookup.FindSocketOwner(first_inode, ::geteuid()), first);
  ASSERT_TRUE(lookup.Describe(first));
  ::kill(first, SIGKILL);
  ::waitpid(first, nullptr, 0);
  const pid_t second = SpawnSocketHolder(first, &second_inode);
  if (second < 0 && errno == EEXIST) GTEST_SKIP() << "pid taken meanwhile";
  ASSERT_EQ(second, first) << "clone3 set_tid: " << strerror(errno);
  const auto owner = lookup.FindSocketOwner(second_inode, ::geteuid());
  EXPECT_TRUE(owner.has_value()) << "the live process holding the socket is not found";
  if (owner) {
    EXPECT_EQ(*owner, second);
  }
  ::kill(second, SIGKILL);
  ::waitpid(second, nullptr, 0);
}

TEST(ProcessLookup, DescribesItself) {
  ProcessLookup lookup;
  const auto info = lookup.Describe(::getpid());
  ASSERT_TRUE(info);
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->uid, static_cast<int64_t>(::geteuid()));
  const passwd* pw = ::getpwuid(::geteuid());
  ASSERT_NE(pw, nullptr);
  EXPECT_EQ(info->owner, pw->pw_name);
  EXPECT_NE(info->cmdline.find("sensor_test"), std::string::npos) << info->cmdline;
  EXPECT_NE(info->exe.find("sensor_test"), std::string::npos) << info->exe;
  EXPECT_FALSE(info->comm.empty());
  EXPECT_FALSE(info->ancestors.empty());
  EXPECT_FALSE(info->gone);
  EXPECT_GT(info->start_time, 0u);
}

TEST(ProcessLookup, ChildThatExitsIsReportedGoneWithWhatWasKnown) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  ProcessLookup lookup;
  const auto alive = lookup.Describe(child);
  ASSERT_TRUE(alive);
  EXPECT_FALSE(alive->gone);
  const std::string parent = "(" + std::to_string(::getpid()) + ")";
  EXPECT_EQ(alive->ancestors.find(parent), alive->ancestors.find('(')) << alive->ancestors;
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  const auto gone = lookup.Describe(child);
  ASSERT_TRUE(gone);
  EXPECT_TRUE(gone->gone);
  EXPECT_EQ(gone->cmdline, alive->cmdline);
  EXPECT_EQ(gone->exe, alive->exe);
  // Never described before it exited: nothing to say.
  ProcessLookup fresh;
  EXPECT_FALSE(fresh.Describe(child));
}

// A fake /proc: a reused pid (new start time) is described anew, not from the cache.
TEST(ProcessLookup, ReusedPidIsNotConfusedWithTheOldProcess) {
  const auto root =
      std::filesystem::temp_directory_path() / ("nfq-proc-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "4711");
  std::filesystem::create_directories(root / "812");
  auto write = [&](const std::string& rel, const std::string& text) {
    std::ofstream(root / rel, std::ios::binary) << text;
  };
  auto stat_line = [](int pid, const std::string& comm, int ppid, int start) {
    std::string s = std::to_string(pid) + " (" + comm + ") S " + std::to_string(ppid);
    for (int field = 5; field < 22; ++field) s += " 0";
    return s + " " + std::to_string(start) + " 0 0\n";
  };
  write("812/stat", stat_line(812, "sshd: root", 0, 5));
  write("4711/stat", stat_line(4711, "cur) l", 812, 100));
  write("4711/status", "Name:\tcurl\nUid:\t1000\t65534\t65534\t65534\n");
  write("4711/cmdline", std::string("curl\0-s\0", 8));
  write("4711/cgroup",
        "0::/system.slice/"
        "docker-3f2a9c1e5b7d4f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718.scope\n");
  ProcessLookup lookup(root.string());
  auto first = lookup.Describe(4711);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->comm, "cur) l");
  EXPECT_EQ(first->uid, 65534);
  EXPECT_EQ(first->cmdline, "curl -s");
  EXPECT_EQ(first->ancestors, "sshd: root(812)");
  EXPECT_EQ(first->container.runtime, ContainerRuntime::kDocker);
  write("4711/stat", stat_line(4711, "python3", 812, 200));
  write("4711/cmdline", std::string("python3\0x.py\0", 13));
  auto second = lookup.Describe(4711);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->cmdline, "python3 x.py");
  EXPECT_EQ(second->start_time, 200u);
  EXPECT_EQ(lookup.counters().describe_cache_hits, 0u);
  EXPECT_TRUE(lookup.Describe(4711));
  EXPECT_EQ(lookup.counters().describe_cache_hits, 1u);
  // Garbage stat: no description, no crash.
  write("4711/stat", "4711 (x");
  ProcessLookup fresh(root.string());
  EXPECT_FALSE(fresh.Describe(4711));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace nfq::sensor
