#include "data/instruction_data.h"

#include <algorithm>
#include <numeric>

#include "data/python_json.h"
#include "data/text_file.h"
#include "io/atomic_file.h"
#include "util/error.h"
#include "util/rng.h"

namespace gptrain::data {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

struct Position {
  int64_t line = 1, column = 1;
};

// 1-based line and column (in bytes) of byte `offset` of `text`.
Position position_of(std::string_view text, size_t offset) {
  Position p;
  offset = std::min(offset, text.size());
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

// nlohmann's message without its "[json.exception...] parse error at line L, column C: " prefix
// (we report the position ourselves, in the whole file's lines).
std::string parse_error_detail(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  const size_t at = what.find(": ", what.find("parse error"));
  return at == std::string::npos ? what : what.substr(at + 2);
}

[[noreturn]] void syntax_error(const fs::path& path, std::string_view text, size_t base,
                               const nlohmann::json::parse_error& e, bool jsonl) {
  // e.byte: 1-based index (in the parsed text) of the character at which parsing failed.
  const size_t offset = base + (e.byte > 0 ? e.byte - 1 : 0);
  const Position p = position_of(text, offset);
  fail("{}:{}:{}: invalid JSON: {}{}", path.string(), p.line, p.column, parse_error_detail(e),
       jsonl ? " (read as JSON Lines: one complete object per line; a JSON file must hold an array of entries)" : "");
}

// Byte offsets where the elements of the top-level array starting at text[open] begin. The text
// has been parsed already, so only strings and nesting need tracking.
std::vector<size_t> array_element_offsets(std::string_view text, size_t open) {
  std::vector<size_t> starts;
  int depth = 0;
  bool in_string = false, expect_element = false;
  for (size_t i = open; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (expect_element && depth == 1 && c != ']') starts.push_back(i);
    expect_element = false;
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth == 1) expect_element = true;
    } else if (c == ']' || c == '}') {
      if (--depth == 0) break;
    } else if (c == ',' && depth == 1) {
      expect_element = true;
    }
  }
  return starts;
}

const char* type_name(const ordered_json& v) {
  switch (v.type()) {
    case ordered_json::value_t::null: return "null";
    case ordered_json::value_t::object: return "an object";
    case ordered_json::value_t::array: return "an array";
    case ordered_json::value_t::string: return "a string";
    case ordered_json::value_t::boolean: return "a boolean";
    case ordered_json::value_t::number_float:
    case ordered_json::value_t::number_integer:
    case ordered_json::value_t::number_unsigned: return "a number";
    default: return "an unknown value";
  }
}

InstructionEntry make_entry(const fs::path& path, ordered_json value, int64_t index, int64_t line,
                            bool require_output) {
  const std::string where = fmt::format("{}:{}: entry {} (counting from 0)", path.string(), line, index);
  if (!value.is_object())
    fail("{} is {}; expected an object with \"instruction\", \"input\" and \"output\"", where, type_name(value));
  InstructionEntry e;
  e.index = index;
  e.line = line;
  auto field = [&](const char* name, std::string& out, bool required) {
    const auto it = value.find(name);
    if (it == value.end()) {
      if (!required) return false;
      fail("{} has no \"{}\" field (every entry needs \"instruction\", \"input\" and \"output\"; an empty input "
           "is written \"input\": \"\")",
           where, name);
    }
    if (!it->is_string()) fail("{}: \"{}\" is {}, expected a string", where, name, type_name(*it));
    out = it->get<std::string>();
    return true;
  };
  field("instruction", e.instruction, true);
  field("input", e.input, true);
  e.has_output = field("output", e.output, require_output);
  e.fields = std::move(value);
  return e;
}

}  // namespace

