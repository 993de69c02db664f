// Instruction data (the book's ch07): the collate worked example, prompt masking and truncation,
// JSON/JSONL loading and its errors, the Python-compatible JSON writer, and, on the real
// instruction-data.json (skipped without $GPTRAIN_TEST_DATA_DIR), the book's counts, split, prompt
// tokens and batch widths.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include "data/instruction_data.h"
#include "data/python_json.h"
#include "data/text_file.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain::data {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

std::vector<TokenizedExample> examples(std::vector<std::vector<int32_t>> ids, std::vector<int64_t> prompt = {}) {
  std::vector<TokenizedExample> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    TokenizedExample e;
    e.ids = ids[i];
    e.prompt_tokens = i < prompt.size() ? prompt[i] : 0;
    out.push_back(e);
  }
  return out;
}

CollatedBatch run_collate(const std::vector<TokenizedExample>& ex, const CollateOptions& o) {
  std::vector<const TokenizedExample*> rows;
  for (const auto& e : ex) rows.push_back(&e);
  CollatedBatch b;
  collate(rows, o, b);
  return b;
}

constexpr int32_t P = 50256, I = -100;

TEST(Collate, the_books_worked_example_exactly) {
  const auto ex = examples({{0, 1, 2, 3, 4}, {5, 6}, {7, 8, 9}});
  CollateOptions o;
  o.mask_prompt = false;
  const CollatedBatch b = run_collate(ex, o);
  EXPECT_EQ(b.B, 3);
  EXPECT_EQ(b.T, 5);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, P, P, P, 7, 8, 9, P, P}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{1, 2, 3, 4, P, 6, P, I, I, I, 8, 9, P, I, I}));
}

TEST(Collate, prompt_masking_and_truncation_after_masking) {
  // prompt of 3 tokens: targets 0 and 1 predict prompt tokens 1 and 2, so they are ignored
  const auto ex = examples({{10, 11, 12, 13, 14}, {20, 21, 22}}, {3, 2});
  CollateOptions o;
  const CollatedBatch b = run_collate(ex, o);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{10, 11, 12, 13, 14, 20, 21, 22, P, P}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{I, I, 13, 14, P, I, 22, P, I, I}));
  o.max_length = 3;
  const CollatedBatch cut = run_collate(ex, o);
  EXPECT_EQ(cut.T, 3);
  EXPECT_EQ(cut.inputs, (std::vector<int32_t>{10, 11, 12, 20, 21, 22}));
  EXPECT_EQ(cut.targets, (std::vector<int32_t>{I, I, 13, I, 22, P}));
  // a prompt that fills the whole width leaves no graded target in its row
  o.max_length = 2;
  const CollatedBatch none = run_collate(examples({{1, 2, 3, 4}}, {4}), o);
  EXPECT_EQ(none.targets, (std::vector<int32_t>{I, I}));
  // max_length above the longest changes nothing
  o.max_length = 100;
  EXPECT_EQ(run_collate(ex, o).targets, b.targets);
}

TEST(Collate, padding_is_found_by_position_not_by_value) {
  // The book masks every 50256 target after the first, a real one inside the text included; we
  // never produce 50256 inside a text (special tokens are encoded as plain text), and mask by
  // position, so such an id would stay graded.
  CollateOptions o;
  o.mask_prompt = false;
  const CollatedBatch b = run_collate(examples({{1, P, 2}, {3}}), o);
  EXPECT_EQ(b.targets, (std::vector<int32_t>{P, 2, P, P, I, I}));
}

TEST(Loader, shuffled_epochs_are_permutations_fixed_by_seed_and_epoch) {
  std::vector<std::vector<int32_t>> ids;
  for (int i = 0; i < 21; ++i) ids.push_back({i});
  const auto ex = examples(ids);
  CollateOptions o;
  o.mask_prompt = false;
  const InstructionLoader a(ex, 4, true, true, 123, o), same(ex, 4, true, true, 123, o), ordered(ex, 4, false, false, 123, o);
  EXPECT_EQ(a.num_batches(), 5);        // drop_last
  EXPECT_EQ(ordered.num_batches(), 6);  // keeps the partial batch
  auto epoch_rows = [](const InstructionLoader& l, int64_t epoch) {
    std::vector<int32_t> rows;
    CollatedBatch b;
    for (int64_t i = 0; i < l.num_batches(); ++i) {
      l.get(epoch, i, b);
      for (int64_t r = 0; r < b.B; ++r) rows.push_back(b.inputs[static_cast<size_t>(r * b.T)]);
    }
    return rows;
  };
  const auto e0 = epoch_rows(a, 0), e1 = epoch_rows(a, 1);
  EXPECT_EQ(e0, epoch_rows(same, 0));
  EXPECT_NE(e0, e1);
  EXPECT_EQ(std::set<int32_t>(e0.begin(), e0.end()).size(), 20u);  // distinct rows
  std::vector<int32_t> in_order(21);
  for (int i = 0; i < 21; ++i) in_order[static_cast<size_t>(i)] = i;
  EXPECT_EQ(epoch_rows(ordered, 0), in_order);
  CollatedBatch last;
  ordered.get(0, 5, last);
  EXPECT_EQ(last.B, 1);
}

