#include "alerting/console_sink.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

#include "alerting/file_util.h"
#include "alerting/hit_codec.h"
#include "alerting/hit_format.h"
#include "alerting/http_client.h"
#include "alerting/registration.h"
#include "alerting/spool.h"
#include "alerting/stdout_sink.h"

namespace nfq::alerting {
namespace {

using SteadyClock = std::chrono::steady_clock;

void LogToStderr(std::string_view line) {
  std::string l(line);
  l.push_back('\n');
  WriteFully(STDERR_FILENO, l);
}

}  // namespace

namespace {

// The checks Create and Check share; the stored token URL, if any, in *token_url.
bool ValidateConfig(const ConsoleSink::Config& config, std::optional<std::string>* token_url,
                    std::string* error) {
  if (!config.factory_url.empty() && !IsHttpUrl(config.factory_url)) {
    *error = "factory URL must be an http:// or https:// URL";
    return false;
  }
  if (!config.ca_file.empty() && ::access(config.ca_file.c_str(), R_OK) != 0) {
    *error = "cannot read the CA file " + config.ca_file + ": " + ErrnoString(errno);
    return false;
  }
  if (!EnsurePrivateDir(config.state_dir, error)) return false;
  *token_url = LoadTokenUrl(config.state_dir, config.factory_url);
  if (!*token_url && config.factory_url.empty()) {
    *error = "no factory URL given and no token stored in " + config.state_dir +
             " (pass -a URL, --factory-file or NFQ_APEEPER_FACTORY)";
    return false;
  }
  return true;
}

// Two sinks on one state dir would write the same spool ids at the same offsets.
UniqueFd LockStateDir(const std::string& state_dir, std::string* error) {
  const std::string path = state_dir + "/lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) {
    *error = "cannot open " + path + ": " + ErrnoString(errno);
    return fd;
  }
  int rc;
  do {
    rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    *error = errno == EWOULDBLOCK
                 ? "state dir " + state_dir + " is in use by another nfq-apeeper (one daemon per "
                       "state dir; give this one its own --state-dir)"
                 : "cannot lock " + path + ": " + ErrnoString(errno);
    fd.reset();
  }
  return fd;
}

}  // namespace

bool ConsoleSink::Check(Config config, std::string* error) {
  std::optional<std::string> token_url;
  if (!ValidateConfig(config, &token_url, error)) return false;
  return HttpClient::Create({config.proxy, config.ca_file, config.user_agent, config.so_mark,
                             [](std::string_view) {}},
                            error) != nullptr;
}

std::unique_ptr<ConsoleSink> ConsoleSink::Create(Config config, std::string* error) {
  if (!config.log) config.log = LogToStderr;
  std::optional<std::string> token_url;
  if (!ValidateConfig(config, &token_url, error)) return nullptr;
  UniqueFd lock = LockStateDir(config.state_dir, error);
  if (!lock) return nullptr;

  std::unique_ptr<ConsoleSink> sink(new ConsoleSink(std::move(config)));
  sink->state_lock_ = std::move(lock);
  const Config& c = sink->cfg_;
  if (token_url) {
    sink->token_url_ = *token_url;
    sink->counters_.registered = true;
  }
  sink->spool_ = Spool::Open({c.state_dir, c.spool_cap_bytes, c.log}, error);
  if (!sink->spool_) return nullptr;
  sink->RecoverFoldJournal();
  sink->http_ = HttpClient::Create({c.proxy, c.ca_file, c.user_agent, c.so_mark, c.log}, error);
  if (!sink->http_) return nullptr;
  return sink;
}

ConsoleSink::ConsoleSink(Config config)
    : cfg_(std::move(config)),
      folder_(cfg_.fold_window, cfg_.fold_max_keys),
      journal_retry_delay_(cfg_.sync_interval),
      rng_(std::random_device{}()) {}

ConsoleSink::~ConsoleSink() { Stop(); }

void ConsoleSink::Log(std::string_view line) const { cfg_.log(line); }

void ConsoleSink::Start() {
  std::lock_guard lk(mu_);
  if (started_) return;
  started_ = true;
  worker_ = std::thread([this] { Run(); });
  keeper_ = std::thread([this] { Keep(); });
}