std::vector<InstructionEntry> load_instruction_file(const fs::path& path, bool require_output) {
  const std::string content = read_text_file(path);
  std::string_view text = content;
  size_t base = 0;
  if (text.starts_with("\xEF\xBB\xBF")) base = 3;  // UTF-8 byte order mark
  size_t first = text.find_first_not_of(" \t\r\n", base);
  if (first == std::string_view::npos) fail("{}: no JSON in the file (only whitespace)", path.string());
  const bool jsonl = path.extension() == ".jsonl" || text[first] == '{';
  std::vector<InstructionEntry> entries;
  if (!jsonl) {
    if (text[first] != '[')
      fail("{}:{}:{}: expected a JSON array of entries '[{{...}}, ...]' or JSON Lines (one object per line), found "
           "'{}'",
           path.string(), position_of(text, first).line, position_of(text, first).column, text[first]);
    ordered_json doc;
    try {
      doc = ordered_json::parse(text.substr(base));
    } catch (const nlohmann::json::parse_error& e) {
      syntax_error(path, text, base, e, false);
    } catch (const nlohmann::json::exception& e) {  // out_of_range: a number beyond a double (1e400)
      fail("{}: invalid JSON: {}", path.string(), e.what());
    }
    const std::vector<size_t> starts = array_element_offsets(text, first);
    GPTRAIN_CHECK(starts.size() == doc.size(), "{}: found {} array elements, parsed {}", path.string(), starts.size(),
                  doc.size());
    entries.reserve(doc.size());
    for (size_t i = 0; i < doc.size(); ++i)
      entries.push_back(make_entry(path, std::move(doc[i]), static_cast<int64_t>(i),
                                   position_of(text, starts[i]).line, require_output));
  } else {
    size_t begin = base;
    int64_t line = 1;
    while (begin < text.size()) {
      size_t end = text.find('\n', begin);
      if (end == std::string_view::npos) end = text.size();
      const std::string_view row = text.substr(begin, end - begin);
      if (row.find_first_not_of(" \t\r") != std::string_view::npos) {
        ordered_json value;
        try {
          value = ordered_json::parse(row);
        } catch (const nlohmann::json::parse_error& e) {
          syntax_error(path, text, begin, e, true);
        } catch (const nlohmann::json::exception& e) {  // out_of_range: a number beyond a double (1e400)
          fail("{}:{}: invalid JSON: {}", path.string(), line, e.what());
        }
        entries.push_back(make_entry(path, std::move(value), static_cast<int64_t>(entries.size()), line,
                                     require_output));
      }
      begin = end + 1;
      ++line;
    }
  }
  if (entries.empty()) fail("{}: no entries", path.string());
  return entries;
}

std::string format_input(const InstructionEntry& entry) {
  std::string text =
      "Below is an instruction that describes a task. Write a response that appropriately completes the request."
      "\n\n### Instruction:\n" +
      entry.instruction;
  if (!entry.input.empty()) text += "\n\n### Input:\n" + entry.input;
  return text;
}

std::string format_prompt(const InstructionEntry& entry) { return format_input(entry) + std::string(kResponseHeader); }

std::string format_training_text(const InstructionEntry& entry) { return format_prompt(entry) + entry.output; }

SplitRanges split_ranges(size_t entries, double train_fraction, double test_fraction) {
  if (!(train_fraction >= 0 && test_fraction >= 0 && train_fraction + test_fraction <= 1))
    fail("the split fractions must be non-negative with a sum of at most 1; got train {} and test {}", train_fraction,
         test_fraction);
  const double n = static_cast<double>(entries);
  // Python's int(len(data) * 0.85): truncation of the same double product.
  const size_t train_end = static_cast<size_t>(n * train_fraction);
  return {train_end, std::min(entries, train_end + static_cast<size_t>(n * test_fraction))};
}

InstructionSplit split_instruction_data(const std::vector<InstructionEntry>& entries, double train_fraction,
                                        double test_fraction) {
  const auto [train_end, test_end] = split_ranges(entries.size(), train_fraction, test_fraction);
  InstructionSplit s;
  s.train.assign(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(train_end));
  s.test.assign(entries.begin() + static_cast<ptrdiff_t>(train_end), entries.begin() + static_cast<ptrdiff_t>(test_end));
  s.val.assign(entries.begin() + static_cast<ptrdiff_t>(test_end), entries.end());
  return s;
}

TokenizedExample tokenize_example(const Tokenizer& tokenizer, const InstructionEntry& entry) {
  const std::string prompt = format_prompt(entry);
  TokenizedExample ex;
  ex.ids = tokenizer.encode(prompt + entry.output, /*allow_special=*/false);
  // Tokens starting inside the prompt's bytes are prompt; one that straddles the boundary (BPE
  // merged across it) counts as prompt too, so no graded target ever predicts prompt text.
  size_t bytes = 0;
  int64_t k = 0;
  const int64_t n = static_cast<int64_t>(ex.ids.size());
  while (k < n && bytes < prompt.size()) bytes += tokenizer.decode_token(ex.ids[static_cast<size_t>(k++)]).size();
  ex.prompt_tokens = k;
  ex.prompt_aligned = bytes == prompt.size();
  return ex;
}

std::vector<TokenizedExample> tokenize_examples(const Tokenizer& tokenizer, const std::vector<InstructionEntry>& entries) {
  std::vector<TokenizedExample> out;
  out.reserve(entries.size());
  for (const InstructionEntry& e : entries) out.push_back(tokenize_example(tokenizer, e));
  return out;
}

