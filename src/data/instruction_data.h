// Instruction data (the book's chapter 7): Alpaca-format entries read from a JSON array or JSON
// Lines, the Alpaca prompt (format_input, verbatim), the book's split in file order, tokenized
// examples with their prompt length, and the book's custom_collate_fn with optional prompt masking.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.h"

namespace gptrain::data {

struct InstructionEntry {
  std::string instruction, input, output;
  bool has_output = false;
  nlohmann::ordered_json fields;  // every field as read, in file order (written back by `answer`)
  int64_t index = 0;              // 0-based position in its file
  int64_t line = 0;               // 1-based line where the entry starts
};

// A JSON array of objects, or JSON Lines (one object per line; chosen by a .jsonl extension or
// when the first character is '{'). A UTF-8 byte order mark is skipped. `instruction` and `input`
// must be strings; `output` too when require_output. Errors name the file, the line and column
// of a syntax error, or the entry's index and line and the field.
std::vector<InstructionEntry> load_instruction_file(const std::filesystem::path& path, bool require_output = true);

// The book's format_input, verbatim (ch07): the Alpaca preamble, "### Instruction:", and
// "### Input:" only when the input is not empty.
std::string format_input(const InstructionEntry& entry);
inline constexpr std::string_view kResponseHeader = "\n\n### Response:\n";
// format_input + "\n\n### Response:\n": what the model sees before the response.
std::string format_prompt(const InstructionEntry& entry);
// The training text: format_prompt + output.
std::string format_training_text(const InstructionEntry& entry);

// The book's split in file order: train = [0, int(n * train_fraction)), test = the next
// int(n * test_fraction), val = the rest (1100 entries: 935 / 110 / 55).
// The same split as positions: train [0, train_end), test [train_end, test_end), val the rest.
struct SplitRanges {
  size_t train_end = 0, test_end = 0;
};
SplitRanges split_ranges(size_t entries, double train_fraction, double test_fraction);
struct InstructionSplit {
  std::vector<InstructionEntry> train, test, val;
};
InstructionSplit split_instruction_data(const std::vector<InstructionEntry>& entries, double train_fraction = 0.85,
                                        double test_fraction = 0.10);

// One training example: the token ids of the whole text and how many of them belong to the prompt
// (through "### Response:\n"). The text is encoded at once, as the book does, and special-token
// text such as "<|endoftext|>" in the data is encoded as plain text, so id 50256 never occurs
// inside an example. prompt_tokens counts the tokens that start inside the prompt's bytes; it
// equals len(encode(prompt)) when the prompt ends on a token boundary (prompt_aligned).
struct TokenizedExample {
  std::vector<int32_t> ids;
  int64_t prompt_tokens = 0;
  bool prompt_aligned = true;
};
TokenizedExample tokenize_example(const Tokenizer& tokenizer, const InstructionEntry& entry);
std::vector<TokenizedExample> tokenize_examples(const Tokenizer& tokenizer, const std::vector<InstructionEntry>& entries);

// The book's custom_collate_fn: each example gets one end-of-text appended and is padded with
// pad_id to the longest in the batch (+1); inputs = padded[:-1], targets = padded[1:]; every
// padding target after the first end-of-text is ignore_index; with mask_prompt the targets of the
// prompt are ignore_index too (positions i < prompt_tokens - 1: every token predicted there is
// still prompt, as the book's exercise 7.2); then inputs and targets are cut to max_length
// (0: no limit). Padding is recognised by position, not by value, so the book's trap (a real 50256
// inside the text masked as padding) cannot occur.
struct CollateOptions {
  int32_t pad_id = 50256;
  int32_t ignore_index = -100;
  int64_t max_length = 0;
  bool mask_prompt = true;
};
struct CollatedBatch {
  std::vector<int32_t> inputs, targets;  // [B, T] each
  int64_t B = 0, T = 0;
};
void collate(std::span<const TokenizedExample* const> examples, const CollateOptions& options, CollatedBatch& out);

// Which examples each batch holds, in the book's DataLoader manner: batch_size per batch, shuffled
// per epoch (a permutation that depends only on (seed, epoch), so a resumed run sees the same
// batches) or in order, the last partial batch dropped or kept.
class BatchOrder {
 public:
  BatchOrder(int64_t examples, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed);
  int64_t num_batches() const;
  // The example indices of one batch (valid until a call for another epoch).
  std::span<const int64_t> batch(int64_t epoch, int64_t batch) const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;
  int64_t examples_, batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

// Collated batches of examples in a BatchOrder.
class InstructionLoader {
 public:
  InstructionLoader(const std::vector<TokenizedExample>& examples, int64_t batch_size, bool shuffle, bool drop_last,
                    uint64_t seed, const CollateOptions& collate_options);
  int64_t num_batches() const { return order_.num_batches(); }
  void get(int64_t epoch, int64_t batch, CollatedBatch& out) const;

 private:
  const std::vector<TokenizedExample>& examples_;
  BatchOrder order_;
  CollateOptions collate_;
};

// How a split fares under max_length: entries longer than max_length tokens lose their end
// (truncated), and those whose prompt alone fills max_length keep no graded response token.
struct LengthReport {
  int64_t entries = 0, truncated = 0, no_response_left = 0, longest = 0, prompt_misaligned = 0;
};
LengthReport length_report(const std::vector<TokenizedExample>& examples, int64_t max_length, bool mask_prompt);

// Writes entries (each with every field it was read with, plus model_response) exactly as the
// book's json.dump(test_data, file, indent=4): 4-space indent, ASCII-escaped, no final newline.
void write_entries_with_responses(const std::filesystem::path& path, const std::vector<InstructionEntry>& entries,
                                  const std::vector<std::string>& responses);

}  // namespace gptrain::data