void ConsoleSink::Keep() {
  pthread_setname_np(pthread_self(), "nfq-spool");
  std::unique_lock lk(mu_);
  while (!stopping_) {
    // While the delivery thread waits in a request (up to its timeout) its periodic disk
    // work is the keeper's: windows expire, syncs and the fold journal stay on time.
    const auto due = in_request_ ? NextMaintenanceLocked() : std::nullopt;
    const auto woken = [this] { return stopping_ || keeper_due_; };
    if (due) {
      keeper_cv_.wait_until(lk, *due, woken);
    } else {
      keeper_cv_.wait(lk, woken);
    }
    if (stopping_) break;
    keeper_due_ = false;
    OpenHandOffLocked();
    if (in_request_) MaintainLocked(SteadyClock::now());
    if (TakeInHandedOffLocked()) cv_.notify_one();
  }
}

void ConsoleSink::AppendLocked(const Hit& hit) {
  if (!spool_->dirty()) dirty_since_ = SteadyClock::now();
  spool_->Append(hit);
  counters_.spooled++;
}

void ConsoleSink::Publish(const Hit& hit) { Publish(hit, SteadyClock::now()); }

void ConsoleSink::Publish(const Hit& hit, SteadyClock::time_point now) {
  bool worker_has_news = false;
  bool keeper_has_news = false;
  {
    std::unique_lock lk = LockUnlessHandedOff(&hit, now);
    if (!lk.owns_lock()) return;
    // Handed-off hits go first (order); here only when the hand-off was full, or closed
    // since it was looked at.
    if (handoff_open_.load(std::memory_order_relaxed)) worker_has_news |= TakeInHandedOffLocked();
    if (started_ && spool_->CapDue(CapMargin())) {
      // The rewrite is the keeper's, a thread that does nothing else (the delivery thread
      // can be inside a console request for its whole timeout).
      {
        std::lock_guard hk(handoff_mu_);
        PushHandOffLocked(hit, now, ApproxBytes(hit));
        handoff_open_.store(true, std::memory_order_release);
      }
      keeper_due_ = true;
      keeper_has_news = true;
    } else {
      worker_has_news |= TakeInLocked(hit, now);
    }
    // A worker inside a request cannot act on news (a first fold to journal, a new deadline):
    // the keeper can.
    if (worker_has_news && in_request_) keeper_has_news = keeper_due_ = true;
  }
  if (keeper_has_news) keeper_cv_.notify_one();
  // A wake-up per folded hit cost the worker a context switch for nothing.
  if (worker_has_news) cv_.notify_one();
}

std::unique_lock<std::mutex> ConsoleSink::LockUnlessHandedOff(const Hit* hit,
                                                             SteadyClock::time_point now) {
  std::unique_lock lk(mu_, std::defer_lock);
  // An open hand-off is taken even when mu_ is free: the keeper, due to rewrite, may not have
  // taken mu_ yet. mu_ busy and the hand-off closed: its holder may be the delivery thread,
  // which opens the hand-off right after taking mu_; a few yields give it that moment before
  // this thread blocks.
  constexpr int kTries = 8;
  for (int tries = 0;; ++tries) {
    const bool open = handoff_open_.load(std::memory_order_acquire);
    if (open && (hit == nullptr || TryHandOff(*hit, now))) return lk;
    if (lk.try_lock()) return lk;
    if (tries == kTries) {
      lk.lock();
      return lk;
    }
    std::this_thread::yield();
  }
}

