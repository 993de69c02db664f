// The hand-written pre-tokenizer against the regex semantics it replaces: the Unicode classes of
// every code point against tiktoken's (probed fixture), and piece boundaries on the cases where a
// scanner is most likely to differ from a backtracking regex.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "tokenizer/pretokenizer.h"

namespace gptrain {
namespace {

using tokenizer_detail::split_pieces;

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view p : split_pieces(text)) out.emplace_back(p);
  return out;
}

TEST(UnicodeClasses, every_code_point_matches_tiktoken) {
  const auto path = test::fixtures_dir() / "tiktoken_unicode_classes.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found; run tests/tools/gen_tokenizer_fixtures.py --probe-classes";
  std::istringstream in(test::read_file(path));
  std::vector<std::pair<uint32_t, int>> ranges;  // (first code point, class)
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    uint32_t first = 0;
    int cls = 0;
    fields >> std::hex >> first >> std::dec >> cls;
    ranges.emplace_back(first, cls);
  }
  ASSERT_GT(ranges.size(), 1000u);
  size_t r = 0, checked = 0, wrong = 0;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    while (r + 1 < ranges.size() && ranges[r + 1].first <= cp) ++r;
    const int ours = tokenizer_detail::unicode_class(cp);
    if (ours != ranges[r].second && wrong++ < 10)
      ADD_FAILURE() << fmt::format("U+{:04X}: class {} here, {} in tiktoken", cp, ours, ranges[r].second);
    ++checked;
  }
  EXPECT_EQ(checked, 0x110000u - 0x800u);
  EXPECT_EQ(wrong, 0u) << "code points whose class differs from tiktoken's; regenerate with tools/gen_unicode_classes.py";
}

TEST(Pretokenizer, contractions_only_lowercase_and_only_at_a_piece_start) {
  EXPECT_EQ(pieces("don't"), (std::vector<std::string>{"don", "'t"}));
  EXPECT_EQ(pieces("DON'T"), (std::vector<std::string>{"DON", "'", "T"}));
  EXPECT_EQ(pieces("we'll've'd"), (std::vector<std::string>{"we", "'ll", "'ve", "'d"}));
  EXPECT_EQ(pieces("''s"), (std::vector<std::string>{"''", "s"}));  // the punctuation run takes both quotes
  EXPECT_EQ(pieces("'l"), (std::vector<std::string>{"'", "l"}));
  EXPECT_EQ(pieces("'s'"), (std::vector<std::string>{"'s", "'"}));
  EXPECT_EQ(pieces(" 's"), (std::vector<std::string>{" '", "s"}));
  EXPECT_EQ(pieces("x’s"), (std::vector<std::string>{"x", "’", "s"}));  // typographic apostrophe: punctuation
}

TEST(Pretokenizer, one_space_prefixes_letters_numbers_and_punctuation) {
  EXPECT_EQ(pieces("Hello world"), (std::vector<std::string>{"Hello", " world"}));
  EXPECT_EQ(pieces(" 12a"), (std::vector<std::string>{" 12", "a"}));
  EXPECT_EQ(pieces(" !!a"), (std::vector<std::string>{" !!", "a"}));
  EXPECT_EQ(pieces("abc123def"), (std::vector<std::string>{"abc", "123", "def"}));
  EXPECT_EQ(pieces("3.14"), (std::vector<std::string>{"3", ".", "14"}));
  EXPECT_EQ(pieces("e\xcc\x81t\xc3\xa9"), (std::vector<std::string>{"e", "\xcc\x81", "t\xc3\xa9"}));  // U+0301 is a mark
  EXPECT_EQ(pieces("\xe4\xb8\xad\xe6\x96\x87 x"), (std::vector<std::string>{"\xe4\xb8\xad\xe6\x96\x87", " x"}));
}

TEST(Pretokenizer, space_runs_give_their_last_space_to_the_next_word) {
  EXPECT_EQ(pieces("a  b"), (std::vector<std::string>{"a", " ", " b"}));
  EXPECT_EQ(pieces("a \t b"), (std::vector<std::string>{"a", " \t", " b"}));
  EXPECT_EQ(pieces("a\n\nb"), (std::vector<std::string>{"a", "\n", "\n", "b"}));  // "\n" cannot prefix a word
  EXPECT_EQ(pieces("a\tb"), (std::vector<std::string>{"a", "\t", "b"}));
  EXPECT_EQ(pieces("a   \n"), (std::vector<std::string>{"a", "   \n"}));  // at the end: the whole run
  EXPECT_EQ(pieces("   "), (std::vector<std::string>{"   "}));
  EXPECT_EQ(pieces(" "), (std::vector<std::string>{" "}));
  EXPECT_EQ(pieces("x\xc2\xa0y"), (std::vector<std::string>{"x", "\xc2\xa0", "y"}));  // U+00A0 is \s, not ' '
  EXPECT_EQ(pieces("  \xe3\x80\x80x"), (std::vector<std::string>{"  ", "\xe3\x80\x80", "x"}));
  EXPECT_EQ(pieces("a\x1c\x1f"), (std::vector<std::string>{"a", "\x1c\x1f"}));  // not White_Space
  EXPECT_EQ(pieces(""), std::vector<std::string>{});
}

TEST(Pretokenizer, invalid_utf8_ends_the_text_and_splitting_restarts_after_it) {
  EXPECT_EQ(pieces("ab\xff" "cd"), (std::vector<std::string>{"ab", "\xff", "cd"}));
  EXPECT_EQ(pieces("\xe2\x80"), (std::vector<std::string>{"\xe2\x80"}));  // one run: truncated character
  EXPECT_EQ(pieces(" \xff"), (std::vector<std::string>{" ", "\xff"}));
  EXPECT_EQ(pieces("a  \xff"), (std::vector<std::string>{"a", "  ", "\xff"}));  // the space run reaches "the end"
  EXPECT_EQ(pieces("\xed\xa0\x80x"), (std::vector<std::string>{"\xed\xa0\x80", "x"}));  // an encoded surrogate
  EXPECT_EQ(pieces("\xc0\xaf\xf4\x90\x80\x80"), (std::vector<std::string>{"\xc0\xaf\xf4\x90\x80\x80"}));
}

TEST(Pretokenizer, random_bytes_are_covered_without_gaps) {
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) {
      const uint32_t r = rng();
      c = static_cast<char>(r % 3 == 0 ? " \t\n'sa1!"[r % 8] : static_cast<char>(r >> 8));
    }
    std::string joined;
    for (std::string_view p : split_pieces(text)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace gptrain
