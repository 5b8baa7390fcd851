#include "sensor/reassembly.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

namespace nfq::sensor {
namespace {

struct Reader {
  std::string bytes;
  std::string late;
  int holes = 0;
  uint32_t flags = 0;
  StreamReassembler stream;

  explicit Reader(uint32_t isn) { stream.Start(isn); }
  void Offer(uint32_t seq, std::string_view data) {
    flags |= stream.Offer(
        seq, data, [this](std::string_view b) { bytes.append(b); }, [this] { ++holes; },
        [this](std::string_view b) { late.append(b); });
  }
  void Flush() {
    stream.Flush([this](std::string_view b) { bytes.append(b); }, [this] { ++holes; });
  }
};

const std::string kRequest = "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1\r\nHost: x\r\n\r\n";

TEST(ReassemblyTest, InOrderPassesStraightThrough) {
  Reader r(1000);
  r.Offer(1000, kRequest.substr(0, 10));
  r.Offer(1010, kRequest.substr(10));
  EXPECT_EQ(r.bytes, kRequest);
  EXPECT_EQ(r.stream.pending_segments(), 0u);
  EXPECT_EQ(r.flags & offer_result::kRetransmit, 0u);
}

TEST(ReassemblyTest, EveryOrderOfFourSegmentsGivesTheSameBytes) {
  const std::vector<size_t> cuts = {0, 7, 20, 41, kRequest.size()};
  std::vector<int> order(4);
  std::iota(order.begin(), order.end(), 0);
  do {
    Reader r(0xfffffff0u);  // wraps around 2^32 in the middle
    for (int i : order) {
      r.Offer(0xfffffff0u + static_cast<uint32_t>(cuts[static_cast<size_t>(i)]),
              kRequest.substr(cuts[static_cast<size_t>(i)], cuts[static_cast<size_t>(i) + 1] - cuts[static_cast<size_t>(i)]));
    }
    EXPECT_EQ(r.bytes, kRequest);
    EXPECT_EQ(r.holes, 0);
    EXPECT_EQ(r.flags & offer_result::kInconsistent, 0u);
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST(ReassemblyTest, DuplicatesAndRetransmissionsAreReadOnce) {
  Reader r(1);
  r.Offer(1, kRequest.substr(0, 30));
  r.Offer(1, kRequest.substr(0, 30));
  r.Offer(11, kRequest.substr(10, 40));  // overlaps the seen part and adds new bytes
  r.Offer(41, kRequest.substr(40));
  r.Offer(41, kRequest.substr(40));
  EXPECT_EQ(r.bytes, kRequest);
  EXPECT_TRUE(r.flags & offer_result::kRetransmit);
  EXPECT_FALSE(r.flags & offer_result::kInconsistent);
}

TEST(ReassemblyTest, ConflictingRetransmissionKeepsFirstBytesAndFlags) {
  Reader r(1);
  r.Offer(1, "GET /latest/meta-data/");
  r.Offer(1, "GET /latest/user-data/");
  r.Offer(23, " HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.bytes, "GET /latest/meta-data/ HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(r.flags & offer_result::kInconsistent);
}

TEST(ReassemblyTest, ConflictingOutOfOrderSegmentsKeepFirstArrival) {
  Reader r(1);
  r.Offer(5, "AAAA");   // held
  r.Offer(5, "BBBB");   // same range, different bytes: first wins
  r.Offer(3, "xxCCCCyy");  // covers the hole, overlaps the held range with other bytes
  r.Offer(1, "12");
  EXPECT_EQ(r.bytes, "12xxAAAAyy");
  EXPECT_TRUE(r.flags & offer_result::kInconsistent);
}

TEST(ReassemblyTest, NewSegmentSpanningHeldOnesKeepsItsTail) {
  Reader r(1);
  r.Offer(11, "KLMNO");
  r.Offer(1, "abcdefghijKLMNOpqrst");
  EXPECT_EQ(r.bytes, "abcdefghijKLMNOpqrst");
  EXPECT_FALSE(r.flags & offer_result::kInconsistent);
}

TEST(ReassemblyTest, AnUnfilledHoleIsGivenUpWithinBounds) {
  Reader r(1);
  // Byte 1 never comes; 17 segments arrive after it.
  for (uint32_t i = 0; i <= reassembly::kMaxPendingSegments; ++i) r.Offer(2 + i * 4, "abcd");
  EXPECT_EQ(r.holes, 1);
  EXPECT_EQ(r.bytes.size(), (reassembly::kMaxPendingSegments + 1) * 4);
  EXPECT_LE(r.stream.pending_bytes(), reassembly::kMaxPendingBytes);
}

TEST(ReassemblyTest, PendingBytesNeverExceedTheCap) {
  Reader r(1);
  const std::string big(4000, 'z');
  for (uint32_t i = 0; i < 20; ++i) {
    r.Offer(100 + i * 4000, big);
    EXPECT_LE(r.stream.pending_bytes(), reassembly::kMaxPendingBytes);
  }
  EXPECT_GE(r.holes, 1);
}

TEST(ReassemblyTest, FarBeyondTheWindowStartsOver) {
  Reader r(1);
  r.Offer(1, "GET /a");
  r.Offer(1 + reassembly::kMaxWindow + 100, "GET /b HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.holes, 1);
  EXPECT_EQ(r.bytes, "GET /aGET /b HTTP/1.1\r\n\r\n");
}

TEST(ReassemblyTest, BytesBeforeTheStartAreLateDataNotRetransmissions) {
  // A raw-socket sender puts the harmless request first on the wire, then the one the
  // server reads first.
  const std::string first = "GET /latest/meta-data/iam/security-credentials/x HTTP/1.1\r\n\r\n";
  const std::string second = "GET / HTTP/1.1\r\n\r\n";
  Reader r(1000 + static_cast<uint32_t>(first.size()));  // joined at the second segment
  r.Offer(1000 + static_cast<uint32_t>(first.size()), second);
  r.Offer(1000, first);
  EXPECT_EQ(r.bytes, second);
  EXPECT_EQ(r.late, first);
  EXPECT_TRUE(r.flags & offer_result::kLateData);
  EXPECT_FALSE(r.flags & offer_result::kRetransmit);
  // A real retransmission of delivered bytes is not late.
  r.flags = 0;
  r.Offer(1000 + static_cast<uint32_t>(first.size()), second);
  EXPECT_FALSE(r.flags & offer_result::kLateData);
  EXPECT_TRUE(r.flags & offer_result::kRetransmit);
}

TEST(ReassemblyTest, BytesForASkippedHoleAreLateData) {
  Reader r(1);
  for (uint32_t i = 0; i <= reassembly::kMaxPendingSegments; ++i) r.Offer(101 + i * 4, "abcd");
  ASSERT_EQ(r.holes, 1);
  r.Offer(1, std::string(100, 'h'));
  EXPECT_EQ(r.late, std::string(100, 'h'));
  EXPECT_TRUE(r.flags & offer_result::kLateData);
}

TEST(ReassemblyTest, FlushDeliversWhatWasHeldAcrossHoles) {
  Reader r(1);
  r.Offer(10, "tail");
  r.Flush();
  EXPECT_EQ(r.bytes, "tail");
  EXPECT_EQ(r.holes, 1);
  EXPECT_EQ(r.stream.pending_segments(), 0u);
}

}  // namespace
}  // namespace nfq::sensor
