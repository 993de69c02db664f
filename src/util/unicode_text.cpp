#include "util/unicode_text.h"

#include <algorithm>
#include <cstdint>

namespace gptrain {

namespace {

// Length of the UTF-8 character at p: > 0 when complete and valid, 0 when the bytes so far are a
// valid but incomplete start, -k when the first k bytes form an invalid (maximal) subsequence.
int utf8_char_length(const unsigned char* p, size_t avail) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  int n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k < n; ++k) {
    if (static_cast<size_t>(k) >= avail) return 0;
    const unsigned char b = p[k];
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return -k;
  }
  return n;
}

// Decodes the code point of a complete, valid UTF-8 character.
uint32_t code_point(const unsigned char* p, int n) {
  if (n == 1) return p[0];
  uint32_t cp = p[0] & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3F);
  return cp;
}

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

}  // namespace

std::string strip_unicode_whitespace(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  // Walk the characters once; remember where the first non-space starts and the last one ends.
  size_t first = n, last_end = 0;
  for (size_t i = 0; i < n;) {
    int len = utf8_char_length(p + i, n - i);
    const bool space = len > 0 && is_python_space(code_point(p + i, len));
    if (len <= 0) len = std::max(1, -len);
    if (!space) {
      if (first == n) first = i;
      last_end = i + static_cast<size_t>(len);
    }
    i += static_cast<size_t>(len);
  }
  return first == n ? std::string() : std::string(text.substr(first, last_end - first));
}

std::string_view lstrip_ascii(std::string_view text, std::string_view chars) {
  const size_t first = text.find_first_not_of(chars);
  return first == std::string_view::npos ? std::string_view() : text.substr(first);
}

std::string_view rstrip_ascii(std::string_view text, std::string_view chars) {
  const size_t last = text.find_last_not_of(chars);
  return last == std::string_view::npos ? std::string_view() : text.substr(0, last + 1);
}

}  // namespace gptrain
