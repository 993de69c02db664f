// Preference data (the book's chapter 7 DPO bonus): Alpaca-format entries that also carry a
// `chosen` and a `rejected` response (instruction-data-with-preference.json), tokenized as the
// book's PreferenceDataset, and collated as its custom_collate_fn, in the shape a language-model
// forward pass takes: one batch of 2P rows, the P chosen sequences then the P rejected ones.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/instruction_data.h"
#include "tokenizer/bpe.h"

namespace gptrain::data {

struct PreferenceEntry {
  InstructionEntry entry;  // instruction, input (and output when present), index and line
  std::string chosen, rejected;
};

// An Alpaca JSON array or JSON Lines file (load_instruction_file) whose every entry has the
// strings `chosen` and `rejected`, neither empty (nor only whitespace). Errors name the file, the
// entry's index and line, and the field.
std::vector<PreferenceEntry> load_preference_file(const std::filesystem::path& path);

// One pair: the token ids of the chosen and the rejected text, and how many leading tokens of
// each are masked as prompt.
struct PreferenceExample {
  std::vector<int32_t> chosen, rejected;
  int64_t masked_prefix = 0;
  int64_t index = 0, line = 0;  // the entry's, for error messages
};

// The book's PreferenceDataset: the prompt is format_input(entry), the texts are
// prompt + "\n\n### Response:\n" + chosen (rejected), each encoded at once; the masked prefix is
// len(encode(prompt)) + 2 (the book's "+2 sets the 2 newline tokens before ### Response to False").
// With a chat template instead: the conversation of the entry's user message and each response as
// the assistant's reply, ending with the end-of-turn (chat_stop_ids()[0]), so that it is graded;
// the masked prefix is the rendered prompt through the assistant turn's opening.
PreferenceExample tokenize_preference(const Tokenizer& tokenizer, const PreferenceEntry& entry,
                                      const ChatTemplate* chat = nullptr, const std::string& system = "");

// The book's custom_collate_fn, in a forward pass's terms. Every sequence is padded with pad_id
// to L = the longest chosen or rejected sequence of the batch + 1 (so every row ends in padding),
// then cut to max_length (0: no limit); the mask is false on padding and, with mask_prompt, on the
// masked prefix. compute_logprobs reads logits[:, :-1] at labels[:, 1:] where mask[:, 1:]: so
// inputs are padded[:, :L-1] and targets padded[:, 1:L], -100 where the mask is false.
// Rows [0, P) are the chosen sequences, rows [P, 2P) the rejected ones, in batch order.
struct PreferenceCollate {
  int32_t pad_id = 50256;
  int64_t max_length = 0;
  bool mask_prompt = true;
};
struct PreferenceBatch {
  std::vector<int32_t> inputs, targets;  // [2P, T]
  int64_t pairs = 0, T = 0;
  std::vector<int64_t> examples;  // the P example indices
};
void collate_preferences(std::span<const PreferenceExample* const> examples, std::span<const int64_t> indices,
                         const PreferenceCollate& options, PreferenceBatch& out);

// The graded tokens of one sequence of `ids` under max_length: the labels at positions
// 1 .. min(len(ids), max_length) - 1 that are not in the masked prefix.
int64_t graded_tokens(std::span<const int32_t> ids, int64_t masked_prefix, int64_t max_length, bool mask_prompt);

// Fails, naming the entry, when a chosen or rejected sequence keeps no graded token (its prompt
// fills max_length): its mean log-probability would be 0 / 0.
void check_graded(const std::vector<PreferenceExample>& examples, int64_t max_length, bool mask_prompt,
                  const std::filesystem::path& file);

}  // namespace gptrain::data
