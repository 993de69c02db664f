// Streaming decode: text is printed as soon as characters are complete, a character split across
// tokens waits for its last byte, and the streamed pieces always add up to decoding the whole
// byte string at once (invalid bytes as U+FFFD, like tiktoken's decode).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "generate/text_stream.h"
#include "tokenizer/bpe.h"

namespace gptrain {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";

TEST(Utf8Stream, complete_characters_pass_at_once_split_ones_wait) {
  Utf8Stream s;
  EXPECT_EQ(s.push("abc"), "abc");
  EXPECT_EQ(s.push("\xC3"), "");          // first byte of é
  EXPECT_EQ(s.push("\xA9 x"), "\xC3\xA9 x");
  EXPECT_EQ(s.push("\xF0\x9F"), "");      // 🤖 = F0 9F A4 96 in three pieces
  EXPECT_EQ(s.push("\xA4"), "");
  EXPECT_EQ(s.push("\x96!"), "\xF0\x9F\xA4\x96!");
  EXPECT_EQ(s.finish(), "");
}

TEST(Utf8Stream, invalid_bytes_become_replacement_characters) {
  Utf8Stream s;
  EXPECT_EQ(s.push("\xFF"), kReplacement);                 // never valid
  EXPECT_EQ(s.push("\xE2\x28"), kReplacement + "(");       // lead byte then no continuation
  EXPECT_EQ(s.push("\xED\xA0"), kReplacement + kReplacement);  // a surrogate can never complete
  EXPECT_EQ(s.push("\xE4\xB8"), "");                       // unfinished 世 ...
  EXPECT_EQ(s.finish(), kReplacement);                     // ... at the end is one U+FFFD
}

TEST(Utf8Stream, streamed_pieces_equal_decoding_everything_at_once) {
  std::mt19937 rng(5);
  const std::vector<std::string> atoms = {"a", " ", "\xC3\xA9", "\xE4\xB8\x96", "\xF0\x9F\xA4\x96", "\xFF", "\x80",
                                          "\xC3", "\xE4\xB8", "\xF0\x9F", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80"};
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) bytes += atoms[rng() % atoms.size()];
    Utf8Stream s;
    std::string streamed;
    for (size_t at = 0; at < bytes.size();) {
      const size_t len = std::min<size_t>(bytes.size() - at, 1 + rng() % 4);
      streamed += s.push(std::string_view(bytes).substr(at, len));
      at += len;
    }
    streamed += s.finish();
    ASSERT_EQ(streamed, utf8_lossy(bytes)) << "trial " << trial;
  }
}

TEST(Utf8Stream, gpt2_tokens_that_split_characters) {
  const char* data = std::getenv("GPTRAIN_TEST_DATA_DIR");
  const std::filesystem::path dir = data ? std::filesystem::path(data) / "gpt2_tokenizer" : "";
  if (!data || !std::filesystem::exists(dir / "encoder.json")) GTEST_SKIP() << "no GPT-2 vocabulary (GPTRAIN_TEST_DATA_DIR)";
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const std::string text = "Robots \xF0\x9F\xA4\x96 say \xE4\xB8\x96\xE7\x95\x8C, na\xC3\xAFvely \xF0\x9F\x98\x80\xF0\x9F\x98\x80!";
  const std::vector<int32_t> ids = tok.encode(text);
  Utf8Stream s;
  std::string streamed;
  int held = 0;  // tokens whose bytes ended inside a character
  for (int32_t id : ids) {
    const std::string piece = tok.decode_token(id);
    const std::string shown = s.push(piece);
    held += shown.size() < piece.size();
    EXPECT_EQ(shown.find(kReplacement), std::string::npos);
    streamed += shown;
  }
  streamed += s.finish();
  EXPECT_EQ(streamed, text);
  EXPECT_GT(held, 0) << "the text should contain characters split across tokens";
}

}  // namespace
}  // namespace gptrain
