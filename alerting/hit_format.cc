#include "alerting/hit_format.h"

#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nfq::alerting {
namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

std::string IdOrEmpty(int64_t v) { return v < 0 ? std::string() : std::to_string(v); }

Hit::Clock::time_point EventTime(const Hit& hit) {
  if (hit.last != Hit::Clock::time_point{}) return hit.last;
  if (hit.first != Hit::Clock::time_point{}) return hit.first;
  return Hit::Clock::now();
}

}  // namespace

std::string FormatIsoTime(Hit::Clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  auto secs = ms.count() / 1000;
  auto millis = ms.count() % 1000;
  if (millis < 0) {  // before 1970: floor, not truncate
    millis += 1000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string HitQueryString(const Hit& hit) {
  std::string q;
  auto add = [&q](std::string_view key, std::string_view value) {
    if (!q.empty()) q.push_back('&');
    q.append(key);
    q.push_back('=');
    q.append(UrlEncode(value));
  };
  add("url", hit.url);
  add("norm", hit.norm);
  add("method", hit.method);
  add("imds", hit.imds);
  add("src", hit.src);
  add("uid", IdOrEmpty(hit.uid));
  add("pid", IdOrEmpty(hit.pid));
  add("owner", hit.owner);
  add("cmdline", hit.cmdline);
  add("count", std::to_string(hit.count));
  add("first", FormatIsoTime(hit.first));
  add("last", FormatIsoTime(hit.last));
  add("flags", hit.flags);
  return q;
}

std::string HitJsonLine(const Hit& hit) {
  nlohmann::ordered_json j;
  j["time"] = FormatIsoTime(EventTime(hit));
  j["method"] = hit.method;
  j["url"] = hit.url;
  j["norm"] = hit.norm;
  j["imds"] = hit.imds;
  j["src"] = hit.src;
  j["uid"] = hit.uid;
  j["gid"] = hit.gid;
  j["pid"] = hit.pid;
  j["owner"] = hit.owner;
  j["cmdline"] = hit.cmdline;
  if (!hit.exe.empty()) j["exe"] = hit.exe;
  if (!hit.ancestors.empty()) j["ancestors"] = hit.ancestors;
  if (!hit.container.empty()) j["container"] = hit.container;
  if (!hit.pod.empty()) j["pod"] = hit.pod;
  if (!hit.iface.empty()) j["iface"] = hit.iface;
  j["count"] = hit.count;
  j["first"] = FormatIsoTime(hit.first);
  j["last"] = FormatIsoTime(hit.last);
  j["flags"] = hit.flags;
  j["queue"] = hit.queue;
  j["hook"] = hit.hook;
  if (!hit.host.empty()) j["host"] = hit.host;
  if (!hit.user_agent.empty()) j["user_agent"] = hit.user_agent;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string MergeFlags(std::string_view a, std::string_view b) {
  std::string out;
  auto add_all = [&out](std::string_view list) {
    while (!list.empty()) {
      const auto comma = list.find(',');
      const std::string_view item = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (item.empty()) continue;
      bool seen = false;
      std::string_view rest = out;
      while (!rest.empty() && !seen) {
        const auto c = rest.find(',');
        seen = rest.substr(0, c) == item;
        rest = c == std::string_view::npos ? std::string_view() : rest.substr(c + 1);
      }
      if (seen) continue;
      if (!out.empty()) out.push_back(',');
      out.append(item);
    }
  };
  add_all(a);
  add_all(b);
  return out;
}

std::string EscapeForLog(std::string_view s, bool quoted) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || (c == 0x20 && !quoted) || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

std::string HitTextLine(const Hit& hit) {
  auto or_dash = [](std::string_view v) { return v.empty() ? std::string("-") : EscapeForLog(v); };
  return fmt::format(
      "{} {} {} norm={} src={} imds={} uid={} pid={} owner={} count={} flags={} hook={} "
      "cmdline=\"{}\"",
      FormatIsoTime(EventTime(hit)), or_dash(hit.method), or_dash(hit.url), or_dash(hit.norm),
      or_dash(hit.src), or_dash(hit.imds), hit.uid < 0 ? "-" : std::to_string(hit.uid),
      hit.pid < 0 ? "-" : std::to_string(hit.pid), or_dash(hit.owner), hit.count,
      or_dash(hit.flags), or_dash(hit.hook), EscapeForLog(hit.cmdline, /*quoted=*/true));
}

}  // namespace nfq::alerting
