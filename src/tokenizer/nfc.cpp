#include "tokenizer/nfc.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uniset.h>

#include "util/error.h"

namespace gptrain::tokenizer_detail {

namespace {

// NFC applied only to the characters Unicode 9.0 had ([:age=9.0:] holds every code point assigned
// in 9.0 or before); the others pass through unchanged and end a normalization segment, which is
// what Unicode 9.0's own tables do with a character they do not know (a starter that never
// composes). Built once; ICU's normalizers and a frozen UnicodeSet are safe to share between threads.
const icu::Normalizer2& nfc_unicode9() {
  static const icu::Normalizer2* const normalizer = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    auto* unicode9 = new icu::UnicodeSet(icu::UnicodeString("[:age=9.0:]", -1, US_INV), status);
    if (U_FAILURE(status)) fail("ICU could not build its NFC normalizer: {}", u_errorName(status));
    unicode9->freeze();
    return new icu::FilteredNormalizer2(*nfc, *unicode9);
  }();
  return *normalizer;
}

}  // namespace

void append_nfc(std::string_view text, std::string& out) {
  // ICU takes at most 2^31 - 1 bytes at once. Longer text is cut before an ASCII character that
  // an ASCII character follows: neither combines with its neighbours, so the pieces are independent.
  constexpr size_t kMaxPiece = size_t{1} << 30;
  while (!text.empty()) {
    size_t take = text.size();
    if (take > kMaxPiece) {
      take = kMaxPiece;
      while (take + 1 < text.size() && !(static_cast<uint8_t>(text[take]) < 0x80 && static_cast<uint8_t>(text[take + 1]) < 0x80))
        ++take;
      if (take - kMaxPiece > kMaxPiece) fail("cannot normalize {} bytes without two ASCII characters in a row", text.size());
    }
    icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(take));
    UErrorCode status = U_ZERO_ERROR;
    nfc_unicode9().normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(take)), sink, nullptr, status);
    if (U_FAILURE(status)) fail("ICU's NFC normalizer failed on {} bytes of text: {}", take, u_errorName(status));
    text.remove_prefix(take);
  }
}

}  // namespace gptrain::tokenizer_detail
