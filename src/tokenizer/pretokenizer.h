// The GPT-2 pre-tokenizer as a hand-written scanner, equal to tiktoken's regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// under leftmost-first alternation, over bytes that may hold invalid UTF-8. A regex engine spends
// most of tiktoken's time (its own notes say so); this scanner is a table lookup per character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/unicode_classes.h"

namespace gptrain::tokenizer_detail {

// End of the run of characters of class `cls` that starts at byte p (p itself not yet checked).
inline size_t class_run_end(const uint8_t* s, size_t n, size_t p, CharClass cls) {
  while (p < n) {
    const uint8_t b = s[p];
    if (b < 0x80) {
      if (kAscii.c[b] != cls) return p;
      ++p;
    } else {
      const CharInfo c = char_info(s + p, n - p);
      if (c.cls != cls) return p;
      p += c.len;
    }
  }
  return p;
}

// `\s+(?!\S)|\s+` at byte p, a space character: the whole run when it reaches the end of the
// text, else the run without its last character when that leaves at least one (the lookahead
// backtracks one character, so the last space can prefix the next word), else the one character.
// An invalid byte ends the text here, as in tiktoken, which splits only the valid prefix.
inline size_t space_run_end(const uint8_t* s, size_t n, size_t p) {
  size_t last_start = p;
  size_t count = 0;
  CharClass next = kInvalid;
  while (p < n) {
    const CharInfo c = char_info(s + p, n - p);
    if (c.cls != kSpace) {
      next = c.cls;
      break;
    }
    last_start = p;
    p += c.len;
    ++count;
  }
  if (p == n || next == kInvalid) return p;
  return count >= 2 ? last_start : p;
}

// The regex's contractions at s[p] == '\'': the end of 's 't 'm 'd 're 've 'll, or 0.
inline size_t contraction_end(const uint8_t* s, size_t n, size_t p) {
  if (p + 1 < n) {
    const uint8_t c1 = s[p + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
    if (p + 2 < n) {
      const uint8_t c2 = s[p + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return p + 3;
    }
  }
  return 0;
}

// Splits s[0, n) into pieces, in order: on_piece(begin, end) for each regex match and
// on_invalid(begin, end) for each maximal run of bytes that start no valid UTF-8 character.
// Together they cover [0, n) without gaps. The regex restarts after an invalid run as if a new
// text began there (what the caller does with the run is tokenizer policy, see bpe.cpp).
template <class OnPiece, class OnInvalid>
void pretokenize(const uint8_t* s, size_t n, OnPiece&& on_piece, OnInvalid&& on_invalid) {
  size_t pos = 0;
  while (pos < n) {
    const uint8_t b = s[pos];
    size_t end = 0;
    if (b < 0x80) {
      const CharClass cls = static_cast<CharClass>(kAscii.c[b]);
      if (b == '\'') end = contraction_end(s, n, pos);
      if (end == 0 && b == ' ' && pos + 1 < n) {
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one U+0020 may lead a run of any of them.
        const CharInfo next = char_info(s + pos + 1, n - pos - 1);
        if (next.cls <= kNumber) end = class_run_end(s, n, pos + 1 + next.len, next.cls);
      }
      if (end == 0) end = cls == kSpace ? space_run_end(s, n, pos) : class_run_end(s, n, pos + 1, cls);
    } else {
      const CharInfo c = char_info(s + pos, n - pos);
      if (c.cls == kInvalid) {
        end = pos + 1;
        while (end < n && char_info(s + end, n - end).cls == kInvalid) ++end;
        on_invalid(pos, end);
        pos = end;
        continue;
      }
      end = c.cls == kSpace ? space_run_end(s, n, pos) : class_run_end(s, n, pos + c.len, c.cls);
    }
    on_piece(pos, end);
    pos = end;
  }
}

// The pieces of `text` as strings, invalid runs included as their own entries; for tests and tools.
inline std::vector<std::string_view> split_pieces(std::string_view text) {
  std::vector<std::string_view> pieces;
  auto add = [&](size_t begin, size_t end) { pieces.push_back(text.substr(begin, end - begin)); };
  pretokenize(reinterpret_cast<const uint8_t*>(text.data()), text.size(), add, add);
  return pieces;
}

}  // namespace gptrain::tokenizer_detail
