// Answers and chat (ch07 §7.7): the book's response extraction, stopping at end-of-text, and the
// chat history kept within the context. The tests with a tokenizer need $GPTRAIN_TEST_DATA_DIR.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "generate/instruct.h"
#include "model/transformer.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;

TEST(ExtractResponse, as_the_books_replace_and_strip) {
  EXPECT_EQ(extract_response("\n\n### Response:\nThe car is as fast as a bullet."), "The car is as fast as a bullet.");
  EXPECT_EQ(extract_response("  plain answer \t\n"), "plain answer");
  // every occurrence goes, as str.replace
  EXPECT_EQ(extract_response("A ### Response: B### Response:"), "A  B");
  // Python's strip() removes Unicode whitespace (NBSP, ideographic space, U+2028) but not U+200B
  EXPECT_EQ(extract_response("\xC2\xA0\xE3\x80\x80x y\xE2\x80\xA8\x1F"), "x y");
  EXPECT_EQ(extract_response("\xE2\x80\x8Bx"), "\xE2\x80\x8Bx");
  EXPECT_EQ(extract_response(" \n "), "");
  EXPECT_EQ(strip_unicode_whitespace("\xFF a \xFF"), "\xFF a \xFF");  // invalid bytes are not space
}

class WithTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* d = std::getenv("GPTRAIN_TEST_DATA_DIR");
    if (!d || !fs::exists(fs::path(d) / "gpt2_tokenizer" / "encoder.json"))
      GTEST_SKIP() << "gpt2_tokenizer/ not found: set GPTRAIN_TEST_DATA_DIR";
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_dir(fs::path(d) / "gpt2_tokenizer"));
  }
  static ModelConfig tiny(int64_t context) {
    ModelConfig c;
    c.context_length = context;
    c.emb_dim = 16;
    c.n_heads = 2;
    c.n_layers = 1;
    c.drop_rate = 0;
    return c;
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(WithTokenizer, an_answer_stops_at_end_of_text_without_emitting_it) {
  Transformer m(tiny(64), 5);
  // Final norm gives the same vector (all ones) at every position, and only the end-of-text row
  // of the head sees it: every step's argmax is 50256.
  for (Parameter& p : m.params().all()) {
    if (p.name == "ln_f.weight") p.value.fill(0.0f);
    if (p.name == "ln_f.bias") p.value.fill(1.0f);
    if (p.name == "head.weight") {
      p.value.fill(0.0f);
      float* row = p.value.data() + 50256 * 16;
      for (int c = 0; c < 16; ++c) row[c] = 1.0f;
    }
  }
  data::InstructionEntry e;
  e.instruction = "Say nothing.";
  AnswerOptions o;
  const Answer a = answer_entry(m, *tokenizer_, e, o);
  EXPECT_TRUE(a.generated.empty());
  EXPECT_TRUE(a.stopped_at_eos);
  EXPECT_EQ(a.response, "");
}

TEST_F(WithTokenizer, answers_stream_whole_characters_and_match_the_saved_response) {
  Transformer m(tiny(128), 9);
  data::InstructionEntry e;
  e.instruction = "Translate 'Where is the library?' into Italian.";
  AnswerOptions o;
  o.max_new_tokens = 12;
  std::string streamed;
  const Answer a = answer_entry(m, *tokenizer_, e, o, [&](std::string_view t) { streamed += t; });
  EXPECT_EQ(static_cast<int64_t>(a.generated.size()), 12);  // random weights: end-of-text is unlikely
  EXPECT_FALSE(a.stopped_at_eos);
  EXPECT_EQ(extract_response(streamed), a.response);
}

TEST_F(WithTokenizer, chat_keeps_history_within_the_context_and_drops_the_oldest_turn) {
  AnswerOptions o;
  o.max_new_tokens = 8;
  data::InstructionEntry hello;
  hello.instruction = "Hello there.";
  const int64_t prompt_tokens = static_cast<int64_t>(tokenizer_->encode(data::format_prompt(hello)).size());
  {
    Transformer m(tiny(128), 3);
    ChatSession chat(m, *tokenizer_, o);
    EXPECT_EQ(chat.prompt_budget(), 120);
    chat.reply("Hello there.", {});
    EXPECT_EQ(chat.last_prompt_tokens(), prompt_tokens);
    chat.reply("Hello there.", {});
    EXPECT_EQ(chat.turns_dropped(), 0);
    // the first turn (prompt, up to 8 answer tokens, end-of-text) sits before the second prompt
    EXPECT_GT(chat.last_prompt_tokens(), 2 * prompt_tokens);
    EXPECT_LE(chat.last_prompt_tokens(), 2 * prompt_tokens + 9);
    chat.reset();
    chat.reply("Hello there.", {});
    EXPECT_EQ(chat.last_prompt_tokens(), prompt_tokens);
  }
  {
    Transformer m(tiny(64), 3);  // budget 56: a second prompt does not fit beside the first turn
    ChatSession chat(m, *tokenizer_, o);
    ASSERT_GT(2 * prompt_tokens + 1, chat.prompt_budget());  // even an empty first answer overflows
    chat.reply("Hello there.", {});
    chat.reply("Hello there.", {});
    EXPECT_EQ(chat.turns_dropped(), 1);
    EXPECT_EQ(chat.turns_kept(), 1);
    EXPECT_EQ(chat.last_prompt_tokens(), prompt_tokens);
  }
  {
    Transformer m(tiny(128), 3);
    ChatSession chat(m, *tokenizer_, o, /*keep_history=*/false);
    chat.reply("Hello there.", {});
    chat.reply("Hello there.", {});
    EXPECT_EQ(chat.last_prompt_tokens(), prompt_tokens);
    EXPECT_EQ(chat.turns_kept(), 0);
  }
}

TEST_F(WithTokenizer, chat_stops_an_answer_when_asked) {
  Transformer m(tiny(128), 3);
  AnswerOptions o;
  o.max_new_tokens = 50;
  ChatSession chat(m, *tokenizer_, o);
  int tokens = 0;
  chat.reply("Count to ten.", {}, [&] { return ++tokens >= 3; });
  EXPECT_EQ(tokens, 3);
  chat.reply("Again.", {});
  EXPECT_LE(chat.last_prompt_tokens(), chat.prompt_budget());
}

}  // namespace
}  // namespace gptrain
