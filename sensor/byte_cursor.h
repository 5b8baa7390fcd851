// A read cursor over a byte span that cannot read out of bounds.
// A read past the end returns zero (or an empty span) and fails the cursor for good, so a
// parser can read a whole fixed header and test ok() once. Non-owning: the bytes must outlive
// the cursor. Not thread-safe (a value type; copy it instead of sharing it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace nfq::sensor {

class ByteCursor {
 public:
  constexpr ByteCursor() noexcept = default;
  constexpr explicit ByteCursor(std::span<const uint8_t> bytes) noexcept : bytes_(bytes) {}

  // False once any read, skip or sub-cursor asked for more than was left.
  constexpr bool ok() const noexcept { return ok_; }
  constexpr size_t remaining() const noexcept { return ok_ ? bytes_.size() - pos_ : 0; }
  constexpr size_t position() const noexcept { return pos_; }
  constexpr bool Has(size_t n) const noexcept { return remaining() >= n; }

  constexpr uint8_t ReadU8() noexcept {
    if (!Want(1)) return 0;
    return bytes_[pos_++];
  }
  constexpr uint16_t ReadU16be() noexcept {
    if (!Want(2)) return 0;
    const auto value = static_cast<uint16_t>((bytes_[pos_] << 8) | bytes_[pos_ + 1]);
    pos_ += 2;
    return value;
  }
  constexpr uint32_t ReadU32be() noexcept {
    if (!Want(4)) return 0;
    const uint32_t value = (uint32_t{bytes_[pos_]} << 24) | (uint32_t{bytes_[pos_ + 1]} << 16) |
                           (uint32_t{bytes_[pos_ + 2]} << 8) | uint32_t{bytes_[pos_ + 3]};
    pos_ += 4;
    return value;
  }
  constexpr bool Skip(size_t n) noexcept {
    if (!Want(n)) return false;
    pos_ += n;
    return true;
  }
  // The next n bytes (empty on failure), and moves past them.
  constexpr std::span<const uint8_t> ReadBytes(size_t n) noexcept {
    if (!Want(n)) return {};
    const auto bytes = bytes_.subspan(pos_, n);
    pos_ += n;
    return bytes;
  }
  // A cursor over the next n bytes (a failed one on failure), and moves past them.
  constexpr ByteCursor Sub(size_t n) noexcept {
    if (!Want(n)) {
      ByteCursor failed;
      failed.ok_ = false;
      return failed;
    }
    return ByteCursor(ReadBytes(n));
  }
  // The byte `offset` past the current position, without moving; never fails the cursor.
  constexpr std::optional<uint8_t> PeekU8(size_t offset = 0) const noexcept {
    if (remaining() <= offset) return std::nullopt;
    return bytes_[pos_ + offset];
  }
  // Everything not yet read (empty once failed).
  constexpr std::span<const uint8_t> Rest() const noexcept {
    return ok_ ? bytes_.subspan(pos_) : std::span<const uint8_t>{};
  }

 private:
  constexpr bool Want(size_t n) noexcept {
    if (!ok_ || bytes_.size() - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }

  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace nfq::sensor