bool ConsoleSink::TryHandOff(const Hit& hit, SteadyClock::time_point now) {
  std::lock_guard hk(handoff_mu_);
  if (!handoff_open_.load(std::memory_order_relaxed)) return false;  // emptied meanwhile
  const uint64_t bytes = ApproxBytes(hit);
  if (handoff_.size() >= cfg_.handoff_cap || handoff_bytes_ + bytes > cfg_.handoff_cap_bytes) {
    handoff_waits_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  PushHandOffLocked(hit, now, bytes);
  return true;
}

void ConsoleSink::PushHandOffLocked(const Hit& hit, SteadyClock::time_point now, uint64_t bytes) {
  handoff_.push_back({hit, now});
  handoff_bytes_ += bytes;
  handoff_pending_.store(handoff_.size(), std::memory_order_relaxed);
  handed_off_.fetch_add(1, std::memory_order_relaxed);
}

bool ConsoleSink::TakeInHandedOffLocked() {
  spool_->MakeRoom(CapMargin());  // the rewrite, while Publish keeps handing off
  bool news = false;
  for (;;) {
    std::vector<HandedOff> batch;  // a fresh one: a full hand-off's buffer is not kept
    {
      std::lock_guard hk(handoff_mu_);
      if (handoff_.empty()) {
        handoff_open_.store(false, std::memory_order_release);
        break;
      }
      batch.swap(handoff_);
      handoff_bytes_ = 0;
      handoff_pending_.store(0, std::memory_order_relaxed);
    }
    for (const HandedOff& h : batch) news |= TakeInLocked(h.hit, h.at);
  }
  spool_->WriteBatch();  // on disk as soon as a batch of the caller's would have been
  return news;
}

void ConsoleSink::OpenHandOffLocked() {
  std::lock_guard hk(handoff_mu_);
  handoff_open_.store(true, std::memory_order_release);
}

bool ConsoleSink::TakeInLocked(const Hit& hit, SteadyClock::time_point now) {
  counters_.published++;
  if (auto out = folder_.Offer(hit, now)) {
    // A worker that already waits for a spool that is dirty and not empty wakes within the
    // sync interval (or at the next delivery) and reads every deadline again then, a new
    // key's fold window among them: one more record needs no wake-up of its own.
    const bool news = !spool_->dirty() || spool_->empty();
    AppendLocked(*out);
    return news;
  }
  // Folded into an open window: no new deadline, nothing to send. Only the first fold
  // since the journal was written gives the worker a new time to wake (the journal).
  const bool news = !folds_dirty_;
  folds_dirty_ = true;
  return news;
}

void ConsoleSink::EndBatch() {
  // While the hand-off is open, whoever opened it (the keeper for the cap's rewrite, the
  // delivery thread around its own disk work) holds mu_, or is about to, and writes the batch
  // when it takes the hand-off in.
  std::unique_lock lk = LockUnlessHandedOff(nullptr, {});
  if (!lk.owns_lock()) return;
  spool_->WriteBatch();
}

uint64_t ConsoleSink::CapMargin() const {
  // Hand off this close to the cap; a small cap (tests) keeps most of itself for records.
  return std::min<uint64_t>(64 * 1024, cfg_.spool_cap_bytes / 4);
}

uint64_t ConsoleSink::ApproxBytes(const Hit& h) {
  return sizeof(HandedOff) + h.url.size() + h.norm.size() + h.method.size() + h.imds.size() +
         h.src.size() + h.owner.size() + h.cmdline.size() + h.exe.size() + h.ancestors.size() +
         h.container.size() + h.pod.size() + h.iface.size() + h.flags.size() + h.hook.size() +
         h.host.size() + h.user_agent.size();
}

void ConsoleSink::Flush() {
  std::lock_guard lk(mu_);
  TakeInHandedOffLocked();
  for (const Hit& h : folder_.DrainAll()) AppendLocked(h);
  spool_->Sync();
  WriteFoldJournalLocked();  // now spooled: the journal must not bring them back
  cv_.notify_one();
}

namespace {
std::string FoldJournalPath(const std::string& state_dir) { return state_dir + "/folds.pending"; }
}  // namespace

void ConsoleSink::RecoverFoldJournal() {
  const std::string path = FoldJournalPath(cfg_.state_dir);
  // Open windows, and records the spool held in memory: up to the spool's cap of those.
  const uint64_t limit = cfg_.spool_cap_bytes + (64u << 20);
  const auto data = ReadSmallFile(path, limit);
  if (!data) {  // none: the last run stopped cleanly or never folded
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) {
      Log(fmt::format("console: {} ({} bytes) cannot be read or is larger than {} bytes; its "
                      "counts are not recovered", path, st.st_size, limit));
    }
    return;
  }
  bool rest_bad = false;
  uint64_t hits = 0, requests = 0;
  for (std::string_view payload : ParseFrames(*data, &rest_bad)) {
    if (auto hit = DecodeHit(payload)) {
      spool_->Append(*hit);
      ++hits;
      requests += hit->count;
    } else {
      rest_bad = true;
    }
  }
  spool_->Sync();
  // Spooled, unless the disk refused them: then the journal is rewritten with just those
  // (the old one stays if that write fails too: counted twice, never not).
  if (spool_->held_in_memory() == 0) {
    ::unlink(path.c_str());
    FsyncDir(cfg_.state_dir);
  } else {
    WriteFoldJournalLocked();  // no other thread yet
  }
  if (hits > 0 || rest_bad) {
    Log(fmt::format("console: spooled {} folded follow-up hits ({} requests) that the last run "
                    "left pending{}",
                    hits, requests, rest_bad ? "; part of folds.pending was unreadable and skipped" : ""));
  }
}

