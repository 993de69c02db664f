// Unicode NFC as Hugging Face tokenizers computes it (the "NFC" normalizer of Qwen's
// tokenizer.json). tokenizers uses the crate unicode-normalization-alignments, whose data is
// Unicode 9.0: a combining mark assigned later (U+0D3B, U+1AC1, ...) is an unknown character there,
// so it is neither reordered nor composed. ICU (libicu) with its normalization restricted to the
// characters of Unicode 9.0 gives exactly that (tested on every code point against tokenizers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace gptrain::tokenizer_detail {

// False when `text` is NFC for certain: every byte is below 0xCC, so every character is below
// U+0300, where no character decomposes or combines with the one before it (ICU's own cut-off).
// A byte test, so that ASCII and Latin-1 text skips the normalizer at memory speed.
inline bool may_need_nfc(std::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  uint8_t any = 0;
  for (size_t i = 0; i < text.size(); ++i) any |= static_cast<uint8_t>(s[i] >= 0xCC);
  return any != 0;
}

// `text` (valid UTF-8) in NFC, Unicode 9.0 data, appended to `out`.
void append_nfc(std::string_view text, std::string& out);

}  // namespace gptrain::tokenizer_detail