void collate(std::span<const TokenizedExample* const> examples, const CollateOptions& o, CollatedBatch& out) {
  GPTRAIN_CHECK(!examples.empty(), "collate of an empty batch");
  size_t longest = 0;
  for (const TokenizedExample* e : examples) longest = std::max(longest, e->ids.size());
  // batch_max_length = max(len(item) + 1); inputs and targets are that minus one long.
  const int64_t width = static_cast<int64_t>(longest);
  const int64_t T = o.max_length > 0 ? std::min(width, o.max_length) : width;
  const int64_t B = static_cast<int64_t>(examples.size());
  out.B = B;
  out.T = T;
  out.inputs.assign(static_cast<size_t>(B * T), o.pad_id);
  out.targets.assign(static_cast<size_t>(B * T), o.ignore_index);
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t>& ids = examples[static_cast<size_t>(b)]->ids;
    const int64_t L = static_cast<int64_t>(ids.size());
    int32_t* x = out.inputs.data() + b * T;
    int32_t* y = out.targets.data() + b * T;
    const int64_t first_graded = o.mask_prompt ? std::max<int64_t>(0, examples[static_cast<size_t>(b)]->prompt_tokens - 1) : 0;
    for (int64_t t = 0; t < T; ++t) {
      if (t < L) x[t] = ids[static_cast<size_t>(t)];
      // target t is padded[t + 1]: the text, then its one end-of-text; later padding stays ignored
      if (t >= first_graded) {
        if (t + 1 < L)
          y[t] = ids[static_cast<size_t>(t + 1)];
        else if (t + 1 == L)
          y[t] = o.pad_id;
      }
    }
  }
}

BatchOrder::BatchOrder(int64_t examples, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed)
    : examples_(examples), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
  if (batch_size <= 0) fail("--batch-size must be positive, got {}", batch_size);
}

int64_t BatchOrder::num_batches() const {
  return drop_last_ ? examples_ / batch_size_ : (examples_ + batch_size_ - 1) / batch_size_;
}

const std::vector<int64_t>& BatchOrder::order(int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_order_;
  std::vector<int64_t> idx(static_cast<size_t>(examples_));
  std::iota(idx.begin(), idx.end(), 0);
  if (shuffle_) {
    // Fisher-Yates from the end, one counter per position: the same order for the same (seed, epoch).
    const CounterRng rng(seed_, 0x494E5354ULL + static_cast<uint64_t>(epoch));
    for (int64_t i = static_cast<int64_t>(idx.size()) - 1; i > 0; --i)
      std::swap(idx[static_cast<size_t>(i)], idx[rng.below(static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  }
  cached_epoch_ = epoch;
  cached_order_ = std::move(idx);
  return cached_order_;
}

std::span<const int64_t> BatchOrder::batch(int64_t epoch, int64_t batch) const {
  GPTRAIN_CHECK(batch >= 0 && batch < num_batches(), "batch {} of {}", batch, num_batches());
  const std::vector<int64_t>& idx = order(epoch);
  const int64_t begin = batch * batch_size_;
  const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(idx.size()));
  return std::span<const int64_t>(idx).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
}

InstructionLoader::InstructionLoader(const std::vector<TokenizedExample>& examples, int64_t batch_size, bool shuffle,
                                     bool drop_last, uint64_t seed, const CollateOptions& collate_options)
    : examples_(examples), order_(static_cast<int64_t>(examples.size()), batch_size, shuffle, drop_last, seed),
      collate_(collate_options) {}

void InstructionLoader::get(int64_t epoch, int64_t batch, CollatedBatch& out) const {
  std::vector<const TokenizedExample*> rows;
  for (int64_t i : order_.batch(epoch, batch)) rows.push_back(&examples_[static_cast<size_t>(i)]);
  collate(rows, collate_, out);
}

LengthReport length_report(const std::vector<TokenizedExample>& examples, int64_t max_length, bool mask_prompt) {
  LengthReport r;
  r.entries = static_cast<int64_t>(examples.size());
  for (const TokenizedExample& e : examples) {
    const int64_t L = static_cast<int64_t>(e.ids.size());
    r.longest = std::max(r.longest, L);
    if (max_length > 0 && L > max_length) ++r.truncated;
    // the first graded target is at position prompt_tokens - 1 (with masking) and must be < max_length
    if (mask_prompt && max_length > 0 && e.prompt_tokens - 1 >= max_length) ++r.no_response_left;
    if (!e.prompt_aligned) ++r.prompt_misaligned;
  }
  return r;
}

void write_entries_with_responses(const fs::path& path, const std::vector<InstructionEntry>& entries,
                                  const std::vector<std::string>& responses) {
  GPTRAIN_CHECK(entries.size() == responses.size(), "{} entries, {} responses", entries.size(), responses.size());
  ordered_json all = ordered_json::array();
  for (size_t i = 0; i < entries.size(); ++i) {
    ordered_json e = entries[i].fields;
    e["model_response"] = responses[i];
    all.push_back(std::move(e));
  }
  io::write_file_atomic(path, python_json_dumps(all, 4));
}

}  // namespace gptrain::data
