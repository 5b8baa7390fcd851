// A path filter as the Inspector takes it (shared, immutable), for tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "rules/path_filter.h"

namespace nfq::sensor::testing {

// A list that does not parse fails the calling test and yields an all-paths filter.
inline std::shared_ptr<const rules::PathFilter> SharedFilter(rules::FilterMode mode,
                                                            std::string_view items) {
  std::string error;
  auto filter = rules::PathFilter::Create(mode, items, &error);
  EXPECT_TRUE(filter) << error;
  if (!filter) filter = rules::PathFilter::Create(rules::FilterMode::kAll, "", &error);
  return std::make_shared<const rules::PathFilter>(std::move(*filter));
}

}  // namespace nfq::sensor::testing
