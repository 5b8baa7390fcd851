#include "alerting/hit_format.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>

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
  // Civil-calendar arithmetic, not gmtime_r (which takes glibc's time zone lock) and
  // fmt::format: each event line carries three times, and this was a third of the alert
  // thread's time at tens of thousands of hits a second.
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);  // before 1970: floor, not truncate
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  const int year = static_cast<int>(date.year());
  if (year < 0 || year > 9999) {
    return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", year,
                       static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                       time.hours().count(), time.minutes().count(), time.seconds().count(),
                       time.subseconds().count());
  }
  char out[] = "0000-00-00T00:00:00.000Z";
  auto put = [&out](size_t at, size_t width, long value) {
    for (size_t i = width; i-- > 0; value /= 10) out[at + i] = static_cast<char>('0' + value % 10);
  };
  put(0, 4, year);
  put(5, 2, static_cast<long>(static_cast<unsigned>(date.month())));
  put(8, 2, static_cast<long>(static_cast<unsigned>(date.day())));
  put(11, 2, static_cast<long>(time.hours().count()));
  put(14, 2, static_cast<long>(time.minutes().count()));
  put(17, 2, static_cast<long>(time.seconds().count()));
  put(20, 3, static_cast<long>(time.subseconds().count()));
  return std::string(out, sizeof out - 1);
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

namespace {

// True when no byte of s needs escaping in JSON: printable ASCII other than '"' and '\\'.
bool IsPlainJson(std::string_view s) {
  static constexpr auto kPlain = [] {
    std::array<bool, 256> plain{};
    for (int c = 0x20; c < 0x7f; ++c) plain[static_cast<size_t>(c)] = c != '"' && c != '\\';
    return plain;
  }();
  return std::all_of(s.begin(), s.end(), [](char c) { return kPlain[static_cast<unsigned char>(c)]; });
}

// Appends s as a JSON string. Plain printable ASCII (nearly every field of nearly every hit)
// is copied as it is; anything else is escaped by nlohmann::json, invalid UTF-8 replaced by
// U+FFFD, so the output is byte for byte what the library makes (hit_format_test checks).
void AppendJsonString(std::string& out, std::string_view s) {
  if (IsPlainJson(s)) {
    out.push_back('"');
    out.append(s);
    out.push_back('"');
    return;
  }
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string HitJsonLine(const Hit& hit) {
  std::string out;
  AppendHitJsonLine(hit, &out);
  return out;
}

void AppendHitJsonLine(const Hit& hit, std::string* line) {
  // Field by field rather than through a json object: building and freeing the object was
  // about a tenth of the daemon's CPU under load (one line per hit).
  std::string& out = *line;
  out.reserve(out.size() + 384 + hit.url.size() + hit.norm.size() + hit.cmdline.size() +
              hit.ancestors.size() + hit.user_agent.size());
  bool first_field = true;
  auto key = [&](std::string_view name) {
    out.append(first_field ? "{\"" : ",\"");
    first_field = false;
    out.append(name);
    out.append("\":");
  };
  auto text = [&](std::string_view name, std::string_view value) {
    key(name);
    AppendJsonString(out, value);
  };
  auto number = [&](std::string_view name, auto value) {
    key(name);
    const fmt::format_int digits(value);
    out.append(digits.data(), digits.size());
  };
  auto optional_text = [&](std::string_view name, std::string_view value) {
    if (!value.empty()) text(name, value);
  };
  // A hit of its own has one time for all three: formatted once.
  const Hit::Clock::time_point event_time = EventTime(hit);
  const std::string time = FormatIsoTime(event_time);
  auto time_text = [&](Hit::Clock::time_point t) { return t == event_time ? time : FormatIsoTime(t); };
  text("time", time);
  text("method", hit.method);
  text("url", hit.url);
  text("norm", hit.norm);
  text("imds", hit.imds);
  text("src", hit.src);
  number("uid", hit.uid);
  number("gid", hit.gid);
  number("pid", hit.pid);
  text("owner", hit.owner);
  text("cmdline", hit.cmdline);
  optional_text("exe", hit.exe);
  optional_text("ancestors", hit.ancestors);
  optional_text("container", hit.container);
  optional_text("pod", hit.pod);
  optional_text("iface", hit.iface);
  number("count", hit.count);
  text("first", time_text(hit.first));
  text("last", time_text(hit.last));
  text("flags", hit.flags);
  number("queue", hit.queue);
  text("hook", hit.hook);
  optional_text("host", hit.host);
  optional_text("user_agent", hit.user_agent);
  out.push_back('}');
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
  // A follow-up stands for a span of requests: its first one's time too (the line's own
  // time is the last one's).
  const std::string first =
      hit.count > 1 && hit.first != Hit::Clock::time_point{} ? " first=" + FormatIsoTime(hit.first) : "";
  return fmt::format(
      "{} {} {} norm={} src={} imds={} uid={} pid={} owner={} count={}{} flags={} hook={} "
      "cmdline=\"{}\"",
      FormatIsoTime(EventTime(hit)), or_dash(hit.method), or_dash(hit.url), or_dash(hit.norm),
      or_dash(hit.src), or_dash(hit.imds), hit.uid < 0 ? "-" : std::to_string(hit.uid),
      hit.pid < 0 ? "-" : std::to_string(hit.pid), or_dash(hit.owner), hit.count, first,
      or_dash(hit.flags), or_dash(hit.hook), EscapeForLog(hit.cmdline, /*quoted=*/true));
}

}  // namespace nfq::alerting
