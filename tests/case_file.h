#pragma once

// For data-driven tests: the fields of one line of a cases file, separated by " | "
// (so a field may hold single spaces: a cron expression, a path with a query). A field
// written "<empty>" stands for the empty string.

#include <string>
#include <vector>

namespace slipway::testing_cases {

inline std::vector<std::string> SplitBar(const std::string& line) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t at = line.find(" | ", start);
    std::string field =
        line.substr(start, at == std::string::npos ? std::string::npos : at - start);
    out.push_back(field == "<empty>" ? "" : field);
    if (at == std::string::npos) return out;
    start = at + 3;
  }
}

}  // namespace slipway::testing_cases
