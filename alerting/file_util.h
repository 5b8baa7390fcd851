// Small POSIX file helpers for the state directory. Thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nfq::alerting {

// Owns one file descriptor; move-only. close() is never retried: on Linux the descriptor is
// gone after the first call whatever it returns, and a retry could close a reused number.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Creates dir (and parents) with mode 0700 if missing, tightens an existing one to 0700 when we
// own it, and checks it is writable. False with a one-line reason otherwise.
bool EnsurePrivateDir(const std::string& dir, std::string* error);

// Writes path via path.tmp: write, fsync, rename, fsync the directory. Mode applies to the
// new file. False with a reason on any failure (the old file is then untouched).
// durable false skips both fsyncs: the file is whole or old after a crash of the process
// (kill -9), not necessarily after a power loss.
bool AtomicWriteFile(const std::string& path, std::string_view data, unsigned mode,
                     std::string* error, bool durable = true);

// The whole file, or nullopt if it cannot be read or is larger than max_bytes.
std::optional<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

bool FsyncDir(const std::string& dir);

std::string ErrnoString(int err);

}  // namespace nfq::alerting
