// Numbers for people: 162,419,712 rather than 162419712.
#pragma once

#include <cstdint>
#include <string>

namespace gptrain {

inline std::string with_commas(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace gptrain
