// The hand-written pre-tokenizers against the regex semantics they replace: the Unicode classes of
// every code point against tiktoken's (probed fixture; tokenizers' Oniguruma classes were probed
// equal to them), and piece boundaries on the cases where a scanner is most likely to differ from a
// backtracking regex: GPT-2's pattern, then Llama 3's and Qwen2's (expected pieces taken from
// tokenizers' Split; hf_tokenizer_test.cpp compares every adversarial text with tokenizers too).
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

using tokenizer_detail::Pattern;
using tokenizer_detail::split_pieces;
using Pieces = std::vector<std::string>;

Pieces pieces(std::string_view text, Pattern pattern = Pattern::kGpt2) {
  Pieces out;
  for (std::string_view p : split_pieces(text, pattern)) out.emplace_back(p);
  return out;
}
Pieces llama3(std::string_view text) { return pieces(text, Pattern::kLlama3); }
Pieces qwen2(std::string_view text) { return pieces(text, Pattern::kQwen2); }

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

// ------------------------------------------------------------------------------------------------
// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//          \s*[\r\n]+|\s+(?!\S)|\s+        (Qwen2: \p{N} instead of \p{N}{1,3})

TEST(Llama3Pretokenizer, contractions_in_any_case) {
  EXPECT_EQ(llama3("DON'T"), (Pieces{"DON", "'T"}));
  EXPECT_EQ(llama3("we'LL've'D"), (Pieces{"we", "'LL", "'ve", "'D"}));
  EXPECT_EQ(llama3("'S'S"), (Pieces{"'S", "'S"}));
  EXPECT_EQ(llama3("x'Sy"), (Pieces{"x", "'S", "y"}));
  EXPECT_EQ(llama3("I'm you'Re they'vE"), (Pieces{"I", "'m", " you", "'Re", " they", "'vE"}));
  EXPECT_EQ(llama3("'sup"), (Pieces{"'s", "up"}));  // the contraction wins over a longer word
  EXPECT_EQ(llama3("'hello"), (Pieces{"'hello"}));  // no contraction: the quote leads the word
  EXPECT_EQ(llama3("''s"), (Pieces{"''", "s"}));
  // Case-insensitive 's' also matches U+017F LONG S (it case-folds to 's'), not the ligature U+FB06.
  EXPECT_EQ(llama3("'\xc5\xbfx"), (Pieces{"'\xc5\xbf", "x"}));
  EXPECT_EQ(llama3("'\xef\xac\x86"), (Pieces{"'\xef\xac\x86"}));
  EXPECT_EQ(llama3("'"), (Pieces{"'"}));
  EXPECT_EQ(llama3("'l"), (Pieces{"'l"}));  // half of 'll: the quote leads the word
}

