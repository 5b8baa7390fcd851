#include "sensor/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace nfq::sensor {
namespace {

using Requests = std::vector<HttpRequest>;
namespace flag = request_flag;

// Feeds the pieces in order, then (optionally) Finish.
Requests ParseAll(const std::vector<std::string_view>& pieces, bool finish = true) {
  HttpRequestParser parser;
  Requests out;
  auto sink = [&](const HttpRequest& request) { out.push_back(request); };
  for (const auto piece : pieces) parser.Feed(piece, sink);
  if (finish) parser.Finish(sink);
  return out;
}

Requests ParseAll(std::string_view bytes) { return ParseAll(std::vector<std::string_view>{bytes}); }

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool AnyFieldContains(const HttpRequest& r, std::string_view needle) {
  for (const std::string* field :
       {&r.method, &r.target, &r.version, &r.host, &r.user_agent, &r.forwarded}) {
    if (field->find(needle) != std::string::npos) return true;
  }
  return false;
}

constexpr std::string_view kGet =
    "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n"
    "Host: 169.254.169.254\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "\r\n";

constexpr std::string_view kSecret = "AQAEAHYnz-SECRET-TOKEN-VALUE-a1b2c3==";

// A PUT with a body, a GET with the token, a body that looks like a request, odd spacing.
const std::string kPipeline =
    "PUT /latest/api/token HTTP/1.1\r\n"
    "Host: 169.254.169.254\r\n"
    "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
    "Content-Length: 5\r\n"
    "\r\n"
    "hello"
    "GET /latest/meta-data/ HTTP/1.1\r\n"
    "host:169.254.169.254\r\n"
    "x-aws-ec2-metadata-token:" +
    std::string(kSecret) +
    "\r\n"
    "\r\n"
    "POST  /upload   HTTP/1.1\n"
    "Content-Length:24\n"
    "Via: 1.1 squid\n"
    "\n"
    "GET /evil HTTP/1.1\r\n\r\n\r\n"
    "\r\n"
    "get /last HTTP/1.0\r\n"
    "User-Agent: a\r\n"
    " folded\r\n"
    "\r\n";

TEST(HttpParser, SimpleGet) {
  HttpRequestParser parser;
  Requests out;
  parser.Feed(kGet, [&](const HttpRequest& r) { out.push_back(r); });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "GET");
  EXPECT_EQ(out[0].target, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(out[0].version, "HTTP/1.1");
  EXPECT_EQ(out[0].host, "169.254.169.254");
  EXPECT_EQ(out[0].user_agent, "curl/7.88.1");
  EXPECT_EQ(out[0].flags, 0u);
  EXPECT_FALSE(out[0].has_imds_token);
  EXPECT_FALSE(out[0].has_token_ttl);
  EXPECT_TRUE(parser.following());
  EXPECT_EQ(parser.requests_reported(), 1u);
  parser.Finish([&](const HttpRequest& r) { out.push_back(r); });
  EXPECT_EQ(out.size(), 1u);  // nothing in progress
}

TEST(HttpParser, EveryTruncation) {
  const Requests full = ParseAll(kGet);
  ASSERT_EQ(full.size(), 1u);
  for (size_t n = 0; n < kGet.size(); ++n) {
    SCOPED_TRACE(n);
    const Requests out = ParseAll(kGet.substr(0, n));
    if (n == 0) {
      EXPECT_TRUE(out.empty());
      continue;
    }
    ASSERT_EQ(out.size(), 1u);
    const HttpRequest& r = out[0];
    EXPECT_TRUE(r.flags & flag::kTruncated);
    EXPECT_FALSE(r.flags & (flag::kNonHttp | flag::kHttp09 | flag::kOversized));
    EXPECT_TRUE(StartsWith(full[0].method, r.method));
    EXPECT_TRUE(StartsWith(full[0].target, r.target));
    EXPECT_TRUE(StartsWith(full[0].version, r.version));
    EXPECT_TRUE(StartsWith(full[0].host, r.host));
    EXPECT_TRUE(StartsWith(full[0].user_agent, r.user_agent));
  }
  // Once the request line is complete, it is reported whole.
  const Requests line_only = ParseAll(kGet.substr(0, kGet.find('\n') + 1));
  ASSERT_EQ(line_only.size(), 1u);
  EXPECT_EQ(line_only[0].target, full[0].target);
  EXPECT_EQ(line_only[0].version, "HTTP/1.1");
  EXPECT_EQ(line_only[0].flags, flag::kTruncated);
}

TEST(HttpParser, EverySplitIntoTwoAndThreeIsIdentical) {
  for (const std::string_view input : {std::string_view(kPipeline), kGet}) {
    const Requests whole = ParseAll(input);
    for (size_t i = 0; i <= input.size(); ++i) {
      ASSERT_EQ(ParseAll({input.substr(0, i), input.substr(i)}), whole) << "split at " << i;
      for (size_t j = i; j <= input.size(); ++j) {
        ASSERT_EQ(ParseAll({input.substr(0, i), input.substr(i, j - i), input.substr(j)}), whole)
            << "split at " << i << "," << j;
      }
    }
  }
}

TEST(HttpParser, ByteAtATimeIsIdentical) {
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < kPipeline.size(); ++i)
    bytes.push_back(std::string_view(kPipeline).substr(i, 1));
  EXPECT_EQ(ParseAll(bytes), ParseAll(kPipeline));
}