void ConsoleSink::WriteFoldJournalLocked() {
  // What the journal lets go of must be in spool.log first (a kill -9 between the two finds
  // it in one or the other); what the disk refuses stays in the journal, below.
  spool_->WriteBatch();
  std::string data;
  uint64_t id = 0;
  for (const Hit& h : folder_.Pending()) data += EncodeFrame(++id, EncodeHit(h));
  // Spooled hits the disk refused are no more durable than open windows: they stay in the
  // journal until the spool has them on disk (a crash then counts them twice, never not).
  const uint64_t held = spool_->held_generation();
  spool_->AppendHeldFrames(&id, &data);
  const std::string path = FoldJournalPath(cfg_.state_dir);
  std::string error;
  bool ok = true;
  if (data.empty()) {
    ok = ::unlink(path.c_str()) == 0 || errno == ENOENT;
    if (!ok) error = "cannot remove " + path + ": " + ErrnoString(errno);
  } else {
    ok = AtomicWriteFile(path, data, 0600, &error, /*durable=*/false);
  }
  folds_dirty_ = !ok;
  if (ok) journaled_held_ = held;
  folds_written_ = SteadyClock::now();
  // A journal the disk refuses is tried again a little later each time (it may hold many
  // records), but within a second: once the disk takes it, new folds must be on it soon.
  journal_retry_delay_ = ok ? cfg_.sync_interval
                            : std::clamp(journal_retry_delay_ * 2, kJournalRetryFirst, kJournalRetryMax);
  if (!ok && !fold_journal_failing_) {
    Log(fmt::format("console: fold journal: {}; folded counts are kept in memory only until "
                    "it can be written", error));
  }
  fold_journal_failing_ = !ok;
}

void ConsoleSink::Stop() {
  {
    std::unique_lock lk(mu_);
    stopping_ = true;
    cv_.notify_all();
    keeper_cv_.notify_all();
    // A request the console may already have acted on gets a short grace period: aborting
    // it after the console recorded the hit would resend that hit at the next start.
    cv_.wait_for(lk, cfg_.stop_grace, [this] { return !in_request_; });
  }
  if (http_) http_->Abort();
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (keeper_.joinable()) keeper_.join();
  if (spool_) Flush();
}

std::string ConsoleSink::token_url() const {
  std::lock_guard lk(mu_);
  return token_url_;
}

void ConsoleSink::ScheduleRetryLocked(SteadyClock::time_point now) {
  consecutive_failures_++;
  const auto base = cfg_.backoff_initial.count() > 0 ? cfg_.backoff_initial
                                                     : std::chrono::milliseconds(1);
  auto delay = base;
  for (uint32_t i = 1; i < consecutive_failures_ && delay < cfg_.backoff_max; ++i) delay *= 2;
  delay = std::min(delay, cfg_.backoff_max);
  // Equal jitter: half fixed, half random, so a fleet restarted together spreads out.
  const auto half = delay.count() / 2;
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(half, 0));
  next_attempt_ = now + std::chrono::milliseconds(delay.count() - half + dist(rng_));
}

void ConsoleSink::MaintainLocked(SteadyClock::time_point now) {
  bool expired = false;
  for (const Hit& h : folder_.Expire(now)) {
    AppendLocked(h);
    expired = true;
  }
  if (spool_->dirty() && now >= dirty_since_ + cfg_.sync_interval) {
    spool_->Sync();
    // A sync the disk refused is tried again an interval later, not in a busy loop.
    if (spool_->dirty()) dirty_since_ = now;
  }
  // Records the disk refused, or took after refusing (the sync's rewrite, a delivery from
  // memory), change what the journal keeps.
  if (spool_->held_generation() != journaled_held_) folds_dirty_ = true;
  // Spooled follow-ups leave the journal at once; new folds at most every sync interval.
  if (expired || (folds_dirty_ && now >= folds_written_ + journal_retry_delay_)) {
    WriteFoldJournalLocked();
  }
}

