#include "alerting/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace nfq::alerting {

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) reset(o.release());
  return *this;
}
UniqueFd::~UniqueFd() { reset(); }
void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string ErrnoString(int err) { return std::strerror(err); }

bool EnsurePrivateDir(const std::string& dir, std::string* error) {
  if (dir.empty()) {
    *error = "state directory is empty";
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create state directory " + dir + ": " + ec.message();
    return false;
  }
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = "state directory " + dir + " is not a directory";
    return false;
  }
  if ((st.st_mode & 077) != 0 && st.st_uid == ::geteuid()) ::chmod(dir.c_str(), 0700);
  const std::string probe = dir + "/.write-test";
  UniqueFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) {
    *error = "state directory " + dir + " is not writable: " + ErrnoString(errno);
    return false;
  }
  fd.reset();
  ::unlink(probe.c_str());
  return true;
}

bool FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  return fd && ::fsync(fd.get()) == 0;
}

bool AtomicWriteFile(const std::string& path, std::string_view data, unsigned mode,
                     std::string* error, bool durable) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) {
    *error = "cannot create " + tmp + ": " + ErrnoString(errno);
    return false;
  }
  ::fchmod(fd.get(), static_cast<mode_t>(mode));
  while (!data.empty()) {
    const ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = "cannot write " + tmp + ": " + ErrnoString(errno);
      ::unlink(tmp.c_str());
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (durable && ::fsync(fd.get()) != 0) {
    *error = "cannot fsync " + tmp + ": " + ErrnoString(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + ": " + ErrnoString(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (durable) FsyncDir(std::filesystem::path(path).parent_path().string());
  return true;
}

std::optional<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) return std::nullopt;
  }
  return out;
}

}  // namespace nfq::alerting