TEST(HttpParser, PipelinedRequestsWithBodies) {
  const Requests out = ParseAll(kPipeline);
  ASSERT_EQ(out.size(), 4u);

  EXPECT_EQ(out[0].method, "PUT");
  EXPECT_EQ(out[0].target, "/latest/api/token");
  EXPECT_TRUE(out[0].has_token_ttl);
  EXPECT_FALSE(out[0].has_imds_token);
  EXPECT_EQ(out[0].content_length, 5u);
  EXPECT_EQ(out[0].flags, 0u);

  EXPECT_EQ(out[1].method, "GET");
  EXPECT_EQ(out[1].target, "/latest/meta-data/");
  EXPECT_EQ(out[1].host, "169.254.169.254");
  EXPECT_TRUE(out[1].has_imds_token);
  EXPECT_FALSE(out[1].has_token_ttl);

  EXPECT_EQ(out[2].method, "POST");
  EXPECT_EQ(out[2].target, "/upload");
  EXPECT_EQ(out[2].content_length, 24u);
  EXPECT_EQ(out[2].forwarded, "1.1 squid");
  EXPECT_EQ(out[2].flags, flag::kBareLf | flag::kProxyHeaders);

  // The body "GET /evil ..." was skipped; blank lines before a request are ignored.
  EXPECT_EQ(out[3].method, "get");
  EXPECT_EQ(out[3].target, "/last");
  EXPECT_EQ(out[3].version, "HTTP/1.0");
  EXPECT_EQ(out[3].user_agent, "a folded");
  EXPECT_EQ(out[3].host, "");
  for (const auto& r : out) EXPECT_FALSE(AnyFieldContains(r, kSecret));
}

TEST(HttpParser, BodySkippedAcrossFeeds) {
  HttpRequestParser parser;
  Requests out;
  auto sink = [&](const HttpRequest& r) { out.push_back(r); };
  parser.Feed("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01", sink);
  parser.Feed("2345", sink);
  parser.Feed("6789GET /b HTTP/1.1\r\n", sink);
  ASSERT_EQ(out.size(), 1u);
  parser.Feed("\r\n", sink);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].target, "/b");
}