std::optional<SteadyClock::time_point> ConsoleSink::NextMaintenanceLocked() const {
  std::optional<SteadyClock::time_point> wake = folder_.NextDeadline();
  auto earliest = [&wake](SteadyClock::time_point t) {
    if (!wake || t < *wake) wake = t;
  };
  if (spool_->dirty()) earliest(dirty_since_ + cfg_.sync_interval);
  if (folds_dirty_) earliest(folds_written_ + journal_retry_delay_);
  return wake;
}

void ConsoleSink::Run() {
  pthread_setname_np(pthread_self(), "nfq-console");
  // Whenever this thread holds mu_ the hand-off is open (opened right after each lock, taken
  // in and closed right before each unlock or wait): its disk work under mu_ (follow-ups of
  // expired windows, sync, journal, acks, Front's reads) never makes Publish wait.
  std::unique_lock lk(mu_);
  OpenHandOffLocked();
  // Around a request: mu_ is let go for it, with the hand-off taken in and closed first.
  auto release = [&] {
    in_request_ = true;
    TakeInHandedOffLocked();
    lk.unlock();
  };
  auto reacquire = [&] {
    lk.lock();
    OpenHandOffLocked();
    in_request_ = false;
    cv_.notify_all();
  };
  const std::string factory_host = RedactUrl(cfg_.factory_url);
  while (!stopping_) {
    auto now = SteadyClock::now();
    // Hits handed over so far go in before windows expire (they may belong in them).
    TakeInHandedOffLocked();
    OpenHandOffLocked();
    MaintainLocked(now);

    if (now >= next_attempt_ && token_url_.empty()) {
      release();
      const InstanceFacts facts =
          LookupInstanceFacts(*http_, cfg_.imds_base_url, cfg_.imds_timeout);
      const std::string name = cfg_.instance_name.empty() ? facts.instance_id : cfg_.instance_name;
      const std::string memo = !cfg_.memo.empty() ? cfg_.memo
                               : fmt::format("nfq-apeeper: instance metadata access on {}",
                                             name.empty() ? std::string("unknown host") : name);
      RegistrationResult r = RegisterToken(*http_, cfg_.factory_url, facts, cfg_.instance_name,
                                           memo, cfg_.connect_timeout, cfg_.request_timeout);
      std::string save_error;
      if (r.ok && !SaveTokenUrl(cfg_.state_dir, cfg_.factory_url, r.token_url, &save_error)) {
        // Keep going with the token in memory; the next start registers again.
        Log("console: token registered but not stored: " + save_error);
      }
      reacquire();
      if (stopping_) break;
      now = SteadyClock::now();
      if (r.ok) {
        token_url_ = r.token_url;
        counters_.registrations++;
        counters_.registered = true;
        consecutive_failures_ = 0;
        next_attempt_ = now;
        SaveSnapshotLocked();
        Log(fmt::format("console: registered with {} (instance {}, zone {}); token on {}",
                        factory_host, facts.instance_id.empty() ? "-" : facts.instance_id,
                        facts.availability_zone.empty() ? "-" : facts.availability_zone,
                        RedactUrl(r.token_url)));
      } else {
        counters_.registration_failures++;
        counters_.last_error = r.error;
        ScheduleRetryLocked(now);
        if (consecutive_failures_ == 1 || consecutive_failures_ % 10 == 0) {
          Log(fmt::format("console: registration with {} failed: {}; retrying with backoff "
                          "(attempt {})",
                          factory_host, r.error, consecutive_failures_));
        }
      }
      continue;
    }

    if (now >= next_attempt_ && !token_url_.empty() && !spool_->empty()) {
      std::optional<Spool::Record> rec = spool_->Front();
      if (!rec) continue;
      spool_->set_front_in_flight(true);
      const std::string url = token_url_ +
                              (token_url_.find('?') == std::string::npos ? "?" : "&") +
                              HitQueryString(rec->hit);
      if (consecutive_failures_ > 0) counters_.retries++;
      release();
      HttpRequest req;
      req.url = url;
      req.connect_timeout = cfg_.connect_timeout;
      req.total_timeout = cfg_.request_timeout;
      req.max_body = 64 * 1024;
      const HttpResponse resp = http_->Perform(req);
      reacquire();
      now = SteadyClock::now();
      if (resp.aborted) {
        spool_->set_front_in_flight(false);
        break;
      }
      if (resp.ok()) {
        spool_->Ack(rec->id);  // an fsync, perhaps a compaction: the hand-off is open
        counters_.delivered++;
        // A backlog is delivered one record after another without a wait: SIGUSR1's figures
        // (RecentCounters) follow it.
        SaveSnapshotLocked();
        if (consecutive_failures_ > 0) {
          Log(fmt::format("console: delivery to {} works again after {} failed attempts",
                          RedactUrl(token_url_), consecutive_failures_));
        }
        consecutive_failures_ = 0;
        next_attempt_ = now;
      } else {
        spool_->set_front_in_flight(false);
        counters_.failures++;
        counters_.last_error = resp.Describe();
        ScheduleRetryLocked(now);
        if (consecutive_failures_ == 1 || consecutive_failures_ % 10 == 0) {
          Log(fmt::format("console: delivery to {} failed: {}; {} hits spooled, retrying with "
                          "backoff (attempt {})",
                          RedactUrl(token_url_), resp.Describe(), spool_->stats().pending_records,
                          consecutive_failures_));
        }
      }
      continue;
    }

    SaveSnapshotLocked();  // for RecentCounters while the next pass holds mu_
    std::optional<SteadyClock::time_point> wake = NextMaintenanceLocked();
    if (token_url_.empty() || !spool_->empty()) {
      if (!wake || next_attempt_ < *wake) wake = next_attempt_;
    }
    if (TakeInHandedOffLocked()) continue;  // new records: their deadlines first
    if (wake) {
      cv_.wait_until(lk, *wake);
    } else {
      cv_.wait(lk);
    }
    OpenHandOffLocked();
  }
}

