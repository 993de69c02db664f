// Answers of an instruction-tuned model (the book's ch07 §7.7): greedy generation from the Alpaca
// prompt, stopping at end-of-text, the response extracted as the book does; or from a chat model's
// own template (data/chat_template.h), stopping at its end-of-turn and every eos id of the model.
// The same prompts in a chat session that keeps earlier turns within the context.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.h"
#include "data/instruction_data.h"
#include "generate/engine.h"
#include "tokenizer/bpe.h"
#include "util/unicode_text.h"

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
  // A chat template instead of the Alpaca prompt: the entry's instruction (and input) is the user's
  // message, after `system` when that is not empty.
  std::optional<data::ChatTemplate> chat;
  std::string system;
  bool enable_thinking = true;   // Qwen3 (see data::ChatRenderOptions)
  std::vector<int32_t> eos_ids;  // the model's (generation_config.json): generation stops at each too
};

// Where generation stops: the template's end-of-turn (Alpaca: the end-of-text) and options.eos_ids.
std::vector<int32_t> answer_stop_ids(const Tokenizer& tokenizer, const AnswerOptions& options);

// The prompt format of a model dir for chat and answer. template_option: "auto" (the dir's
// tokenizer_config.json says: gptrain's prompt format or a chat template there; else Alpaca),
// "alpaca", or "chat" (the dir's template, else the family's: Llama 3, Qwen3). chat_template_file
// (--chat-template) gives the template outright. nullopt means Alpaca.
std::optional<data::ChatTemplate> choose_chat_template(const std::filesystem::path& model_dir, const std::string& family,
                                                       const std::string& template_option,
                                                       const std::string& chat_template_file);

// The book's extraction: every "### Response:" removed, then Python's str.strip() (Unicode
// whitespace at both ends).
std::string extract_response(std::string_view generated_text);

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

// A token's bytes; U+FFFD for an id past the tokenizer's (a model's vocabulary may be padded, as
// Qwen3's 151936 rows over 151669 tokens, and a barely trained model can pick one).
std::string token_text(const Tokenizer& tokenizer, int32_t id);

// The text of generated ids (lossy UTF-8); an id past the tokenizer's vocabulary reads as U+FFFD.
std::string decode_text(const Tokenizer& tokenizer, const std::vector<int32_t>& ids);

// The tokenizer of a model dir (tokenizer.json, or vocab.json + merges.txt), or else the family's
// files in the data dir (--data-dir option, "" for the default).
Tokenizer load_tokenizer_for_model(const std::filesystem::path& model_dir, const std::string& family,
                                   const std::string& data_dir_option);

// A conversation. With the Alpaca template each message is an instruction (no input); earlier
// turns (prompt, response, end-of-text, as in training where every example ends with one) are
// kept as tokens before the new prompt. With a chat template the conversation is rendered anew
// each turn (system message, the kept exchanges, the new message), as transformers' chat does.
// Either way the oldest turns are dropped first when the context would overflow.
class ChatSession {
 public:
  ChatSession(const Transformer& model, const Tokenizer& tokenizer, const AnswerOptions& options,
              bool keep_history = true);

  // Streams the answer to `message` through on_text; should_stop() is polled after every token
  // (a true stops the answer early, and it is kept as far as it got). Returns the response text.
  std::string reply(const std::string& message, const std::function<void(std::string_view)>& on_text,
                    const std::function<bool()>& should_stop = {});
  void reset() {
    turns_.clear();
    exchanges_.clear();
  }

  int64_t turns_kept() const {
    return static_cast<int64_t>(options_.chat ? exchanges_.size() : turns_.size());
  }
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
  std::vector<std::vector<int32_t>> turns_;                    // Alpaca: each turn's tokens
  std::vector<std::pair<std::string, std::string>> exchanges_;  // chat: (message, reply) of each turn
  std::vector<int32_t> stop_ids_;
  std::vector<int32_t> prompt_ids(const std::string& message);
  int64_t dropped_ = 0;
  int64_t last_prompt_tokens_ = 0;
  int64_t replies_ = 0;  // numbers the replies: each samples from its own random stream
};

}  // namespace gptrain
