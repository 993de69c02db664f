// The pre-tokenizers as hand-written scanners. GPT-2's is equal to tiktoken's regex
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
// Always inlined: with three scanners in one file GCC stopped inlining it, and GPT-2's encoding
// lost 5%.
[[gnu::always_inline]] inline size_t class_run_end(const uint8_t* s, size_t n, size_t p, CharClass cls) {
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

// ------------------------------------------------------------------------------------------------
// Llama 3's and Qwen2's pre-tokenizer (Hugging Face tokenizers' Split with behavior Isolated over
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// and the same with \p{N} for \p{N}{1,3} in Qwen2's) as one scanner, kMaxDigits 3 or 1. The regex
// is Oniguruma's there: leftmost-first alternation, and its \p{L}, \p{N} and \s are the classes
// of unicode_classes.h exactly (every code point was probed through tokenizers). Every character
// is matched by some alternative, so the Split leaves no gaps between the pieces.

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[p] == '\'': the end, or 0. Case-insensitive matching folds
// U+017F LATIN SMALL LETTER LONG S (C5 BF) to 's' too; no other non-ASCII character folds to
// one of these letters (probed).
inline size_t contraction_end_any_case(const uint8_t* s, size_t n, size_t p) {
  if (p + 1 >= n) return 0;
  // b | 0x20 lowercases an ASCII letter; only 'S'/'s' become 's', and so on for each letter here.
  const uint8_t c1 = s[p + 1] | 0x20;
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return p + 2;
  if (p + 2 >= n) return 0;
  if (s[p + 1] == 0xC5 && s[p + 2] == 0xBF) return p + 3;  // 'ſ
  const uint8_t c2 = s[p + 2] | 0x20;
  if (((c1 == 'r' || c1 == 'v') && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return p + 3;
  return 0;
}

// [\r\n]* from p.
inline size_t newline_run_end(const uint8_t* s, size_t n, size_t p) {
  while (p < n && (s[p] == '\r' || s[p] == '\n')) ++p;
  return p;
}

// The whitespace alternatives at byte p, a space character: `\s*[\r\n]+` when the run of space
// characters holds a line break (greedy \s* backtracks to the run's last \r or \n, so the piece
// ends just after it), else `\s+(?!\S)|\s+` as in GPT-2's space_run_end().
inline size_t newline_or_space_run_end(const uint8_t* s, size_t n, size_t p) {
  size_t last_start = p, after_line_break = 0, count = 0;
  CharClass next = kInvalid;
  while (p < n) {
    const CharInfo c = char_info(s + p, n - p);
    if (c.cls != kSpace) {
      next = c.cls;
      break;
    }
    if (s[p] == '\r' || s[p] == '\n') after_line_break = p + 1;
    last_start = p;
    p += c.len;
    ++count;
  }
  if (after_line_break != 0) return after_line_break;
  if (p == n || next == kInvalid) return p;
  return count >= 2 ? last_start : p;
}

// The end of the piece that starts at byte p, character c (valid), after the contractions.
template <int kMaxDigits>
size_t llama3_piece_end(const uint8_t* s, size_t n, size_t p, CharInfo c) {
  const size_t next = p + c.len;
  if (c.cls == kLetter) return class_run_end(s, n, next, kLetter);
  if (c.cls == kNumber) {
    size_t end = next;
    for (int k = 1; k < kMaxDigits && end < n; ++k) {
      const CharInfo d = char_info(s + end, n - end);
      if (d.cls != kNumber) break;
      end += d.len;
    }
    return end;
  }
  // Other or space. First `[^\r\n\p{L}\p{N}]?\p{L}+`: any such character may lead a word.
  const CharInfo after = next < n ? char_info(s + next, n - next) : CharInfo{kInvalid, 0};
  const bool line_break = s[p] == '\r' || s[p] == '\n';
  if (!line_break && after.cls == kLetter) return class_run_end(s, n, next + after.len, kLetter);
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  if (c.cls == kOther) return newline_run_end(s, n, class_run_end(s, n, next, kOther));
  if (s[p] == ' ' && after.cls == kOther) return newline_run_end(s, n, class_run_end(s, n, next + after.len, kOther));
  return newline_or_space_run_end(s, n, p);
}

// Splits s[0, n) as pretokenize() does (the same callbacks, the same treatment of invalid bytes,
// which a Hugging Face tokenizer never sees: it takes only valid UTF-8).
template <int kMaxDigits, class OnPiece, class OnInvalid>
void pretokenize_llama3(const uint8_t* s, size_t n, OnPiece&& on_piece, OnInvalid&& on_invalid) {
  static_assert(kMaxDigits >= 1);
  size_t pos = 0;
  while (pos < n) {
    const CharInfo c = char_info(s + pos, n - pos);
    if (c.cls == kInvalid) {
      size_t end = pos + 1;
      while (end < n && char_info(s + end, n - end).cls == kInvalid) ++end;
      on_invalid(pos, end);
      pos = end;
      continue;
    }
    size_t end = s[pos] == '\'' ? contraction_end_any_case(s, n, pos) : 0;
    if (end == 0) end = llama3_piece_end<kMaxDigits>(s, n, pos, c);
    on_piece(pos, end);
    pos = end;
  }
}

// The pre-tokenizers gptrain knows (the regex each one equals is above).
enum class Pattern : uint8_t { kGpt2, kLlama3, kQwen2 };

// Calls pretokenize*() of `pattern`.
template <class OnPiece, class OnInvalid>
void pretokenize(Pattern pattern, const uint8_t* s, size_t n, OnPiece&& on_piece, OnInvalid&& on_invalid) {
  switch (pattern) {
    case Pattern::kGpt2: pretokenize(s, n, on_piece, on_invalid); break;
    case Pattern::kLlama3: pretokenize_llama3<3>(s, n, on_piece, on_invalid); break;
    case Pattern::kQwen2: pretokenize_llama3<1>(s, n, on_piece, on_invalid); break;
  }
}

// The pieces of `text` as strings, invalid runs included as their own entries; for tests and tools.
inline std::vector<std::string_view> split_pieces(std::string_view text, Pattern pattern = Pattern::kGpt2) {
  std::vector<std::string_view> pieces;
  auto add = [&](size_t begin, size_t end) { pieces.push_back(text.substr(begin, end - begin)); };
  pretokenize(pattern, reinterpret_cast<const uint8_t*>(text.data()), text.size(), add, add);
  return pieces;
}

}  // namespace gptrain::tokenizer_detail
