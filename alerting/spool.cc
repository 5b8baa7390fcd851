#include "alerting/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "alerting/hit_codec.h"
#include "alerting/hit_format.h"

namespace nfq::alerting {
namespace {

constexpr uint32_t kMagic = 0x5053464e;  // "NFSP" little-endian
constexpr size_t kHeader = 20;           // magic, length, crc, id
constexpr uint64_t kCompactPrefix = 1u << 20;

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
uint32_t GetU32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}
uint64_t GetU64(std::string_view b, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

uint32_t Crc(std::string_view a, std::string_view b = {}) {
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32(c, reinterpret_cast<const Bytef*>(a.data()), static_cast<uInt>(a.size()));
  c = crc32(c, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size()));
  return static_cast<uint32_t>(c);
}

struct Frame {
  uint64_t id;
  std::string_view payload;
  size_t size;
};

// A valid frame at data[at], or nullopt.
std::optional<Frame> ParseFrame(std::string_view data, size_t at) {
  if (data.size() - at < kHeader || GetU32(data, at) != kMagic) return std::nullopt;
  const uint32_t len = GetU32(data, at + 4);
  if (len > Spool::kMaxPayload || data.size() - at - kHeader < len) return std::nullopt;
  const std::string_view id_bytes = data.substr(at + 12, 8);
  const std::string_view payload = data.substr(at + kHeader, len);
  if (Crc(id_bytes, payload) != GetU32(data, at + 8)) return std::nullopt;
  return Frame{GetU64(data, at + 12), payload, kHeader + len};
}

bool PwriteFully(int fd, std::string_view data, uint64_t offset);

// Reads up to len bytes at offset into buf, EINTR and short reads retried; returns how many
// were read (fewer at the end of the file or on an error).
size_t PreadUpTo(int fd, char* buf, size_t len, uint64_t offset) {
  size_t got = 0;
  while (got < len) {
    const ssize_t n = ::pread(fd, buf + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

// Copies len bytes at in_offset of in to out_offset of out: in the kernel (copy_file_range),
// or through a buffer where the file system cannot. False with errno on failure.
bool CopyRange(int in, uint64_t in_offset, int out, uint64_t out_offset, uint64_t len) {
  bool in_kernel = true;
  std::string buf;
  while (len > 0) {
    ssize_t n = -1;
    if (in_kernel) {
      auto from = static_cast<off_t>(in_offset);
      auto to = static_cast<off_t>(out_offset);
      n = ::copy_file_range(in, &from, out, &to, len, 0);
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
        in_kernel = false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
    } else {
      if (buf.empty()) buf.resize(1u << 20);
      n = static_cast<ssize_t>(PreadUpTo(in, buf.data(), std::min<uint64_t>(len, buf.size()), in_offset));
      if (n > 0 && !PwriteFully(out, std::string_view(buf.data(), static_cast<size_t>(n)), out_offset)) {
        return false;
      }
    }
    if (n == 0) {  // the source is shorter than its entries say (or cannot be read)
      errno = EIO;
      return false;
    }
    in_offset += static_cast<uint64_t>(n);
    out_offset += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return true;
}

bool PwriteFully(int fd, std::string_view data, uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

std::string Merged(const std::string& a, const std::string& b) { return a == b ? a : "*"; }

// Reads the payloads of frames at growing offsets through one large window: the oldest tens
// of thousands of records at the cap in a few reads, not one each.
class SequentialFrameReader {
 public:
  explicit SequentialFrameReader(int fd) : fd_(fd) {}

  // The payload of the frame (id) at offset, valid until the next call; nullopt if damaged.
  std::optional<std::string_view> Payload(uint64_t offset, uint32_t size, uint64_t id) {
    if (offset < window_at_ || offset + size > window_at_ + window_.size()) Fill(offset, size);
    if (offset < window_at_ || offset + size > window_at_ + window_.size()) return std::nullopt;
    const auto frame = ParseFrame(window_, offset - window_at_);
    if (!frame || frame->id != id) return std::nullopt;
    return frame->payload;
  }

 private:
  void Fill(uint64_t offset, uint32_t size) {
    window_.resize(std::max<size_t>(kWindow, size));
    window_.resize(PreadUpTo(fd_, window_.data(), window_.size(), offset));
    window_at_ = offset;
  }

  static constexpr size_t kWindow = 1u << 20;
  int fd_;
  std::string window_;
  uint64_t window_at_ = 0;
};

}  // namespace

void AppendFrame(uint64_t id, std::string_view payload, std::string* out) {
  std::string id_bytes;
  PutU64(id_bytes, id);
  out->reserve(out->size() + kHeader + payload.size());
  PutU32(*out, kMagic);
  PutU32(*out, static_cast<uint32_t>(payload.size()));
  PutU32(*out, Crc(id_bytes, payload));
  out->append(id_bytes);
  out->append(payload);
}

std::string EncodeFrame(uint64_t id, std::string_view payload) {
  std::string out;
  AppendFrame(id, payload, &out);
  return out;
}

Spool::Spool(Options options)
    : opts_(std::move(options)),
      log_path_(opts_.dir + "/spool.log"),
      ack_path_(opts_.dir + "/spool.ack") {}

Spool::~Spool() {
  if (fd_) WriteBatch();
}

void Spool::Log(std::string_view line) const {
  if (opts_.log) opts_.log(line);
}

std::unique_ptr<Spool> Spool::Open(Options options, std::string* error) {
  std::unique_ptr<Spool> s(new Spool(std::move(options)));
  if (!s->Load(error)) return nullptr;
  return s;
}

bool Spool::Load(std::string* error) {
  ack_fd_.reset(::open(ack_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!ack_fd_) {
    *error = fmt::format("cannot open {}: {}", ack_path_, ErrnoString(errno));
    return false;
  }
  char ack[12];
  const ssize_t n = ::pread(ack_fd_.get(), ack, sizeof ack, 0);
  if (n == static_cast<ssize_t>(sizeof ack)) {
    const std::string_view a(ack, sizeof ack);
    if (Crc(a.substr(0, 8)) == GetU32(a, 8)) {
      acked_id_ = GetU64(a, 0);
    } else {
      Log("spool: spool.ack is damaged; undelivered-looking records will be resent");
    }
  }
  fd_.reset(::open(log_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) {
    *error = fmt::format("cannot open {}: {}", log_path_, ErrnoString(errno));
    return false;
  }
  std::string data;
  {
    char buf[65536];
    for (;;) {
      const ssize_t r = ::read(fd_.get(), buf, sizeof buf);
      if (r < 0) {
        if (errno == EINTR) continue;
        *error = fmt::format("cannot read {}: {}", log_path_, ErrnoString(errno));
        return false;
      }
      if (r == 0) break;
      data.append(buf, static_cast<size_t>(r));
    }
  }
  const std::string_view view(data);
  const std::string magic = [] {
    std::string m;
    PutU32(m, kMagic);
    return m;
  }();
  uint64_t max_id = acked_id_;
  size_t p = 0;
  file_size_ = data.size();
  while (p < view.size()) {
    if (auto f = ParseFrame(view, p)) {
      if (f->id > max_id) {
        entries_.push_back(Entry{f->id, p, static_cast<uint32_t>(f->size), std::nullopt});
        pending_bytes_ += f->size;
        max_id = f->id;
      }
      p += f->size;
      continue;
    }
    size_t q = view.find(magic, p + 1);
    while (q != std::string_view::npos && !ParseFrame(view, q)) q = view.find(magic, q + 1);
    stats_.corrupt_records++;
    if (q != std::string_view::npos) {
      stats_.corrupt_bytes += q - p;
      Log(fmt::format("spool: skipped {} damaged bytes at offset {} of {}", q - p, p, log_path_));
      p = q;
    } else {
      stats_.corrupt_bytes += view.size() - p;
      Log(fmt::format("spool: dropped a torn or damaged tail of {} bytes at offset {} of {}",
                      view.size() - p, p, log_path_));
      if (::ftruncate(fd_.get(), static_cast<off_t>(p)) == 0) file_size_ = p;
      break;
    }
  }
  next_id_ = max_id + 1;
  if (entries_.empty() && file_size_ > 0 && ::ftruncate(fd_.get(), 0) == 0) file_size_ = 0;
  if (!entries_.empty()) {
    Log(fmt::format("spool: {} undelivered hits from a previous run", entries_.size()));
  }
  return true;
}

bool Spool::TryWriteFrames(std::string_view frames) {
  if (PwriteFully(fd_.get(), frames, file_size_)) {
    file_size_ += frames.size();
    dirty_ = true;
    if (disk_failing_) {
      disk_failing_ = false;
      Log("spool: writes work again");
    }
    return true;
  }
  const int err = errno;
  (void)::ftruncate(fd_.get(), static_cast<off_t>(file_size_));  // no torn record behind us
  stats_.write_errors++;
  if (!disk_failing_) {
    disk_failing_ = true;
    Log(fmt::format("spool: cannot write {}: {}; keeping hits in memory and retrying",
                    log_path_, ErrnoString(err)));
  }
  return false;
}

uint64_t Spool::Append(const Hit& hit) {
  std::string payload = EncodeHit(hit);
  if (payload.size() > kMaxPayload) {
    Hit clipped = hit;
    for (std::string* s : {&clipped.url, &clipped.norm, &clipped.cmdline, &clipped.host,
                           &clipped.user_agent, &clipped.owner}) {
      if (s->size() > 65536) s->resize(65536);
    }
    clipped.flags += clipped.flags.empty() ? "truncated" : ",truncated";
    payload = EncodeHit(clipped);
  }
  const uint64_t id = next_id_++;
  const auto size = static_cast<uint32_t>(kHeader + payload.size());
  EnforceCap(size);
  // The frame lands where the batch ends; until WriteBatch it is only in memory.
  Entry e{id, file_size_ + batch_.size(), size, std::nullopt};
  AppendFrame(id, payload, &batch_);
  pending_bytes_ += e.size;
  entries_.push_back(std::move(e));
  stats_.appended++;
  if (batch_.size() >= kBatchBytes) WriteBatch();
  return id;
}

void Spool::WriteBatch() {
  if (batch_.empty()) return;
  if (!TryWriteFrames(batch_)) {
    // The batch's entries are the newest ones, each without a payload and placed at or past
    // the end of the file: they keep their frames' payloads in memory instead.
    for (auto it = entries_.rbegin(); it != entries_.rend() && !it->payload && it->offset >= file_size_;
         ++it) {
      const auto frame = ParseFrame(batch_, it->offset - file_size_);
      Hold(&*it, std::string(frame ? frame->payload : std::string_view()));
    }
  }
  batch_.clear();
}

std::optional<std::string> Spool::PayloadOf(const Entry& e) {
  if (e.payload) return e.payload;
  std::string buf(e.size, '\0');
  if (PreadUpTo(fd_.get(), buf.data(), buf.size(), e.offset) != buf.size()) return std::nullopt;
  auto f = ParseFrame(buf, 0);
  if (!f || f->id != e.id) return std::nullopt;
  return std::string(f->payload);
}

std::optional<Spool::Record> Spool::Front() {
  WriteBatch();
  while (!entries_.empty()) {
    const Entry& e = entries_.front();
    if (auto payload = PayloadOf(e)) {
      if (auto hit = DecodeHit(*payload)) return Record{e.id, std::move(*hit)};
    }
    stats_.corrupt_records++;
    stats_.corrupt_bytes += e.size;
    Log(fmt::format("spool: record {} unreadable; skipped", e.id));
    front_in_flight_ = false;
    Ack(e.id);
    stats_.acked--;  // skipped, not delivered
  }
  return std::nullopt;
}

bool Spool::WriteAck(uint64_t id) {
  std::string a;
  PutU64(a, id);
  PutU32(a, Crc(a));
  if (!PwriteFully(ack_fd_.get(), a, 0) || ::fdatasync(ack_fd_.get()) != 0) {
    stats_.write_errors++;
    return false;
  }
  return true;
}

void Spool::Ack(uint64_t id) {
  WriteBatch();
  if (entries_.empty() || entries_.front().id != id) return;
  pending_bytes_ -= entries_.front().size;
  Release(entries_.front());
  entries_.pop_front();
  front_in_flight_ = false;
  acked_id_ = id;
  stats_.acked++;
  WriteAck(id);
  if (entries_.empty()) {
    if (file_size_ > 0 && ::ftruncate(fd_.get(), 0) == 0) file_size_ = 0;
    return;
  }
  const auto first_on_disk = std::find_if(entries_.begin(), entries_.end(),
                                          [](const Entry& e) { return !e.payload; });
  const uint64_t prefix = first_on_disk == entries_.end() ? file_size_ : first_on_disk->offset;
  if (prefix > kCompactPrefix && prefix > file_size_ / 2) Compact();
}

void Spool::Sync() {
  WriteBatch();
  if (memory_only_ > 0) RetryRewrite();
  if (!dirty_) return;
  if (::fdatasync(fd_.get()) != 0) {
    stats_.write_errors++;
    return;
  }
  dirty_ = false;
}

void Spool::EnforceCap(uint64_t incoming) {
  if (pending_bytes_ + incoming <= opts_.cap_bytes) return;
  WriteBatch();  // what follows reads and rewrites records on disk
  const auto began = std::chrono::steady_clock::now();
  const size_t start = front_in_flight_ ? 1 : 0;
  const uint64_t target = opts_.cap_bytes / 2;  // room for many appends per rewrite
  size_t end = start;
  uint64_t remaining = pending_bytes_ + incoming;
  while (end < entries_.size() && remaining > target) remaining -= entries_[end++].size;
  if (end - start < 2) {  // nothing to gain; stay a little over the cap
    cap_futile_at_ = pending_bytes_;
    return;
  }
  cap_futile_at_ = UINT64_MAX;
  std::optional<Hit> summary;
  uint64_t records = 0;
  SequentialFrameReader reader(fd_.get());
  for (size_t i = start; i < end; ++i) {
    const Entry& e = entries_[i];
    auto payload = e.payload ? std::optional<std::string_view>(*e.payload) : reader.Payload(e.offset, e.size, e.id);
    auto hit = payload ? DecodeHit(*payload) : std::nullopt;
    if (!hit) {
      stats_.corrupt_records++;
      continue;
    }
    records++;
    if (!summary) {
      summary = std::move(*hit);
      continue;
    }
    Hit& s = *summary;
    s.count += hit->count;
    s.first = std::min(s.first, hit->first);
    s.last = std::max(s.last, hit->last);
    s.url = Merged(s.url, hit->url);
    s.norm = Merged(s.norm, hit->norm);
    s.method = Merged(s.method, hit->method);
    s.imds = Merged(s.imds, hit->imds);
    s.src = Merged(s.src, hit->src);
    s.owner = Merged(s.owner, hit->owner);
    s.cmdline = Merged(s.cmdline, hit->cmdline);
    s.hook = Merged(s.hook, hit->hook);
    if (s.uid != hit->uid) s.uid = -1;
    if (s.gid != hit->gid) s.gid = -1;
    if (s.pid != hit->pid) s.pid = -1;
    s.flags = MergeFlags(s.flags, hit->flags);
  }
  const uint64_t summary_id = entries_[end - 1].id;  // keeps file order == id order
  for (size_t i = start; i < end; ++i) {
    pending_bytes_ -= entries_[i].size;
    Release(entries_[i]);
  }
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(start),
                 entries_.begin() + static_cast<std::ptrdiff_t>(end));
  if (summary) {
    Hit& s = *summary;
    s.flags = MergeFlags(s.flags, "spool-overflow");
    std::string payload = EncodeHit(s);
    Entry e{summary_id, 0, static_cast<uint32_t>(kHeader + payload.size()), std::nullopt};
    Hold(&e, std::move(payload));
    pending_bytes_ += e.size;
    entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(start), std::move(e));
    stats_.summaries++;
  }
  stats_.summarised_records += records;
  Compact();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - began);
  Log(fmt::format("spool: at its cap of {} bytes; {} oldest undelivered hits summarised into one "
                  "({} ms)",
                  opts_.cap_bytes, records, took.count()));
}

void Spool::Hold(Entry* e, std::string payload) {
  e->payload = std::move(payload);
  e->offset = 0;
  ++memory_only_;
  ++held_generation_;
}

void Spool::Release(const Entry& e) {
  if (!e.payload) return;
  --memory_only_;
  ++held_generation_;
}

void Spool::AppendHeldFrames(uint64_t* id, std::string* out) const {
  if (memory_only_ == 0) return;
  for (const Entry& e : entries_) {
    if (e.payload) AppendFrame(++*id, *e.payload, out);
  }
}

bool Spool::RewriteFits() const {
  struct statvfs fs{};
  if (::fstatvfs(fd_.get(), &fs) != 0 || fs.f_frsize == 0) return true;  // cannot tell: try
  constexpr uint64_t kMargin = 1u << 20;
  return fs.f_favail > 0 && fs.f_bavail > (pending_bytes_ + kMargin) / fs.f_frsize;
}

void Spool::RetryRewrite() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_rewrite_) return;
  const uint64_t held = memory_only_;
  const bool fits = RewriteFits();
  if (fits && Compact()) {
    rewrite_backoff_ = {};
    disk_failing_ = false;
    Log(fmt::format("spool: {} records held in memory are on disk again", held));
    return;
  }
  // The first retry soon (a disk that had a moment of trouble), then at most once a minute:
  // a rewrite copies the whole spool, under the owner's lock.
  rewrite_backoff_ = std::clamp(rewrite_backoff_ * 2, kRewriteBackoffFirst, kRewriteBackoffMax);
  next_rewrite_ = now + rewrite_backoff_;
  if (!rewrite_failing_) {
    Log(fmt::format("spool: cannot rewrite {} to store {} records held in memory{}; retrying "
                    "with backoff", log_path_, held,
                    fits ? "" : " (not enough free space or inodes for the whole spool)"));
  }
  rewrite_failing_ = true;
}

bool Spool::Compact() {
  const std::string tmp = log_path_ + ".tmp";
  UniqueFd out(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) {
    stats_.write_errors++;
    return false;
  }
  // Records on disk are copied as they are (a damaged one too: Front() skips it later), each
  // run of neighbours in one copy; records held in memory are framed and written. Tens of MB
  // at the cap cost a few system calls, not two per record.
  std::vector<uint64_t> offsets;
  offsets.reserve(entries_.size());
  uint64_t size = 0;
  bool ok = true;
  auto write_framed = [&](const Entry& e, const std::string& payload) {
    offsets.push_back(size);
    const std::string frame = EncodeFrame(e.id, payload);
    ok = PwriteFully(out.get(), frame, size);
    size += frame.size();
  };
  for (size_t i = 0; ok && i < entries_.size();) {
    if (entries_[i].payload) {
      write_framed(entries_[i], *entries_[i].payload);
      ++i;
      continue;
    }
    const size_t run_first = i;
    const uint64_t run_start = entries_[i].offset;
    uint64_t run_end = run_start;
    for (; i < entries_.size() && !entries_[i].payload && entries_[i].offset == run_end; ++i) {
      run_end += entries_[i].size;
    }
    if (CopyRange(fd_.get(), run_start, out.get(), size, run_end - run_start)) {
      for (size_t k = run_first; k < i; ++k) offsets.push_back(size + (entries_[k].offset - run_start));
      size += run_end - run_start;
      continue;
    }
    // Something in the run cannot be read (EIO) or written: record by record, an unreadable
    // one as an empty frame that Front() skips, so one bad sector does not stop every rewrite.
    for (size_t k = run_first; ok && k < i; ++k) {
      const auto payload = PayloadOf(entries_[k]);
      write_framed(entries_[k], payload ? *payload : std::string());
    }
  }
  // A fallback that wrote less than a failed copy leaves nothing stale behind the last record.
  if (!ok || ::ftruncate(out.get(), static_cast<off_t>(size)) != 0 || ::fdatasync(out.get()) != 0 ||
      ::rename(tmp.c_str(), log_path_.c_str()) != 0) {
    stats_.write_errors++;
    ::unlink(tmp.c_str());
    return false;
  }
  FsyncDir(opts_.dir);
  fd_ = std::move(out);
  for (size_t i = 0; i < entries_.size(); ++i) {
    entries_[i].offset = offsets[i];
    entries_[i].payload.reset();
    entries_[i].size = static_cast<uint32_t>(
        (i + 1 < entries_.size() ? offsets[i + 1] : size) - offsets[i]);
  }
  pending_bytes_ = size;
  file_size_ = size;
  dirty_ = false;
  if (memory_only_ > 0) ++held_generation_;
  memory_only_ = 0;
  rewrite_failing_ = false;
  return true;
}

Spool::Stats Spool::stats() const {
  Stats s = stats_;
  s.pending_records = entries_.size();
  s.pending_bytes = pending_bytes_;
  s.file_bytes = file_size_;
  s.memory_only = memory_only_;
  return s;
}

std::vector<std::string_view> ParseFrames(std::string_view data, bool* rest_bad) {
  std::vector<std::string_view> payloads;
  size_t at = 0;
  while (at < data.size()) {
    const auto frame = ParseFrame(data, at);
    if (!frame) break;
    payloads.push_back(frame->payload);
    at += frame->size;
  }
  *rest_bad = at < data.size();
  return payloads;
}

}  // namespace nfq::alerting