TEST(HttpParser, Imdsv2TokenPut) {
  const Requests out = ParseAll(
      "PUT /latest/api/token HTTP/1.1\r\n"
      "Host: 169.254.169.254\r\n"
      "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
      "\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "PUT");
  EXPECT_TRUE(out[0].has_token_ttl);
  EXPECT_FALSE(out[0].has_imds_token);
}

TEST(HttpParser, TokenValueIsNeverStored) {
  const std::string secret(kSecret);
  const std::vector<std::string> inputs = {
      "GET /latest/meta-data/ HTTP/1.1\r\nX-aws-ec2-metadata-token: " + secret + "\r\n\r\n",
      "GET /latest/meta-data/ HTTP/1.1\r\nx-AWS-EC2-metadata-TOKEN:" + secret + "\r\n\r\n",
      "GET / HTTP/1.1\r\nX-aws-ec2-metadata-token:\t" + secret + "  \r\n\r\n",
      "GET / HTTP/1.1\nX-aws-ec2-metadata-token: " + secret + "\n " + secret + "\n\n",
      "GET / HTTP/1.1\r\nX-aws-ec2-metadata-token: " + secret,  // truncated at Finish
      "GET / HTTP/1.1\r\nX-aws-ec2-metadata-token: " + secret + std::string(20000, 'x'),
  };
  for (const auto& input : inputs) {
    SCOPED_TRACE(input.substr(0, 60));
    for (size_t split = 0; split <= input.size(); split += 7) {
      const Requests out = ParseAll(
          {std::string_view(input).substr(0, split), std::string_view(input).substr(split)});
      ASSERT_EQ(out.size(), 1u);
      EXPECT_TRUE(out[0].has_imds_token);
      EXPECT_FALSE(out[0].has_token_ttl);
      EXPECT_FALSE(AnyFieldContains(out[0], kSecret));
      EXPECT_FALSE(AnyFieldContains(out[0], "SECRET"));
    }
  }
}

TEST(HttpParser, HeaderNamesMatchWhole) {
  auto parse_header = [](std::string_view header) {
    const Requests out = ParseAll("GET / HTTP/1.1\r\n" + std::string(header) + "\r\n\r\n");
    EXPECT_EQ(out.size(), 1u);
    return out.empty() ? HttpRequest{} : out[0];
  };
  const HttpRequest ttl = parse_header("X-aws-ec2-metadata-token-ttl-seconds: 60");
  EXPECT_TRUE(ttl.has_token_ttl);
  EXPECT_FALSE(ttl.has_imds_token);
  const HttpRequest ttl_upper = parse_header("X-AWS-EC2-METADATA-TOKEN-TTL-SECONDS:60");
  EXPECT_TRUE(ttl_upper.has_token_ttl);
  EXPECT_FALSE(ttl_upper.has_imds_token);
  for (const char* other : {"X-aws-ec2-metadata-tokens: a", "X-aws-ec2-metadata-token-ttl: 1",
                            "X-aws-ec2-metadata-to: a", "X-aws-ec2-metadata-token-ttl-secondsx: 1",
                            "XX-aws-ec2-metadata-token: a", "X-aws-ec2-metadata-token : a",
                            "Hostname: evil", "Hos: evil", "Host : evil"}) {
    SCOPED_TRACE(other);
    const HttpRequest r = parse_header(other);
    EXPECT_FALSE(r.has_token_ttl);
    EXPECT_FALSE(r.has_imds_token);
    EXPECT_EQ(r.host, "");
  }
}

TEST(HttpParser, HeaderSpacing) {
  const Requests out = ParseAll(
      "GET / HTTP/1.1\r\nHOST:a.example\r\nuser-agent: \t  ua/1  \t\r\n"
      "x-forwarded-for:1.2.3.4\r\nVia: 1.1 p\r\nForwarded: for=5.6.7.8\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, "a.example");
  EXPECT_EQ(out[0].user_agent, "ua/1");
  EXPECT_EQ(out[0].forwarded, "1.2.3.4, 1.1 p, for=5.6.7.8");
  EXPECT_EQ(out[0].flags, flag::kProxyHeaders);
}

TEST(HttpParser, FirstHostWins) {
  const Requests out = ParseAll("GET / HTTP/1.1\r\nHost: first\r\nHost: second\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, "first");
}

TEST(HttpParser, BareLf) {
  const Requests out = ParseAll("GET /x HTTP/1.1\nHost: h\n\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target, "/x");
  EXPECT_EQ(out[0].host, "h");
  EXPECT_EQ(out[0].flags, flag::kBareLf);
  // Only the header block uses bare LF.
  EXPECT_EQ(ParseAll("GET /x HTTP/1.1\r\nHost: h\n\r\n")[0].flags, flag::kBareLf);
  EXPECT_EQ(ParseAll("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")[0].flags, 0u);
}

TEST(HttpParser, AnyTokenMethod) {
  for (const char* method : {"get", "OPTIONS", "PATCH", "M-SEARCH", "FOO_BAR", "x"}) {
    const Requests out = ParseAll(std::string(method) + " /p HTTP/1.1\r\n\r\n");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].method, method);
    EXPECT_EQ(out[0].target, "/p");
  }
}

TEST(HttpParser, ExtraSpacesInRequestLine) {
  const Requests out = ParseAll("GET   /a?b=c \t  HTTP/1.1  \r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "GET");
  EXPECT_EQ(out[0].target, "/a?b=c");
  EXPECT_EQ(out[0].version, "HTTP/1.1");
  // A raw space inside the target stays in the target.
  const Requests spaced = ParseAll("GET /a b HTTP/1.1\r\n\r\n");
  ASSERT_EQ(spaced.size(), 1u);
  EXPECT_EQ(spaced[0].target, "/a b");
  EXPECT_EQ(spaced[0].version, "HTTP/1.1");
}

TEST(HttpParser, Http09) {
  HttpRequestParser parser;
  Requests out;
  auto sink = [&](const HttpRequest& r) { out.push_back(r); };
  parser.Feed("GET /latest/meta-data/\r\nHost: x\r\n\r\n", sink);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "GET");
  EXPECT_EQ(out[0].target, "/latest/meta-data/");
  EXPECT_EQ(out[0].version, "");
  EXPECT_EQ(out[0].host, "");
  EXPECT_EQ(out[0].flags, flag::kHttp09);
  EXPECT_FALSE(parser.following());
}

TEST(HttpParser, Http10WithoutHost) {
  const Requests out = ParseAll("GET /latest/meta-data/ HTTP/1.0\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].version, "HTTP/1.0");
  EXPECT_EQ(out[0].host, "");
  EXPECT_EQ(out[0].flags, 0u);
}

TEST(HttpParser, NonHttpBytes) {
  const std::vector<std::string> inputs = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // TLS ClientHello
      "SSH-2.0-OpenSSH_9.2\r\n",
      std::string("GET /a\0b HTTP/1.1\r\n\r\n", 20),
      "GET /a\rb HTTP/1.1\r\n\r\n",
      "GET\r\n\r\n",
      "GET \r\n\r\n",
      " GET / HTTP/1.1\r\n\r\n",
      "{\"json\": true}",
      std::string(100, 'A') + " / HTTP/1.1\r\n\r\n",
  };
  for (const auto& input : inputs) {
    SCOPED_TRACE(input);
    HttpRequestParser parser;
    Requests out;
    auto sink = [&](const HttpRequest& r) { out.push_back(r); };
    parser.Feed(input, sink);
    parser.Feed(kGet, sink);  // ignored: the flow is no longer followed
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].flags, flag::kNonHttp);
    EXPECT_EQ(out[0].method, "");
    EXPECT_EQ(out[0].target, "");
    EXPECT_FALSE(parser.following());
    parser.Finish(sink);
    EXPECT_EQ(out.size(), 1u);
    EXPECT_TRUE(parser.following());  // Finish resets
  }
}

