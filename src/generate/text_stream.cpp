#include "generate/text_stream.h"

#include <cstdint>

#include "tokenizer/bpe.h"

namespace gptrain {

namespace {

// Bytes a character starting with `lead` needs in all (0: not a lead byte of a valid sequence).
int sequence_length(uint8_t lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether s[i..] (shorter than the character it starts) can still become a valid character: the
// second byte's range depends on the lead byte (no overlong forms, surrogates or > U+10FFFF).
bool unfinished_character(std::string_view s, size_t i) {
  const auto lead = static_cast<uint8_t>(s[i]);
  const int need = sequence_length(lead);
  const size_t have = s.size() - i;
  if (need == 0 || have >= static_cast<size_t>(need)) return false;
  for (size_t k = 1; k < have; ++k) {
    const auto c = static_cast<uint8_t>(s[i + k]);
    uint8_t lo = 0x80, hi = 0xBF;
    if (k == 1) {
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    }
    if (c < lo || c > hi) return false;
  }
  return true;
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  // Hold back an unfinished character at the end: it starts at one of the last three bytes.
  // Cutting before a lead byte never changes how the bytes before it decode, since a lead byte
  // cannot continue an earlier sequence.
  size_t keep_from = pending_.size();
  for (size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const size_t i = pending_.size() - back;
    if (sequence_length(static_cast<uint8_t>(pending_[i])) != 0) {
      if (unfinished_character(pending_, i)) keep_from = i;
      break;
    }
  }
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, keep_from));
  pending_.erase(0, keep_from);
  return out;
}

std::string Utf8Stream::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace gptrain
