// Answers of an instruction-tuned model (the book's ch07 §7.7): greedy generation from the Alpaca
// prompt, stopping at end-of-text, the response extracted as the book does; the same prompts in a
// chat session that keeps earlier turns within the context.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/instruction_data.h"
#include "generate/engine.h"
#include "tokenizer/bpe.h"

namespace gptrain {

struct AnswerOptions {
  int64_t max_new_tokens = 256;
  SamplingOptions sampling;  // greedy by default, as the book
  // Prompt with format_input + "\n\n### Response:\n" (default). Off: format_input alone, the
  // book's exact generation prompt, where the model writes "### Response:" itself; that suits only
  // a model trained without prompt masking (a masked model never learned to write the header).
  bool response_header = true;
  // Entries answered together (answer_entries): one decode pass advances all of them, and each
  // answer is exactly the one it gets alone (the engine's products are batch-invariant).
  int64_t batch_size = 8;
};

// The book's extraction: every "### Response:" removed, then Python's str.strip() (Unicode
// whitespace at both ends).
std::string extract_response(std::string_view generated_text);

// Python's str.strip() on UTF-8 text.
std::string strip_unicode_whitespace(std::string_view text);

struct Answer {
  std::string response;          // extracted as the book does
  std::vector<int32_t> generated;  // the generated ids (no end-of-text)
  bool stopped_at_eos = false;   // false: max_new_tokens reached
};

// Generates the answer to one entry. on_text receives the generated text as it streams (whole UTF-8
// characters, see Utf8Stream).
Answer answer_entry(const Transformer& model, const Tokenizer& tokenizer, const data::InstructionEntry& entry,
                    const AnswerOptions& options, const std::function<void(std::string_view)>& on_text = {});

struct AnswerStats {
  int64_t entries = 0, generated_tokens = 0, hit_max_new_tokens = 0;
  double seconds = 0;
};

// Answers every entry (the book's loop over test_data), options.batch_size at a time through one
// decode engine; `log` receives a progress line every 10 entries and a summary at the end.
// Returns the extracted responses, in entry order.
std::vector<std::string> answer_entries(const Transformer& model, const Tokenizer& tokenizer,
                                        const std::vector<data::InstructionEntry>& entries,
                                        const AnswerOptions& options, AnswerStats& stats,
                                        const std::function<void(const std::string&)>& log = {});

// The vocabulary of a model dir (vocab.json + merges.txt), or else the GPT-2 files of the data
// dir (--data-dir option, "" for the default).
Tokenizer load_tokenizer_for_model(const std::filesystem::path& model_dir, const std::string& data_dir_option);

// A conversation with the Alpaca template: each message is an instruction (no input); earlier
// turns (prompt, response, end-of-text, as in training where every example ends with one) are
// kept before the new prompt, the oldest dropped first when the context would overflow.
class ChatSession {
 public:
  ChatSession(const Transformer& model, const Tokenizer& tokenizer, const AnswerOptions& options,
              bool keep_history = true);

  // Streams the answer to `message` through on_text; should_stop() is polled after every token
  // (a true stops the answer early, and it is kept as far as it got). Returns the response text.
  std::string reply(const std::string& message, const std::function<void(std::string_view)>& on_text,
                    const std::function<bool()>& should_stop = {});
  void reset() { turns_.clear(); }

  int64_t turns_kept() const { return static_cast<int64_t>(turns_.size()); }
  int64_t turns_dropped() const { return dropped_; }
  // Tokens of the last prompt (history included).
  int64_t last_prompt_tokens() const { return last_prompt_tokens_; }
  // The most prompt tokens kept so a full answer still fits the context.
  int64_t prompt_budget() const;

 private:
  const Transformer& model_;
  const Tokenizer& tokenizer_;
  AnswerOptions options_;
  bool keep_history_;
  std::vector<std::vector<int32_t>> turns_;
  int64_t dropped_ = 0;
  int64_t last_prompt_tokens_ = 0;
  int64_t replies_ = 0;  // numbers the replies: each samples from its own random stream
};

}  // namespace gptrain