TEST(HttpParser, GarbageAfterValidRequest) {
  const Requests out = ParseAll(std::string(kGet) + std::string("\x00\x01\x02garbage", 10));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].target, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(out[0].flags, 0u);
  EXPECT_EQ(out[1].flags, flag::kNonHttp);
}

TEST(HttpParser, MegabyteWithoutNewlineIsOversizedAndBounded) {
  const std::string filler(1 << 20, 'a');
  HttpRequestParser parser;
  Requests out;
  auto sink = [&](const HttpRequest& r) { out.push_back(r); };
  parser.Feed("GET /", sink);
  for (size_t i = 0; i < filler.size(); i += 1000) {
    parser.Feed(std::string_view(filler).substr(i, 1000), sink);
    ASSERT_LE(parser.buffered_capacity(), 40u * 1024);
  }
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].method, "GET");
  EXPECT_EQ(out[0].flags, flag::kOversized);
  EXPECT_TRUE(StartsWith(out[0].target, "/aaaa"));
  EXPECT_LE(out[0].target.size(), http_limits::kMaxRequestLine);
  EXPECT_GT(out[0].target.size(), http_limits::kMaxRequestLine - 10);
  EXPECT_FALSE(parser.following());
  // A megabyte of token characters is not a method.
  const Requests method_only = ParseAll(filler);
  ASSERT_EQ(method_only.size(), 1u);
  EXPECT_EQ(method_only[0].flags, flag::kNonHttp);
}

