// Character classes of the pre-tokenizers and strict UTF-8 decoding, both inline because the
// scanners call them once per character on the hot path (always_inline: with three scanners in
// bpe.cpp GCC stopped inlining them, and GPT-2's encoding ran more instructions).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tokenizer/unicode_classes_data.h"

namespace gptrain::tokenizer_detail {

// The values 0..3 are the generated table's; kInvalid marks a byte that starts no valid UTF-8
// sequence (it is never in the table).
enum CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3, kInvalid = 4 };

// cp must be <= 0x10FFFF.
inline CharClass unicode_class(uint32_t cp) {
  const uint32_t block = kUnicodeClassStage1[cp >> 8];
  const uint32_t packed = kUnicodeClassBlocks[block * 64 + ((cp & 255) >> 2)];
  return static_cast<CharClass>((packed >> ((cp & 3) * 2)) & 3);
}

// ASCII classes with the same meaning; a separate 128-byte table because ASCII dominates English.
struct AsciiClasses {
  uint8_t c[128];
  constexpr AsciiClasses() : c{} {
    for (int i = 0; i < 128; ++i) c[i] = kOther;
    for (int i = 'a'; i <= 'z'; ++i) c[i] = kLetter;
    for (int i = 'A'; i <= 'Z'; ++i) c[i] = kLetter;
    for (int i = '0'; i <= '9'; ++i) c[i] = kNumber;
    for (int i : {'\t', '\n', '\v', '\f', '\r', ' '}) c[i] = kSpace;  // 0x1C..0x1F are not White_Space
  }
};
inline constexpr AsciiClasses kAscii{};

// Decodes one strict UTF-8 character at s[0..n) (n >= 1) as Rust's str and Python's decoder
// accept it: no overlong forms, no surrogates (ED A0..BF), nothing above U+10FFFF. Returns its
// length in bytes (1..4) and stores the code point, or returns 0 when s[0] starts no valid
// character (the caller then treats that one byte as invalid and moves on).
[[gnu::always_inline]] inline size_t decode_utf8(const uint8_t* s, size_t n, uint32_t& cp) {
  const uint32_t b0 = s[0];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  auto cont = [&](size_t i) { return i < n && (s[i] & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (!cont(1)) return 0;
    cp = ((b0 & 0x1F) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (n < 3 || !cont(1) || !cont(2)) return 0;
    const uint32_t b1 = s[1];
    if ((b0 == 0xE0 && b1 < 0xA0) || (b0 == 0xED && b1 > 0x9F)) return 0;  // overlong; surrogate
    cp = ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (s[2] & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (n < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    const uint32_t b1 = s[1];
    if ((b0 == 0xF0 && b1 < 0x90) || (b0 == 0xF4 && b1 > 0x8F)) return 0;  // overlong; > U+10FFFF
    cp = ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
  }
  return 0;  // 0x80..0xC1 (continuation or overlong lead), 0xF5..0xFF
}

// The class and byte length of the character at s[0..n), n >= 1; an invalid byte is
// {kInvalid, 1}.
struct CharInfo {
  CharClass cls;
  uint32_t len;
};
[[gnu::always_inline]] inline CharInfo char_info(const uint8_t* s, size_t n) {
  if (s[0] < 0x80) return {static_cast<CharClass>(kAscii.c[s[0]]), 1};
  uint32_t cp = 0;
  const size_t len = decode_utf8(s, n, cp);
  if (len == 0) return {kInvalid, 1};
  return {unicode_class(cp), static_cast<uint32_t>(len)};
}

}  // namespace gptrain::tokenizer_detail