ConsoleSink::Counters ConsoleSink::counters() const {
  std::lock_guard lk(mu_);
  return CountersLocked();
}

ConsoleSink::Counters ConsoleSink::RecentCounters() const {
  std::unique_lock lk(mu_, std::try_to_lock);
  if (!lk) {
    // One pass's figures, all of them: they add up (fresh hand-off counters beside an older
    // `published` would not).
    std::lock_guard sk(snapshot_mu_);
    return snapshot_;
  }
  return CountersLocked();
}

void ConsoleSink::SaveSnapshotLocked() {
  Counters c = CountersLocked();
  std::lock_guard sk(snapshot_mu_);
  snapshot_ = std::move(c);
}

ConsoleSink::Counters ConsoleSink::CountersLocked() const {
  Counters c = counters_;
  c.folded = folder_.folded();
  c.handed_off = handed_off_.load(std::memory_order_relaxed);
  c.handoff_waits = handoff_waits_.load(std::memory_order_relaxed);
  c.handoff_pending = handoff_pending_.load(std::memory_order_relaxed);
  const Spool::Stats s = spool_->stats();
  c.spool_records = s.pending_records;
  c.spool_bytes = s.file_bytes;
  c.spool_summarised = s.summarised_records;
  c.spool_summaries = s.summaries;
  c.spool_corrupt = s.corrupt_records;
  c.spool_write_errors = s.write_errors;
  c.spool_memory_only = s.memory_only;
  return c;
}

std::string ConsoleSink::FormatCounters(const Counters& c) {
  return fmt::format(
      "console: registered={} published={} folded={} spooled={} delivered={} failures={} "
      "retries={} registrations={} registration_failures={} spool_records={} spool_bytes={} "
      "spool_summarised={} spool_summaries={} spool_corrupt={} spool_write_errors={} "
      "spool_memory_only={} handed_off={} handoff_waits={} handoff_pending={}",
      c.registered ? "yes" : "no", c.published, c.folded, c.spooled, c.delivered, c.failures,
      c.retries, c.registrations, c.registration_failures, c.spool_records, c.spool_bytes,
      c.spool_summarised, c.spool_summaries, c.spool_corrupt, c.spool_write_errors,
      c.spool_memory_only, c.handed_off, c.handoff_waits, c.handoff_pending);
}

}  // namespace nfq::alerting
