// Incremental HTTP/1.x request-head parser. Fed the bytes of one direction of one TCP flow
// in order, in pieces of any size; reports each request head once. Lax like real servers
// (bare LF, extra spaces, any method token, HTTP/0.9), bounded (request line 8 KiB, header
// block 16 KiB), and it never copies an IMDS token value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nfq::sensor {

namespace request_flag {
inline constexpr uint32_t kTruncated = 1u << 0;     // head ended (flush) before it was complete
inline constexpr uint32_t kOversized = 1u << 1;     // request line or header block over its cap
inline constexpr uint32_t kChunked = 1u << 2;       // chunked body: the flow is not followed further
inline constexpr uint32_t kNonHttp = 1u << 3;       // bytes that are not an HTTP request
inline constexpr uint32_t kBareLf = 1u << 4;        // LF without CR
inline constexpr uint32_t kHttp09 = 1u << 5;        // request line without a version
inline constexpr uint32_t kInconsistent = 1u << 6;  // overlapping segments disagreed (reassembly)
inline constexpr uint32_t kProxyHeaders = 1u << 7;  // X-Forwarded-For / Via / Forwarded present
inline constexpr uint32_t kUnframed = 1u << 8;      // Transfer-Encoding or a bad Content-Length:
                                                    // the flow is not followed further
inline constexpr uint32_t kLateData = 1u << 9;      // bytes for a range the reader had passed
inline constexpr uint32_t kIpFragment = 1u << 10;   // request bytes travelled in IP fragments:
                                                    // the sensor saw only the first
inline constexpr uint32_t kUrgent = 1u << 11;      // a segment with TCP urgent data: the
                                                    // receiver takes the urgent byte out of
                                                    // the stream the sensor reads
inline constexpr uint32_t kMidstream = 1u << 12;   // joined after the connection began (no
                                                    // SYN seen, a second SYN, or data before
                                                    // the server's SYN-ACK): where the
                                                    // server's stream stands is unknown
// After a request with one of these the sensor cannot vouch for what follows on the flow, so
// the request is reported whatever the path lists say: going blind is never silent.
inline constexpr uint32_t kAlwaysReport =
    kNonHttp | kOversized | kUnframed | kHttp09 | kInconsistent | kLateData | kIpFragment | kUrgent |
    kMidstream;
}  // namespace request_flag

// Comma-separated names of the set bits, e.g. "truncated,oversized".
std::string RequestFlagNames(uint32_t flags);
// The same appended to *names (a comma first unless it is empty); allocates only when *names
// outgrows its capacity.
void AppendRequestFlagNames(uint32_t flags, std::string* names);

// The request line's last word is an HTTP version ("HTTP/1.1"), not the rest of a target.
inline bool IsHttpVersion(std::string_view word) { return word.starts_with("HTTP/"); }

struct HttpRequest {
  std::string method;
  std::string target;   // as sent, capped at the request-line cap
  std::string version;  // "HTTP/1.1"; empty for HTTP/0.9
  std::string host;
  std::string user_agent;
  std::string forwarded;  // values of X-Forwarded-For, Via, Forwarded, joined by ", "
  bool has_imds_token = false;  // X-aws-ec2-metadata-token present (value never stored)
  bool has_token_ttl = false;   // X-aws-ec2-metadata-token-ttl-seconds present
  uint64_t content_length = 0;
  uint32_t flags = 0;  // request_flag bits
  bool target_cut = false;  // the request line ended in a cut (FIN, hole, its cap), not a line end
  bool host_cut = false;    // the Host value was cut (its cap, or the end of the head within it)
  bool operator==(const HttpRequest&) const = default;
};

}  // namespace nfq::sensor