TEST(Format, the_books_format_input_verbatim) {
  InstructionEntry e;
  e.instruction = "Identify the correct spelling of the following word.";
  e.input = "Ocassion";
  e.output = "The correct spelling is 'Occasion.'";
  EXPECT_EQ(format_training_text(e),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nIdentify the correct spelling of the following word.\n\n### Input:\n"
            "Ocassion\n\n### Response:\nThe correct spelling is 'Occasion.'");
  e.input.clear();
  EXPECT_EQ(format_prompt(e),
            "Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\nIdentify the correct spelling of the following word.\n\n### Response:\n");
}

TEST(Split, int_truncation_in_file_order) {
  std::vector<InstructionEntry> entries(1100);
  for (size_t i = 0; i < entries.size(); ++i) entries[i].index = static_cast<int64_t>(i);
  const InstructionSplit s = split_instruction_data(entries);
  EXPECT_EQ(s.train.size(), 935u);
  EXPECT_EQ(s.test.size(), 110u);
  EXPECT_EQ(s.val.size(), 55u);
  EXPECT_EQ(s.test.front().index, 935);
  EXPECT_EQ(s.val.front().index, 1045);
  entries.resize(10);  // the book's --test_mode sizes for 10 entries: int(8.5) = 8, int(1.0) = 1
  const InstructionSplit t = split_instruction_data(entries);
  EXPECT_EQ(t.train.size(), 8u);
  EXPECT_EQ(t.test.size(), 1u);
  EXPECT_EQ(t.val.size(), 1u);
}

// --- loading and errors ---

fs::path write(const TempDir& dir, const std::string& name, const std::string& text) {
  const fs::path p = dir / name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

std::string error_of(const fs::path& p, bool require_output = true) {
  try {
    load_instruction_file(p, require_output);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Load, json_array_and_jsonl_keep_every_field_in_order) {
  TempDir dir;
  const std::string a = R"([
  {"instruction": "A", "input": "", "output": "x", "extra": 1},
  {"output": "y", "input": "in", "instruction": "B"}
])";
  const auto arr = load_instruction_file(write(dir, "a.json", "\xEF\xBB\xBF" + a));
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(arr[1].instruction, "B");
  EXPECT_EQ(arr[1].input, "in");
  EXPECT_EQ(arr[1].line, 3);
  EXPECT_EQ(arr[1].fields.begin().key(), "output");  // file order kept for writing back
  EXPECT_EQ(arr[0].fields["extra"], 1);
  const auto lines = load_instruction_file(
      write(dir, "b.jsonl", "{\"instruction\": \"A\", \"input\": \"\", \"output\": \"x\"}\n\n"
                            "{\"instruction\": \"B\", \"input\": \"i\", \"output\": \"y\"}\n"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].line, 3);
  EXPECT_EQ(lines[1].index, 1);
  // output may be absent for `answer`
  const auto no_output = load_instruction_file(write(dir, "c.json", R"([{"instruction": "A", "input": ""}])"), false);
  EXPECT_FALSE(no_output[0].has_output);
}

TEST(Load, syntax_errors_name_file_line_and_column) {
  TempDir dir;
  EXPECT_NE(error_of(write(dir, "trailing.json", "[\n  {\"instruction\": \"A\", \"input\": \"\", \"output\": \"x\"},\n]"))
                .find("trailing.json:3:1: invalid JSON"),
            std::string::npos)
      << error_of(dir / "trailing.json");
  // the column where the parser failed: the "}" ending the bad literal "tru", the invalid byte
  EXPECT_NE(error_of(write(dir, "bad.jsonl", "{\"instruction\": \"A\", \"input\": \"\", \"output\": \"x\"}\n"
                                             "{\"instruction\": \"B\", \"input\": tru}\n"))
                .find("bad.jsonl:2:34: invalid JSON"),
            std::string::npos)
      << error_of(dir / "bad.jsonl");
  EXPECT_NE(error_of(write(dir, "utf8.json", "[{\"instruction\": \"\xff\"}]")).find("utf8.json:1:19: invalid JSON"),
            std::string::npos)
      << error_of(dir / "utf8.json");
  EXPECT_NE(error_of(write(dir, "empty.json", "  \n")).find("only whitespace"), std::string::npos);
  EXPECT_NE(error_of(write(dir, "none.json", "[]")).find("no entries"), std::string::npos);
  EXPECT_NE(error_of(write(dir, "scalar.json", "42")).find("scalar.json:1:1: expected a JSON array"), std::string::npos);
}

