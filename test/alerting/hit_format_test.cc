#include "alerting/hit_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>

#include <string>
#include <vector>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "alerting/hit_codec.h"
#include "alerting/stdout_sink.h"

namespace nfq::alerting {
namespace {

Hit::Clock::time_point At(int64_t ms) {
  return Hit::Clock::time_point(std::chrono::milliseconds(ms));
}

Hit SampleHit() {
  Hit h;
  h.url = "/latest/meta-data/iam/../iam/x?a=b&c=d e";
  h.norm = "/latest/meta-data/iam/x";
  h.method = "GET";
  h.imds = "v1";
  h.src = "10.0.0.5:43210";
  h.uid = 1000;
  h.pid = 4242;
  h.owner = "alice";
  h.cmdline = "curl -s http://169.254.169.254/";
  h.count = 3;
  h.first = At(1796324400123);  // 2026-12-03T19:00:00.123Z
  h.last = At(1796324401456);
  h.flags = "dotdot";
  h.queue = 0;
  h.hook = "output";
  return h;
}

TEST(HitFormat, IsoTimeIsUtcWithMillis) {
  EXPECT_EQ(FormatIsoTime(At(1796324400123)), "2026-12-03T19:00:00.123Z");
  EXPECT_EQ(FormatIsoTime(At(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatIsoTime(At(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatIsoTime(At(951782400000)), "2000-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(FormatIsoTime(At(7258118399999)), "2199-12-31T23:59:59.999Z");
  // Every millisecond of a few days around a month end, against gmtime_r.
  for (int64_t ms = 1798675200000 - 3 * 86400000LL; ms < 1798675200000 + 86400000LL; ms += 997) {
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char want[96];
    std::snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    ASSERT_EQ(FormatIsoTime(At(ms)), want) << ms;
  }
}

TEST(HitFormat, UrlEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(UrlEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(UrlEncode("/a b?c=d&e%\r\n\xff"), "%2Fa%20b%3Fc%3Dd%26e%25%0D%0A%FF");
}

TEST(HitFormat, QueryStringHasEveryContractFieldEncoded) {
  const std::string q = HitQueryString(SampleHit());
  EXPECT_EQ(q,
            "url=%2Flatest%2Fmeta-data%2Fiam%2F..%2Fiam%2Fx%3Fa%3Db%26c%3Dd%20e"
            "&norm=%2Flatest%2Fmeta-data%2Fiam%2Fx&method=GET&imds=v1&src=10.0.0.5%3A43210"
            "&uid=1000&pid=4242&owner=alice&cmdline=curl%20-s%20http%3A%2F%2F169.254.169.254%2F"
            "&count=3&first=2026-12-03T19%3A00%3A00.123Z&last=2026-12-03T19%3A00%3A01.456Z"
            "&flags=dotdot");
  Hit unknown = SampleHit();
  unknown.uid = -1;
  unknown.pid = -1;
  EXPECT_NE(HitQueryString(unknown).find("&uid=&pid=&"), std::string::npos);
}

TEST(HitFormat, JsonLineIsOneObjectWithLogFields) {
  Hit h = SampleHit();
  h.url = "/x\n{\"forged\":1}\x01\xff";
  const std::string line = HitJsonLine(h);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2026-12-03T19:00:01.456Z");
  EXPECT_EQ(j["queue"], 0);
  EXPECT_EQ(j["hook"], "output");
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["first"], "2026-12-03T19:00:00.123Z");
  EXPECT_EQ(j["url"], "/x\n{\"forged\":1}\x01\xef\xbf\xbd");  // invalid byte -> U+FFFD
  for (const char* k : {"method", "norm", "imds", "src", "uid", "pid", "owner", "cmdline", "flags"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
}

// The line as nlohmann::ordered_json writes it (how HitJsonLine was first written): the
// field-by-field writer must produce exactly these bytes.
std::string ReferenceJsonLine(const Hit& hit) {
  nlohmann::ordered_json j;
  j["time"] = FormatIsoTime(hit.last);
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

TEST(HitFormat, JsonLineIsByteForByteWhatTheLibraryWrites) {
  std::vector<std::string> values = {"", "plain /latest/meta-data/", "\"", "\\", "\x7f", "\x1f\n\t\r\b\f",
                                     "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3", "\xed\xa0\x80",
                                     "\xff\xfe", std::string("a\0b", 3), "\xc0\xaf", "ok\xf4\x90\x80\x80"};
  for (int c = 0; c < 256; ++c) values.push_back(std::string(1, static_cast<char>(c)) + "x");
  size_t checked = 0;
  for (const std::string& v : values) {
    for (int field = 0; field < 14; ++field) {
      Hit h = SampleHit();
      h.uid = field % 3 == 0 ? -1 : 1000;
      h.pid = field % 2 == 0 ? -1 : 4242;
      h.count = field == 5 ? 18446744073709551615u : 3;
      h.queue = static_cast<uint16_t>(field * 4681);
      std::string* targets[] = {&h.url, &h.norm, &h.method, &h.imds, &h.src, &h.owner, &h.cmdline,
                                &h.exe, &h.ancestors, &h.container, &h.pod, &h.iface, &h.host,
                                &h.user_agent};
      *targets[field] = v;
      if (field % 2 == 1) h.flags = v;
      ASSERT_EQ(HitJsonLine(h), ReferenceJsonLine(h)) << "field " << field << " value " << v.size();
      ++checked;
    }
  }
  EXPECT_EQ(checked, values.size() * 14);
}

// The plain-text test looks at eight bytes at a time: every byte value at every position of
// a word, in the middle and at the tail of a longer value, and next to its neighbours.
TEST(HitFormat, JsonLineEscapesEveryByteAtEveryPositionOfAWord) {
  for (int c = 0; c < 256; ++c) {
    for (size_t length : {size_t{8}, size_t{17}}) {
      for (size_t at = 0; at < length; ++at) {
        Hit h = SampleHit();
        h.url.assign(length, 'a');
        h.url[at] = static_cast<char>(c);
        h.cmdline = h.url;
        h.cmdline[length - 1 - at] = static_cast<char>(c ^ 1);
        ASSERT_EQ(HitJsonLine(h), ReferenceJsonLine(h)) << "byte " << c << " at " << at << " of " << length;
      }
    }
  }
}

// One hit has one time; a folded hit's first and last differ, and each is written as it is.
TEST(HitFormat, JsonLineWritesEachTimeOfAFoldedHit) {
  Hit h = SampleHit();
  h.first = Hit::Clock::time_point(std::chrono::milliseconds(1764806400123));
  h.last = h.first;
  EXPECT_EQ(HitJsonLine(h), ReferenceJsonLine(h));
  h.last = h.first + std::chrono::seconds(59);
  EXPECT_EQ(HitJsonLine(h), ReferenceJsonLine(h));
  EXPECT_NE(HitJsonLine(h).find("\"first\":\"2025-12-04T00:00:00.123Z\""), std::string::npos) << HitJsonLine(h);
}

TEST(HitFormat, TextLineOfAFollowUpNamesItsFirstRequestsTime) {
  Hit h = SampleHit();
  h.first = Hit::Clock::time_point(std::chrono::milliseconds(1764806400123));
  h.last = h.first + std::chrono::seconds(59);
  h.count = 1;
  EXPECT_EQ(HitTextLine(h).find("first="), std::string::npos) << HitTextLine(h);
  h.count = 7;
  const std::string line = HitTextLine(h);
  EXPECT_EQ(line.rfind("2025-12-04T00:00:59.123Z ", 0), 0u) << line;
  EXPECT_NE(line.find(" count=7 first=2025-12-04T00:00:00.123Z flags="), std::string::npos) << line;
}

TEST(HitFormat, TextLineEscapesHostileBytes) {
  Hit h = SampleHit();
  h.url = "/a\r\n2026-01-01T00:00:00.000Z GET /forged norm=x";
  const std::string line = HitTextLine(h);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.rfind("2026-12-03T19:00:01.456Z GET /a\\x0d\\x0a2026", 0), 0u) << line;
  EXPECT_NE(line.find(" norm=/latest/meta-data/iam/x src=10.0.0.5:43210 imds=v1 uid=1000 "),
            std::string::npos)
      << line;
  // Inside its quotes the command line keeps its spaces; a quote in it cannot end the field.
  EXPECT_NE(line.find("cmdline=\"curl -s http://169.254.169.254/\""), std::string::npos) << line;
  h.cmdline = "sh -c \"x\" y";
  EXPECT_NE(HitTextLine(h).find("cmdline=\"sh -c \\x22x\\x22 y\""), std::string::npos) << HitTextLine(h);
}

TEST(HitFormat, MergeFlagsIsAUnion) {
  EXPECT_EQ(MergeFlags("", ""), "");
  EXPECT_EQ(MergeFlags("dotdot,encoded", "encoded,truncated"), "dotdot,encoded,truncated");
  EXPECT_EQ(MergeFlags("a,,a", "a"), "a");
}

TEST(HitCodec, RoundTripsArbitraryBytes) {
  Hit h = SampleHit();
  h.url = std::string("/\0\xff\n", 4);
  h.user_agent = "ua";
  const std::string enc = EncodeHit(h);
  auto d = DecodeHit(enc);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->url, h.url);
  EXPECT_EQ(d->first, h.first);
  EXPECT_EQ(d->last, h.last);
  EXPECT_EQ(d->count, 3u);
  EXPECT_EQ(d->uid, 1000);
  EXPECT_EQ(d->user_agent, "ua");
  for (size_t n = 0; n < enc.size(); ++n) EXPECT_FALSE(DecodeHit(enc.substr(0, n))) << n;
  EXPECT_FALSE(DecodeHit(enc + "x"));
}

TEST(StdoutSink, WritesOneLinePerHit) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  {
    StdoutSink text(LogFormat::kText, fds[1]);
    StdoutSink json(LogFormat::kJson, fds[1]);
    Hit h = SampleHit();
    h.url = "/evil\nsecond line";
    text.Publish(h);
    text.Flush();  // the alert thread flushes at the end of each batch
    json.Publish(h);
    json.Flush();
    EXPECT_EQ(text.write_errors(), 0u);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  const auto nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(out.find('\n', nl + 1), out.size() - 1);
  EXPECT_EQ(nlohmann::json::parse(out.substr(nl + 1))["url"], "/evil\nsecond line");
}

// A batch of hits is one write; a failed write counts every line it carried.
TEST(StdoutSink, LinesOfABatchGoOutTogetherAtFlush) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_NONBLOCK), 0);
  StdoutSink sink(LogFormat::kText, fds[1]);
  for (int i = 0; i < 3; ++i) sink.Publish(SampleHit());
  char buf[8192];
  EXPECT_EQ(read(fds[0], buf, sizeof buf), -1) << "nothing before the batch ends";
  sink.Flush();
  const ssize_t n = read(fds[0], buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::count(buf, buf + n, '\n'), 3);
  close(fds[0]);
  close(fds[1]);

  StdoutSink broken(LogFormat::kJson, -1);
  for (int i = 0; i < 3; ++i) broken.Publish(SampleHit());
  broken.Flush();
  EXPECT_EQ(broken.write_errors(), 3u);
}

}  // namespace
}  // namespace nfq::alerting
