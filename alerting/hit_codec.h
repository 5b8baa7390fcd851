// Exact binary encoding of a Hit for the spool (strings are bytes: hostile paths need not be
// UTF-8, so JSON would not round-trip). Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "alerting/hit.h"

namespace nfq::alerting {

std::string EncodeHit(const Hit& hit);
// nullopt on anything malformed (wrong version, short, trailing bytes).
std::optional<Hit> DecodeHit(std::string_view bytes);

}  // namespace nfq::alerting