TEST(HttpParser, RequestLineCapBoundary) {
  // Line of exactly the cap (CR included) is fine; one more byte is oversized.
  const size_t target_size =
      http_limits::kMaxRequestLine - std::string_view("GET  HTTP/1.1\r").size();
  const std::string target = "/" + std::string(target_size - 1, 'b');
  const Requests fits = ParseAll("GET " + target + " HTTP/1.1\r\n\r\n");
  ASSERT_EQ(fits.size(), 1u);
  EXPECT_EQ(fits[0].flags, 0u);
  EXPECT_EQ(fits[0].target, target);
  const Requests over = ParseAll("GET " + target + "b HTTP/1.1\r\n\r\n");
  ASSERT_EQ(over.size(), 1u);
  EXPECT_EQ(over[0].flags, flag::kOversized);
}

TEST(HttpParser, HeaderBlockCap) {
  std::string input = "GET /big HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 400; ++i)
    input += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'f') + "\r\n";
  input += "\r\nGET /next HTTP/1.1\r\n\r\n";
  HttpRequestParser parser;
  Requests out;
  parser.Feed(input, [&](const HttpRequest& r) { out.push_back(r); });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target, "/big");
  EXPECT_EQ(out[0].host, "h");
  EXPECT_EQ(out[0].flags, flag::kOversized);
  EXPECT_FALSE(parser.following());
  EXPECT_LE(parser.buffered_capacity(), 40u * 1024);
}

TEST(HttpParser, HeaderValuesCapped) {
  const std::string long_value(5000, 'v');
  const Requests out =
      ParseAll("GET / HTTP/1.1\r\nHost: " + long_value + "\r\nUser-Agent: " + long_value +
               "\r\nVia: " + long_value + "\r\nVia: " + long_value + "\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host.size(), http_limits::kMaxHeaderValue);
  EXPECT_EQ(out[0].user_agent.size(), http_limits::kMaxHeaderValue);
  EXPECT_LE(out[0].forwarded.size(), http_limits::kMaxHeaderValue);
}

TEST(HttpParser, ChunkedStopsFollowing) {
  HttpRequestParser parser;
  Requests out;
  parser.Feed(
      "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
      "GET /b HTTP/1.1\r\n\r\n",
      [&](const HttpRequest& r) { out.push_back(r); });
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target, "/a");
  EXPECT_EQ(out[0].flags, flag::kChunked | flag::kUnframed);
  EXPECT_FALSE(parser.following());
}

TEST(HttpParser, UnusableContentLengthStopsFollowing) {
  for (const char* headers :
       {"Content-Length: abc\r\n", "Content-Length: -1\r\n", "Content-Length: 1, 1\r\n",
        "Content-Length: 3\r\nContent-Length: 4\r\n",
        "Content-Length: 99999999999999999999999\r\n"}) {
    SCOPED_TRACE(headers);
    HttpRequestParser parser;
    Requests out;
    parser.Feed(std::string("POST /a HTTP/1.1\r\n") + headers + "\r\nGET /b HTTP/1.1\r\n\r\n",
                [&](const HttpRequest& r) { out.push_back(r); });
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].flags & flag::kUnframed);
    EXPECT_FALSE(parser.following());
  }
  // Repeated identical values are fine.
  const Requests same = ParseAll(
      "POST /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nxx"
      "GET /b HTTP/1.1\r\n\r\n");
  ASSERT_EQ(same.size(), 2u);
  EXPECT_EQ(same[1].target, "/b");
}

