// Streaming generated text: each token's bytes are printed as soon as they complete UTF-8
// characters. A token may end in the middle of a character (GPT-2's byte-level vocabulary splits
// many emoji and CJK characters); those bytes wait for the next token. Invalid bytes show as
// U+FFFD exactly as decoding the whole text at once would show them (utf8_lossy).
#pragma once

#include <string>
#include <string_view>

namespace gptrain {

class Utf8Stream {
 public:
  // The displayable text that `bytes` completes (possibly empty).
  std::string push(std::string_view bytes);
  // Whatever is still held back (an unfinished character becomes U+FFFD).
  std::string finish();

 private:
  std::string pending_;
};

}  // namespace gptrain
