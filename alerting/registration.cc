#include "alerting/registration.h"

#include <openssl/evp.h>

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alerting/file_util.h"
#include "alerting/hit_format.h"

namespace nfq::alerting {
namespace {

std::string TokenPath(const std::string& dir) { return dir + "/token.json"; }

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", md[i]);
  return out;
}

InstanceFacts LookupInstanceFacts(HttpClient& http, const std::string& imds_base_url,
                                  std::chrono::milliseconds timeout) {
  InstanceFacts facts;
  if (imds_base_url.empty()) return facts;
  HttpRequest put;
  put.method = "PUT";
  put.url = imds_base_url + "/latest/api/token";
  put.headers = {"X-aws-ec2-metadata-token-ttl-seconds: 60"};
  put.connect_timeout = timeout;
  put.total_timeout = timeout;
  put.max_body = 4096;
  HttpResponse token = http.Perform(put);
  const std::string value = Trimmed(token.body);
  const bool printable = std::all_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!token.ok() || value.empty() || !printable) return facts;  // no header injection
  const std::string token_header = "X-aws-ec2-metadata-token: " + value;
  auto get = [&](const char* path) -> std::string {
    HttpRequest req;
    req.url = imds_base_url + path;
    req.headers = {token_header};
    req.connect_timeout = timeout;
    req.total_timeout = timeout;
    req.max_body = 256;
    HttpResponse r = http.Perform(req);
    return r.ok() ? Trimmed(r.body) : std::string();
  };
  facts.instance_id = get("/latest/meta-data/instance-id");
  facts.availability_zone = get("/latest/meta-data/placement/availability-zone");
  return facts;
}

RegistrationResult ParseFactoryReply(const std::string& body) {
  RegistrationResult r;
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "factory reply is not JSON";
    return r;
  }
  const auto result = j.find("result");
  if (result == j.end() || !result->is_string() || *result != "success") {
    r.error = "factory reply does not say success";
    return r;
  }
  const auto token = j.find("canarytoken");
  if (token == j.end() || !token->is_object() || !token->contains("url") ||
      !(*token)["url"].is_string()) {
    r.error = "factory reply has no canarytoken.url";
    return r;
  }
  const std::string url = (*token)["url"].get<std::string>();
  if (!IsHttpUrl(url)) {
    r.error = "factory reply's token URL is not http(s)";
    return r;
  }
  r.ok = true;
  r.token_url = url;
  return r;
}

RegistrationResult RegisterToken(HttpClient& http, const std::string& factory_url,
                                 const InstanceFacts& facts, const std::string& instance_name,
                                 const std::string& memo, std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds total_timeout) {
  HttpRequest req;
  req.method = "POST";
  req.url = factory_url;
  req.headers = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"};
  req.body = "instanceid=" + UrlEncode(facts.instance_id) +
             "&region=" + UrlEncode(facts.availability_zone) +
             "&instancename=" + UrlEncode(instance_name) + "&memo=" + UrlEncode(memo);
  req.connect_timeout = connect_timeout;
  req.total_timeout = total_timeout;
  req.max_body = 64 * 1024;
  HttpResponse resp = http.Perform(req);
  if (!resp.ok()) {
    RegistrationResult r;
    r.error = resp.Describe();
    return r;
  }
  return ParseFactoryReply(resp.body);
}

std::optional<std::string> LoadTokenUrl(const std::string& state_dir,
                                        const std::string& factory_url) {
  auto text = ReadSmallFile(TokenPath(state_dir), 64 * 1024);
  if (!text) return std::nullopt;
  const auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("token_url") ||
      !j["token_url"].is_string() || !j.contains("factory_sha256") ||
      !j["factory_sha256"].is_string()) {
    return std::nullopt;
  }
  if (!factory_url.empty() && j["factory_sha256"] != Sha256Hex(factory_url)) return std::nullopt;
  std::string url = j["token_url"].get<std::string>();
  if (!IsHttpUrl(url)) return std::nullopt;
  return url;
}

bool SaveTokenUrl(const std::string& state_dir, const std::string& factory_url,
                  const std::string& token_url, std::string* error) {
  nlohmann::ordered_json j;
  j["factory_sha256"] = Sha256Hex(factory_url);
  j["token_url"] = token_url;
  j["registered"] = FormatIsoTime(std::chrono::system_clock::now());
  return AtomicWriteFile(TokenPath(state_dir), j.dump(2) + "\n", 0600, error);
}

}  // namespace nfq::alerting