TEST(Llama3Pretokenizer, digits_in_threes_qwen2_one_by_one) {
  EXPECT_EQ(llama3("1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(qwen2("1234567"), (Pieces{"1", "2", "3", "4", "5", "6", "7"}));
  EXPECT_EQ(llama3("12 345"), (Pieces{"12", " ", "345"}));  // no space before a number
  EXPECT_EQ(llama3("x1234y"), (Pieces{"x", "123", "4", "y"}));
  EXPECT_EQ(llama3("\xd9\xa3\xd9\xa3\xd9\xa3\xd9\xa3"), (Pieces{"\xd9\xa3\xd9\xa3\xd9\xa3", "\xd9\xa3"}));  // U+0663
  EXPECT_EQ(llama3("\xe2\x85\xab\xc2\xbd\xc2\xb2\xc2\xb3"), (Pieces{"\xe2\x85\xab\xc2\xbd\xc2\xb2", "\xc2\xb3"}));  // Nl, No
  EXPECT_EQ(qwen2("12 345"), (Pieces{"1", "2", " ", "3", "4", "5"}));
  EXPECT_EQ(llama3("3.14"), (Pieces{"3", ".", "14"}));
}

TEST(Llama3Pretokenizer, any_character_but_a_line_break_letter_or_digit_leads_a_word) {
  EXPECT_EQ(llama3("!hello"), (Pieces{"!hello"}));
  EXPECT_EQ(llama3("(hello)"), (Pieces{"(hello", ")"}));
  EXPECT_EQ(llama3(" hello"), (Pieces{" hello"}));
  EXPECT_EQ(llama3("\thello"), (Pieces{"\thello"}));
  EXPECT_EQ(llama3("\xc2\xa0hello"), (Pieces{"\xc2\xa0hello"}));      // U+00A0
  EXPECT_EQ(llama3("\xe3\x80\x80hello"), (Pieces{"\xe3\x80\x80hello"}));  // U+3000
  EXPECT_EQ(llama3("a\xe2\x80\xa8" "b"), (Pieces{"a", "\xe2\x80\xa8" "b"}));  // U+2028 is \s, not [\r\n]
  EXPECT_EQ(llama3("\nhello"), (Pieces{"\n", "hello"}));
  EXPECT_EQ(llama3("\r\nhello"), (Pieces{"\r\n", "hello"}));
  EXPECT_EQ(llama3("1hello"), (Pieces{"1", "hello"}));
  EXPECT_EQ(llama3("!!hello"), (Pieces{"!!", "hello"}));  // a run of two is punctuation: no letter after the first
  EXPECT_EQ(llama3(" !abc"), (Pieces{" !", "abc"}));
}

TEST(Llama3Pretokenizer, punctuation_takes_the_line_breaks_after_it) {
  EXPECT_EQ(llama3(" !!"), (Pieces{" !!"}));
  EXPECT_EQ(llama3(" !!\n\nx"), (Pieces{" !!\n\n", "x"}));
  EXPECT_EQ(llama3("!!\r\n\r\n"), (Pieces{"!!\r\n\r\n"}));
  EXPECT_EQ(llama3(" !\n"), (Pieces{" !\n"}));
  EXPECT_EQ(llama3("x;\n  y"), (Pieces{"x", ";\n", " ", " y"}));
  EXPECT_EQ(llama3("x; \ny"), (Pieces{"x", ";", " \n", "y"}));  // not across a space
}

TEST(Llama3Pretokenizer, white_space_up_to_its_last_line_break) {
  EXPECT_EQ(llama3("a\n\nb"), (Pieces{"a", "\n\n", "b"}));
  EXPECT_EQ(llama3("a \n\n  b"), (Pieces{"a", " \n\n", " ", " b"}));
  EXPECT_EQ(llama3("a\n \n b"), (Pieces{"a", "\n \n", " b"}));
  EXPECT_EQ(llama3("a  \n"), (Pieces{"a", "  \n"}));
  EXPECT_EQ(llama3("\n\n\n"), (Pieces{"\n\n\n"}));
  EXPECT_EQ(llama3(" \r\n "), (Pieces{" \r\n", " "}));
  EXPECT_EQ(llama3("\xc2\x85\xc2\x85x"), (Pieces{"\xc2\x85", "\xc2\x85x"}));  // U+0085 is \s, not [\r\n]
}

TEST(Llama3Pretokenizer, trailing_spaces_and_space_runs) {
  EXPECT_EQ(llama3("a  "), (Pieces{"a", "  "}));
  EXPECT_EQ(llama3("a   b"), (Pieces{"a", "  ", " b"}));
  EXPECT_EQ(llama3("a \t"), (Pieces{"a", " \t"}));
  EXPECT_EQ(llama3("a\t\tb"), (Pieces{"a", "\t", "\tb"}));
  EXPECT_EQ(llama3("x   "), (Pieces{"x", "   "}));
  EXPECT_EQ(llama3(" "), (Pieces{" "}));
  EXPECT_EQ(llama3("a\x1c\x1c" "b"), (Pieces{"a", "\x1c\x1c", "b"}));  // U+001C is not \s but punctuation
}

TEST(Llama3Pretokenizer, empty_and_invalid_input) {
  EXPECT_EQ(llama3(""), Pieces{});
  EXPECT_EQ(qwen2(""), Pieces{});
  // A tokenizer.json never sees invalid UTF-8 (it is replaced first); the scanner treats it as
  // GPT-2's does: its own run, and splitting restarts after it.
  EXPECT_EQ(llama3("ab\xff" "cd"), (Pieces{"ab", "\xff", "cd"}));
  EXPECT_EQ(llama3("a  \xff"), (Pieces{"a", "  ", "\xff"}));
  EXPECT_EQ(llama3("'\xff"), (Pieces{"'", "\xff"}));
  EXPECT_EQ(llama3("\xe2\x80"), (Pieces{"\xe2\x80"}));
}

TEST(Llama3Pretokenizer, random_bytes_are_covered_without_gaps) {
  std::mt19937 rng(11);
  for (Pattern pattern : {Pattern::kLlama3, Pattern::kQwen2}) {
    for (int round = 0; round < 2000; ++round) {
      std::string text(rng() % 64, '\0');
      for (char& c : text) {
        const uint32_t r = rng();
        c = static_cast<char>(r % 3 == 0 ? " \t\n\r'sSa1!"[r % 11] : static_cast<char>(r >> 8));
      }
      std::string joined;
      for (std::string_view p : split_pieces(text, pattern)) {
        ASSERT_FALSE(p.empty());
        joined += p;
      }
      ASSERT_EQ(joined, text);
    }
  }
}

}  // namespace
}  // namespace gptrain