TEST(Load, missing_or_mistyped_fields_name_the_entry) {
  TempDir dir;
  const std::string missing = error_of(write(dir, "m.json", "[\n{\"instruction\": \"A\", \"input\": \"\", \"output\": \"x\"},\n"
                                                           "{\"instruction\": \"B\", \"input\": \"\"}\n]"));
  EXPECT_NE(missing.find("m.json:3: entry 1 (counting from 0) has no \"output\" field"), std::string::npos) << missing;
  const std::string typed = error_of(write(dir, "t.jsonl", "{\"instruction\": 5, \"input\": \"\", \"output\": \"x\"}\n"));
  EXPECT_NE(typed.find("t.jsonl:1: entry 0 (counting from 0): \"instruction\" is a number, expected a string"),
            std::string::npos)
      << typed;
  const std::string not_object = error_of(write(dir, "n.json", "[\"just text\"]"));
  EXPECT_NE(not_object.find("entry 0 (counting from 0) is a string; expected an object"), std::string::npos)
      << not_object;
  const std::string no_input = error_of(write(dir, "i.json", R"([{"instruction": "A", "output": "x"}])"));
  EXPECT_NE(no_input.find("has no \"input\" field"), std::string::npos) << no_input;
  // found by fuzz/instruction_data_fuzz: a number beyond a double was nlohmann's out_of_range
  const std::string huge = error_of(write(dir, "h.json", R"([{"instruction": "A", "input": "", "output": "x", "n": 1e400}])"));
  EXPECT_NE(huge.find("h.json: invalid JSON"), std::string::npos) << huge;
  const std::string huge_line = error_of(write(dir, "h.jsonl", "{\"instruction\": \"A\", \"input\": \"\", \"output\": \"x\"}\n{\"n\": 1e400}\n"));
  EXPECT_NE(huge_line.find("h.jsonl:2: invalid JSON"), std::string::npos) << huge_line;
}

TEST(PythonJson, escapes_and_numbers_as_json_dumps) {
  nlohmann::ordered_json v = nlohmann::ordered_json::parse(
      R"({"s": "a\"b\\c\n\t\r\b\f\u0001\u007f é € 😀 /", "i": -3, "f": [1.0, 0.1, 1e-05, 1e16, 123456.789, 2.5e-7],
          "e": [], "o": {}, "b": [true, false, null]})");
  EXPECT_EQ(python_json_dumps(v, 4),
            "{\n    \"s\": \"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u007f \\u00e9 \\u20ac \\ud83d\\ude00 /\",\n"
            "    \"i\": -3,\n    \"f\": [\n        1.0,\n        0.1,\n        1e-05,\n        1e+16,\n"
            "        123456.789,\n        2.5e-07\n    ],\n    \"e\": [],\n    \"o\": {},\n    \"b\": [\n"
            "        true,\n        false,\n        null\n    ]\n}");
  EXPECT_EQ(python_json_dumps(nlohmann::ordered_json::parse("[1, {\"a\": 2}]"), -1), "[1, {\"a\": 2}]");
}

// --- the real data set ---

fs::path data_dir() {
  const char* d = std::getenv("GPTRAIN_TEST_DATA_DIR");
  return d ? fs::path(d) : fs::path();
}

class RealData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = data_dir();
    if (dir_.empty() || !fs::exists(dir_ / "instruction-data.json") || !fs::exists(dir_ / "gpt2_tokenizer/encoder.json"))
      GTEST_SKIP() << "instruction-data.json or gpt2_tokenizer/ not found: set GPTRAIN_TEST_DATA_DIR";
  }
  fs::path dir_;
};

TEST_F(RealData, counts_split_and_the_books_entries) {
  const auto all = load_instruction_file(dir_ / "instruction-data.json");
  ASSERT_EQ(all.size(), 1100u);
  int64_t empty_input = 0;
  for (const auto& e : all) empty_input += e.input.empty();
  EXPECT_EQ(empty_input, 775);
  EXPECT_EQ(all[50].input, "Ocassion");
  EXPECT_EQ(all[50].output, "The correct spelling is 'Occasion.'");
  EXPECT_EQ(all[999].instruction, "What is an antonym of 'complicated'?");
  const InstructionSplit s = split_instruction_data(all);
  EXPECT_EQ(s.train.size(), 935u);
  EXPECT_EQ(s.val.size(), 55u);
  EXPECT_EQ(s.test.size(), 110u);
}

