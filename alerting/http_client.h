// A small blocking HTTP client for the delivery thread: libcurl multi with a wakeup so another
// thread can abort a request in progress (Stop must not wait for a hung console).
// One client per thread: Perform is not thread-safe; Abort/ClearAbort are.
// REQUIRES: curl_global_init was called (the daemon's main, before any thread).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>

namespace nfq::alerting {

struct CurlEasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;

struct HttpOptions {
  std::string proxy;       // empty: no proxy at all (environment proxies are ignored)
  std::string ca_file;     // empty: the system bundle
  std::string user_agent;  // "nfq-apeeper/<version>"
  int so_mark = 0;         // 0: none. Set on every socket before connect.
  std::function<void(std::string_view)> log;
};

struct HttpRequest {
  std::string method = "GET";  // GET, POST (body sent), PUT (body sent, may be empty)
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{15000};
  size_t max_body = 64 * 1024;  // longer replies fail (error "reply too large")
};

struct HttpResponse {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string error;  // one line, no URL path or query (secrets); empty when the transfer worked
  bool aborted = false;
  bool ok() const { return code == CURLE_OK && status >= 200 && status < 300; }
  // "HTTP 500", "timeout: ...", ...: what to log for a failure.
  std::string Describe() const;
};

class HttpClient {
 public:
  static std::unique_ptr<HttpClient> Create(HttpOptions options, std::string* error);

  HttpResponse Perform(const HttpRequest& request);
  // Make the request in progress (and any later one until ClearAbort) fail at once.
  void Abort();
  void ClearAbort() { abort_.store(false); }

 private:
  HttpClient(HttpOptions options, CurlEasy easy, CurlMulti multi);
  static int SockoptThunk(void* self, curl_socket_t fd, curlsocktype purpose);
  static size_t WriteThunk(char* data, size_t size, size_t n, void* self);

  HttpOptions opts_;
  CurlEasy easy_;
  CurlMulti multi_;
  std::atomic<bool> abort_{false};
  std::string* sink_ = nullptr;
  size_t sink_cap_ = 0;
  bool overflow_ = false;
  bool mark_warned_ = false;
};

// "https://console.example:8443" — scheme, host and port only: what logs may show of a URL.
std::string RedactUrl(const std::string& url);
// True for a well-formed http:// or https:// URL with a host.
bool IsHttpUrl(const std::string& url);

}  // namespace nfq::alerting
