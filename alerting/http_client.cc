#include "alerting/http_client.h"

#include <sys/socket.h>

#include <cerrno>

#include <fmt/format.h>

#include "alerting/file_util.h"

namespace nfq::alerting {
namespace {

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string UrlPart(CURLU* u, CURLUPart part) {
  char* v = nullptr;
  if (curl_url_get(u, part, &v, 0) != CURLUE_OK || v == nullptr) return {};
  std::string s(v);
  curl_free(v);
  return s;
}

}  // namespace

std::string RedactUrl(const std::string& url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return "<unparsable URL>";
  }
  std::string out = UrlPart(u.get(), CURLUPART_SCHEME) + "://" + UrlPart(u.get(), CURLUPART_HOST);
  const std::string port = UrlPart(u.get(), CURLUPART_PORT);
  if (!port.empty()) out += ":" + port;
  return out;
}

bool IsHttpUrl(const std::string& url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return false;
  const std::string scheme = UrlPart(u.get(), CURLUPART_SCHEME);
  return (scheme == "http" || scheme == "https") && !UrlPart(u.get(), CURLUPART_HOST).empty();
}

std::string HttpResponse::Describe() const {
  if (aborted) return "aborted (stopping)";
  if (code != CURLE_OK) return error.empty() ? curl_easy_strerror(code) : error;
  return fmt::format("HTTP {}", status);
}

std::unique_ptr<HttpClient> HttpClient::Create(HttpOptions options, std::string* error) {
  CurlEasy easy(curl_easy_init());
  CurlMulti multi(curl_multi_init());
  if (!easy || !multi) {
    *error = "libcurl initialisation failed";
    return nullptr;
  }
  return std::unique_ptr<HttpClient>(
      new HttpClient(std::move(options), std::move(easy), std::move(multi)));
}

HttpClient::HttpClient(HttpOptions options, CurlEasy easy, CurlMulti multi)
    : opts_(std::move(options)), easy_(std::move(easy)), multi_(std::move(multi)) {}

void HttpClient::Abort() {
  abort_.store(true);
  curl_multi_wakeup(multi_.get());
}

int HttpClient::SockoptThunk(void* self, curl_socket_t fd, curlsocktype purpose) {
  auto* c = static_cast<HttpClient*>(self);
  if (purpose != CURLSOCKTYPE_IPCXN || c->opts_.so_mark == 0) return CURL_SOCKOPT_OK;
  const int mark = c->opts_.so_mark;
  if (::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0 && !c->mark_warned_) {
    // Without CAP_NET_ADMIN the mark is refused; the request still goes out (it may then be
    // queued to our own sensor, which ignores our User-Agent).
    c->mark_warned_ = true;
    if (c->opts_.log) {
      c->opts_.log(fmt::format("console: cannot set SO_MARK {:#x}: {}", mark, ErrnoString(errno)));
    }
  }
  return CURL_SOCKOPT_OK;
}

size_t HttpClient::WriteThunk(char* data, size_t size, size_t n, void* self) {
  auto* c = static_cast<HttpClient*>(self);
  const size_t len = size * n;
  if (c->sink_->size() + len > c->sink_cap_) {
    c->overflow_ = true;
    return 0;  // CURLE_WRITE_ERROR
  }
  c->sink_->append(data, len);
  return len;
}

HttpResponse HttpClient::Perform(const HttpRequest& req) {
  HttpResponse resp;
  CURL* e = easy_.get();
  curl_easy_reset(e);
  char errbuf[CURL_ERROR_SIZE] = {};
  sink_ = &resp.body;
  sink_cap_ = req.max_body;
  overflow_ = false;

  std::unique_ptr<curl_slist, SlistDeleter> headers;
  for (const std::string& h : req.headers) {
    headers.reset(curl_slist_append(headers.release(), h.c_str()));
  }
  headers.reset(curl_slist_append(headers.release(), "Expect:"));

  curl_easy_setopt(e, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, opts_.user_agent.c_str());
  // An empty string disables proxies, including http_proxy/HTTPS_PROXY from the environment.
  curl_easy_setopt(e, CURLOPT_PROXY, opts_.proxy.c_str());
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
  if (!opts_.ca_file.empty()) {
    curl_easy_setopt(e, CURLOPT_CAINFO, opts_.ca_file.c_str());
    curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, opts_.ca_file.c_str());
  }
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout.count()));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                   std::max(1L, static_cast<long>(req.total_timeout.count() / 1000)));
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpClient::WriteThunk);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, &HttpClient::SockoptThunk);
  curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, this);
  if (req.method == "POST" || req.method == "PUT") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req.body.c_str());
    if (req.method == "PUT") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
  } else if (req.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }

  curl_multi_add_handle(multi_.get(), e);
  resp.code = CURLE_OK;
  bool done = false;
  while (!done) {
    if (abort_.load()) {
      resp.aborted = true;
      resp.code = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    int running = 0;
    if (curl_multi_perform(multi_.get(), &running) != CURLM_OK) {
      resp.code = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
      if (msg->msg == CURLMSG_DONE) {
        resp.code = msg->data.result;
        done = true;
      }
    }
    if (!done && running == 0) break;  // nothing running and no result: treat as done
    if (!done) curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr);
  }
  curl_multi_remove_handle(multi_.get(), e);
  sink_ = nullptr;
  if (resp.code == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);

  if (resp.aborted) {
    resp.error = "aborted (stopping)";
  } else if (resp.code == CURLE_WRITE_ERROR && overflow_) {
    resp.error = fmt::format("reply larger than {} bytes", req.max_body);
  } else if (resp.code == CURLE_SSL_CACERT_BADFILE) {
    resp.error = fmt::format(
        "cannot load the CA bundle {}: {} (install ca-certificates or pass --ca-file)",
        opts_.ca_file.empty() ? std::string("(system default)") : opts_.ca_file,
        errbuf[0] ? errbuf : curl_easy_strerror(resp.code));
  } else if (resp.code == CURLE_PEER_FAILED_VERIFICATION) {
    resp.error = fmt::format(
        "TLS certificate of {} not trusted: {} (wrong CA? pass the console's CA with --ca-file)",
        RedactUrl(req.url), errbuf[0] ? errbuf : curl_easy_strerror(resp.code));
  } else if (resp.code != CURLE_OK) {
    resp.error = fmt::format("{}: {}", curl_easy_strerror(resp.code),
                             errbuf[0] ? errbuf : "no detail");
  }
  return resp;
}

}  // namespace nfq::alerting
