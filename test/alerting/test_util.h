// Test helpers for alerting: temp dirs, polling, and the Python mock console as a child
// process (mock_console.py next to this file). Header-only: only *_test.cc files are built.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace nfq::alerting::testing {

inline const bool kCurlGlobal = [] {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return true;
}();

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nfq-alerting-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline bool WaitFor(const std::function<bool()>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

inline int RunCommand(const std::string& cmd) { return std::system(cmd.c_str()); }

// The mock console child process. Records survive Stop/Start (they live in record_dir).
class MockConsole {
 public:
  struct Options {
    std::string tls_cert;
    std::string tls_key;
    std::string mode = "ok";
  };
  explicit MockConsole(std::string record_dir) : dir_(std::move(record_dir)) {}
  MockConsole(std::string record_dir, Options o)
      : dir_(std::move(record_dir)), opts_(std::move(o)) {}
  ~MockConsole() { Stop(); }

  // Starts on port_ (0 the first time: ephemeral). True when it listens.
  bool Start() {
    const std::string script =
        (std::filesystem::path(__FILE__).parent_path() / "mock_console.py").string();
    const std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {"python3",      script, "--record-dir", dir_,
                                     "--port-file",  port_file, "--port", std::to_string(port_),
                                     "--mode",       opts_.mode};
    if (!opts_.tls_cert.empty()) {
      argv.insert(argv.end(), {"--tls-cert", opts_.tls_cert, "--tls-key", opts_.tls_key});
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    if (posix_spawnp(&pid_, "python3", nullptr, nullptr, cargv.data(), environ) != 0) {
      pid_ = -1;
      return false;
    }
    return WaitFor([&] {
      std::ifstream in(port_file);
      int p = 0;
      if (in >> p && p > 0) {
        port_ = p;
        return true;
      }
      return false;
    });
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  int port() const { return port_; }
  std::string base_url() const {
    return std::string(opts_.tls_cert.empty() ? "http" : "https") + "://127.0.0.1:" +
           std::to_string(port_);
  }
  // Plain-HTTP IMDS base (same server; only usable when not TLS).
  std::string factory_url(const std::string& name = "a") const {
    return base_url() + "/factory/" + name;
  }
  bool SetMode(const std::string& mode) {
    CURL* c = curl_easy_init();
    const std::string url = base_url() + "/_mode?m=" + mode;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) {
      return s * n;
    });
    const CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK;
  }
  std::vector<nlohmann::json> Hits() const { return ReadJsonLines(dir_ + "/hits.jsonl"); }
  std::vector<nlohmann::json> Regs() const { return ReadJsonLines(dir_ + "/regs.jsonl"); }
  std::vector<nlohmann::json> Imds() const { return ReadJsonLines(dir_ + "/imds.jsonl"); }

 private:
  std::string dir_;
  Options opts_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Collects log lines from a sink (thread-safe).
class LogCapture {
 public:
  std::function<void(std::string_view)> fn() {
    return [this](std::string_view l) {
      std::lock_guard lk(mu_);
      lines_.emplace_back(l);
    };
  }
  std::vector<std::string> lines() const {
    std::lock_guard lk(mu_);
    return lines_;
  }
  std::string joined() const {
    std::string s;
    for (const auto& l : lines()) s += l + "\n";
    return s;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// Runs fn with writes past `limit` bytes of a file refused (EFBIG), as a full disk refuses
// them (ENOSPC). For the whole process: child processes started before are not limited.
template <class Fn>
void WithFileSizeLimit(uint64_t limit, Fn fn) {
  auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit limited = saved;
  limited.rlim_cur = limit;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limited), 0);
  fn();
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);
}

}  // namespace nfq::alerting::testing