TEST_F(RealData, prompt_tokens_boundaries_batches_and_lengths) {
  const Tokenizer tok = Tokenizer::from_dir(dir_ / "gpt2_tokenizer");
  const auto all = load_instruction_file(dir_ / "instruction-data.json");
  // The inventory's prompt prefix tokens (§5.2).
  const std::vector<int32_t> prefix = {21106, 318, 281, 12064, 326, 8477, 257, 4876, 13, 19430, 257, 2882,
                                       326,   20431, 32543, 262, 2581, 13, 198, 198, 21017, 46486, 25, 198};
  const auto first = tok.encode(format_input(all[0]));
  ASSERT_GE(first.size(), prefix.size());
  EXPECT_EQ(std::vector<int32_t>(first.begin(), first.begin() + 24), prefix);
  // The prompt ends on a token boundary in every entry (tiktoken agrees: 1100 of 1100 in the
  // fixture script), so prompt masking equals masking len(encode(prompt)) tokens.
  const auto ex = tokenize_examples(tok, all);
  int64_t aligned = 0, total_tokens = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const auto prompt = tok.encode(format_prompt(all[i]));
    const bool prefix_equal = ex[i].ids.size() >= prompt.size() &&
                              std::equal(prompt.begin(), prompt.end(), ex[i].ids.begin());
    aligned += ex[i].prompt_aligned && prefix_equal && ex[i].prompt_tokens == static_cast<int64_t>(prompt.size());
    total_tokens += static_cast<int64_t>(ex[i].ids.size());
  }
  EXPECT_EQ(aligned, 1100);
  EXPECT_EQ(total_tokens, 62025);  // tiktoken's count over the 1100 training texts
  // Val batch widths in order (inventory §5.3, derived) and 116 train batches per epoch.
  const InstructionSplit s = split_instruction_data(all);
  const auto val = tokenize_examples(tok, s.val), train = tokenize_examples(tok, s.train);
  CollateOptions o;
  const InstructionLoader val_loader(val, 8, false, false, 123, o), train_loader(train, 8, true, true, 123, o);
  std::vector<int64_t> widths;
  CollatedBatch b;
  for (int64_t i = 0; i < val_loader.num_batches(); ++i) {
    val_loader.get(0, i, b);
    widths.push_back(b.T);
  }
  EXPECT_EQ(widths, (std::vector<int64_t>{74, 76, 74, 68, 61, 62, 59}));
  EXPECT_EQ(train_loader.num_batches(), 116);
  // Longest entries (tiktoken: train 91, test 85, val 76): nothing is cut at the default 1024 nor
  // at a context of 256; at 80 tokens the report counts what is cut.
  const LengthReport r = length_report(train, 256, true);
  EXPECT_EQ(r.longest, 91);
  EXPECT_EQ(r.truncated, 0);
  const LengthReport r80 = length_report(train, 80, true);
  int64_t over80 = 0;
  for (const auto& e : train) over80 += e.ids.size() > 80;
  EXPECT_EQ(r80.truncated, over80);
  EXPECT_GT(r80.truncated, 0);
}

TEST_F(RealData, responses_file_is_written_byte_identical_to_the_books) {
  const fs::path book = dir_ / "instruction-data-with-response.json";
  if (!fs::exists(book)) GTEST_SKIP() << "instruction-data-with-response.json not found";
  const auto entries = load_instruction_file(book);
  ASSERT_EQ(entries.size(), 110u);
  std::vector<InstructionEntry> stripped = entries;
  std::vector<std::string> responses;
  for (auto& e : stripped) {
    responses.push_back(e.fields["model_response"].get<std::string>());
    e.fields.erase("model_response");
  }
  TempDir dir;
  write_entries_with_responses(dir / "out.json", stripped, responses);
  EXPECT_EQ(read_text_file(dir / "out.json"), read_text_file(book));
  // The test split of instruction-data.json is data[935:1045], the entries of that file.
  const auto all = load_instruction_file(dir_ / "instruction-data.json");
  const InstructionSplit s = split_instruction_data(all);
  for (size_t i = 0; i < s.test.size(); ++i) EXPECT_EQ(s.test[i].instruction, entries[i].instruction);
}

}  // namespace
}  // namespace gptrain::data