// No cap on requests per flow: a cap would be a blind spot (poll a thousand times, then read
// the credentials). Work per request and memory per parser are bounded whatever the count.
TEST(HttpParser, LongKeepAliveFlowsAreFollowedToTheEnd) {
  std::string input;
  for (uint32_t i = 0; i < 5000; ++i) input += "GET /latest/meta-data/ HTTP/1.1\r\n\r\n";
  input += "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\n\r\n";
  HttpRequestParser parser;
  size_t count = 0;
  std::string last;
  parser.Feed(input, [&](const HttpRequest& r) {
    ++count;
    last = r.target;
  });
  EXPECT_EQ(count, 5001u);
  EXPECT_EQ(last, "/latest/meta-data/iam/security-credentials/");
  EXPECT_TRUE(parser.following());
  EXPECT_LT(parser.buffered_capacity(), 20u * 1024);
}

TEST(HttpParser, FinishReportsHeadInProgressThenResets) {
  HttpRequestParser parser;
  Requests out;
  auto sink = [&](const HttpRequest& r) { out.push_back(r); };
  parser.Feed("GET /lat", sink);
  parser.Finish(sink);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].target, "/lat");
  EXPECT_EQ(out[0].flags, flag::kTruncated);
  // After the reset, the next bytes start a new request.
  parser.Feed(kGet, sink);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].flags, 0u);
  // Finish inside a body reports nothing.
  parser.Feed("PUT / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", sink);
  ASSERT_EQ(out.size(), 3u);
  parser.Finish(sink);
  EXPECT_EQ(out.size(), 3u);
  // Blank lines alone are not a request.
  parser.Feed("\r\n\r\n", sink);
  parser.Finish(sink);
  EXPECT_EQ(out.size(), 3u);
}

TEST(HttpParser, SplitInvarianceOnOddInputs) {
  const std::vector<std::string> inputs = {
      std::string(kGet) + std::string("\x00\x01\x02garbage", 10),
      "GET /a HTTP/1.1\r\nHost: h\r\n\rX\r\nUser-Agent: u\r\n\r\n",
      "GET /a HTTP/1.1\r\n\x01weird line\r\n:empty-name\r\nHost: h\r\n\r\n",
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /x\r\n",
      "GET /a HTTP/1.1\r\nHost: " + std::string(3000, 'h') + "\r\n\r\n",
      "GET /" + std::string(9000, 'p'),
  };
  for (const auto& input : inputs) {
    const Requests whole = ParseAll(input);
    const size_t stride = input.size() > 1000 ? 97 : 1;
    for (size_t i = 0; i <= input.size(); i += stride) {
      ASSERT_EQ(ParseAll({std::string_view(input).substr(0, i), std::string_view(input).substr(i)}),
                whole)
          << input.substr(0, 40) << " split at " << i;
    }
  }
}

TEST(HttpParser, LoneCrAtHeaderLineStartIsIgnored) {
  const Requests out = ParseAll("GET /a HTTP/1.1\r\nHost: h\r\n\rX\r\nUser-Agent: u\r\n\r\n");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].host, "h");
  EXPECT_EQ(out[0].user_agent, "u");
}

TEST(RequestFlagNames, Names) {
  EXPECT_EQ(RequestFlagNames(0), "");
  EXPECT_EQ(RequestFlagNames(flag::kTruncated | flag::kOversized), "truncated,oversized");
  EXPECT_EQ(RequestFlagNames(flag::kNonHttp | flag::kProxyHeaders), "non_http,proxy_headers");
}

}  // namespace
}  // namespace nfq::sensor
