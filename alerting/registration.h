// Registration with the Canary token factory and the stored token.
//
// token.json (mode 0600 in the state dir, written atomically):
//   {"factory_sha256": "<hex>", "token_url": "<token URL>", "registered": "<ISO time>"}
// Only a hash of the factory URL is stored, so the file reveals which factory was used to
// nobody who does not already know it; the token URL is stored in clear (it must be, to
// send hits) and is as secret as the factory URL: never logged beyond its host.
// Thread-safe (no shared state); the HttpClient passed in must be the caller's own.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "alerting/http_client.h"

namespace nfq::alerting {

struct InstanceFacts {
  std::string instance_id;
  std::string availability_zone;
};

// IMDSv2 best effort: PUT /latest/api/token, then GET instance-id and
// placement/availability-zone with the token. Empty fields on any failure. The token value
// stays in this function.
InstanceFacts LookupInstanceFacts(HttpClient& http, const std::string& imds_base_url,
                                  std::chrono::milliseconds timeout);

struct RegistrationResult {
  bool ok = false;
  std::string token_url;
  std::string error;  // one line, no secrets
};

// POST the form (instanceid, region, instancename, memo) to factory_url and parse the reply.
RegistrationResult RegisterToken(HttpClient& http, const std::string& factory_url,
                                 const InstanceFacts& facts, const std::string& instance_name,
                                 const std::string& memo, std::chrono::milliseconds connect_timeout,
                                 std::chrono::milliseconds total_timeout);

// Parses a factory reply: {"result":"success","canarytoken":{"url":"http(s)://..."}}.
RegistrationResult ParseFactoryReply(const std::string& body);

// The stored token URL for this factory URL (any stored token when factory_url is empty).
std::optional<std::string> LoadTokenUrl(const std::string& state_dir,
                                        const std::string& factory_url);
bool SaveTokenUrl(const std::string& state_dir, const std::string& factory_url,
                  const std::string& token_url, std::string* error);

std::string Sha256Hex(std::string_view data);

}  // namespace nfq::alerting
