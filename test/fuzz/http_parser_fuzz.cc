// HttpRequestParser on arbitrary bytes. The first four input bytes choose two split points;
// the rest is parsed whole and in three pieces (each its own heap block, so ASan sees any read
// past a piece), and both parses must report identical requests within the caps.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "sensor/http_parser.h"

namespace {

using nfq::sensor::HttpRequest;
using nfq::sensor::HttpRequestParser;
namespace limits = nfq::sensor::http_limits;

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckBounds(const HttpRequest& r) {
  Check(r.method.size() <= limits::kMaxMethod);
  Check(r.target.size() <= limits::kMaxRequestLine);
  Check(r.version.size() <= limits::kMaxRequestLine);
  Check(r.host.size() <= limits::kMaxHeaderValue);
  Check(r.user_agent.size() <= limits::kMaxHeaderValue);
  Check(r.forwarded.size() <= limits::kMaxHeaderValue);
  if (r.flags & nfq::sensor::request_flag::kNonHttp) Check(r.method.empty() && r.target.empty());
}

std::vector<HttpRequest> Parse(const std::vector<std::string_view>& pieces) {
  HttpRequestParser parser;
  std::vector<HttpRequest> out;
  auto sink = [&](const HttpRequest& request) {
    CheckBounds(request);
    out.push_back(request);
  };
  for (const auto piece : pieces) {
    // An exact-size copy: reading past the piece is a heap overflow ASan reports.
    std::unique_ptr<char[]> copy(new char[piece.size() + 1]);
    std::copy(piece.begin(), piece.end(), copy.get());
    parser.Feed(std::string_view(copy.get(), piece.size()), sink);
    Check(parser.buffered_capacity() <= 64 * 1024);
  }
  parser.Finish(sink);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kPrefix = 4;
  if (size < kPrefix) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + kPrefix), size - kPrefix);
  const size_t first_choice = size_t{data[0]} << 8 | data[1];
  const size_t second_choice = size_t{data[2]} << 8 | data[3];
  size_t first = first_choice % (input.size() + 1);
  size_t second = second_choice % (input.size() + 1);
  if (first > second) std::swap(first, second);

  const auto whole = Parse({input});
  const auto split =
      Parse({input.substr(0, first), input.substr(first, second - first), input.substr(second)});
  Check(whole == split);
  return 0;
}
