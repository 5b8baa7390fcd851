#include "sensor/container_address.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <nlohmann/json.hpp>

namespace nfq::sensor {
namespace {

namespace fs = std::filesystem;

// State files are small; anything larger is not one.
constexpr std::uintmax_t kMaxStateFile = 1 << 20;

bool ReadSmall(const fs::path& path, std::string* out) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || size > kMaxStateFile) return false;
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

bool IsHexId(const std::string& s) {
  if (s.size() < 12 || s.size() > 128) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

ContainerAddressMap::ContainerAddressMap(std::string root, Clock::duration refresh,
                                         size_t max_entries)
    : root_(std::move(root)), refresh_(refresh), max_entries_(max_entries) {}

std::string ContainerAddressMap::Find(const std::string& address, Clock::time_point now) {
  if (!loaded_ || now - loaded_at_ >= refresh_) {
    Reload();
    loaded_ = true;
    loaded_at_ = now;
  }
  const auto it = by_address_.find(address);
  return it == by_address_.end() ? std::string() : it->second;
}

void ContainerAddressMap::Reload() {
  by_address_.clear();
  ReadCni();
  ReadDocker();
}

void ContainerAddressMap::Add(const std::string& address, std::string container) {
  if (address.empty() || by_address_.size() >= max_entries_) return;
  by_address_.emplace(address, std::move(container));
}

void ContainerAddressMap::ReadCni() {
  std::error_code ec;
  const fs::path networks = fs::path(root_) / "var/lib/cni/networks";
  for (fs::directory_iterator net(networks, ec), end; !ec && net != end; net.increment(ec)) {
    if (!net->is_directory(ec)) continue;
    for (fs::directory_iterator file(net->path(), ec), fend; !ec && file != fend;
         file.increment(ec)) {
      const std::string name = file->path().filename().string();
      // Files are named by address; "last_reserved_ip.0" and "lock" are the plugin's own.
      if (name.find_first_not_of("0123456789abcdef.:") != std::string::npos) continue;
      std::string text;
      if (!ReadSmall(file->path(), &text)) continue;
      const std::string id = text.substr(0, text.find_first_of("\r\n"));
      if (IsHexId(id)) Add(name, "cni://" + id);
    }
  }
}

void ContainerAddressMap::ReadDocker() {
  std::error_code ec;
  const fs::path containers = fs::path(root_) / "var/lib/docker/containers";
  for (fs::directory_iterator dir(containers, ec), end; !ec && dir != end; dir.increment(ec)) {
    const std::string id = dir->path().filename().string();
    if (!IsHexId(id)) continue;
    std::string text;
    if (!ReadSmall(dir->path() / "config.v2.json", &text)) continue;
    const auto config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!config.is_object()) continue;
    const auto settings = config.find("NetworkSettings");
    if (settings == config.end() || !settings->is_object()) continue;
    const auto nets = settings->find("Networks");
    if (nets == settings->end() || !nets->is_object()) continue;
    for (const auto& net : *nets) {
      if (!net.is_object()) continue;
      for (const char* field : {"IPAddress", "GlobalIPv6Address"}) {
        const auto value = net.find(field);
        if (value != net.end() && value->is_string()) Add(value->get<std::string>(), "docker://" + id);
      }
    }
  }
}

}  // namespace nfq::sensor
