// libFuzzer target for instruction and preference data (data/instruction_data.h,
// data/preference_data.h): the input is the file, read both as data.json and as data.jsonl (the
// reader picks JSON Lines by the extension or a leading '{'). load_instruction_file (with and
// without required outputs) and load_preference_file must either refuse it with gptrain::Error or
// give entries whose Alpaca prompts, GPT-2 tokenization (lossless, the prompt's tokens first) and
// collated batches are consistent, whose Qwen3 chat examples tokenize into ids in range, and which
// write_entries_with_responses writes back as a file that reads as the same entries. Any other
// exception, a sanitizer report, a leak or a hang is a bug. The tokenizers come from
// GPTRAIN_FUZZ_DATA_DIR (default ../shared/data). Build and run as in fuzz/CMakeLists.txt, with
// -dict=fuzz/instruction_data.dict and the corpus fuzz/corpus/instruction_data.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/instruction_data.h"
#include "data/preference_data.h"
#include "fuzz_common.h"

namespace {

namespace fs = std::filesystem;
using namespace gptrain::data;
using gptrain::fuzz::expect_clean_rejection;

struct Models {
  gptrain::Tokenizer gpt2, qwen;
  ChatTemplate qwen3;
};
Models* models = nullptr;

// Entries tokenized per input (each file may hold thousands).
constexpr size_t kMaxEntries = 16;

void check_ids(const std::vector<int32_t>& ids, const gptrain::Tokenizer& t) {
  for (const int32_t id : ids) GPTRAIN_FUZZ_REQUIRE(id >= 0 && id < t.vocab_size());
}

void check_entries(const std::vector<InstructionEntry>& entries, bool require_output) {
  GPTRAIN_FUZZ_REQUIRE(!entries.empty());
  std::vector<TokenizedExample> examples;
  for (size_t i = 0; i < entries.size(); ++i) {
    const InstructionEntry& e = entries[i];
    GPTRAIN_FUZZ_REQUIRE(e.index == static_cast<int64_t>(i) && e.line >= 1);
    GPTRAIN_FUZZ_REQUIRE(e.fields.is_object());
    if (require_output) GPTRAIN_FUZZ_REQUIRE(e.has_output);
    if (i >= kMaxEntries) continue;
    const std::string prompt = format_prompt(e), text = format_training_text(e);
    GPTRAIN_FUZZ_REQUIRE(prompt == format_input(e) + std::string(kResponseHeader) && text == prompt + e.output);
    const TokenizedExample ex = tokenize_example(models->gpt2, e);
    check_ids(ex.ids, models->gpt2);
    GPTRAIN_FUZZ_REQUIRE(ex.prompt_tokens >= 1 && ex.prompt_tokens <= static_cast<int64_t>(ex.ids.size()));
    GPTRAIN_FUZZ_REQUIRE(models->gpt2.decode(ex.ids) == text);  // special-token text stays text
    examples.push_back(ex);
    if (e.has_output) {
      const std::vector<ChatMessage> messages = entry_messages(e, "You are helpful.", /*with_output=*/true);
      const TokenizedExample chat = chat_example(models->qwen, models->qwen3, messages);
      check_ids(chat.ids, models->qwen);
      GPTRAIN_FUZZ_REQUIRE(chat.prompt_tokens <= static_cast<int64_t>(chat.ids.size()));
    }
  }
  std::vector<const TokenizedExample*> rows;
  for (const TokenizedExample& ex : examples) rows.push_back(&ex);
  for (const int64_t max_length : {int64_t{0}, int64_t{7}}) {
    CollateOptions o;
    o.max_length = max_length;
    CollatedBatch b;
    collate(rows, o, b);
    GPTRAIN_FUZZ_REQUIRE(b.B == static_cast<int64_t>(rows.size()) && b.inputs.size() == static_cast<size_t>(b.B * b.T));
    GPTRAIN_FUZZ_REQUIRE(b.targets.size() == b.inputs.size());
  }
  const InstructionSplit split = split_instruction_data(entries);
  GPTRAIN_FUZZ_REQUIRE(split.train.size() + split.test.size() + split.val.size() == entries.size());
}

void check_preferences(const std::vector<PreferenceEntry>& entries, const fs::path& file) {
  std::vector<PreferenceExample> examples;
  for (size_t i = 0; i < entries.size() && i < kMaxEntries; ++i) {
    const PreferenceEntry& p = entries[i];
    GPTRAIN_FUZZ_REQUIRE(!p.chosen.empty() && !p.rejected.empty());
    const PreferenceExample ex = tokenize_preference(models->gpt2, p);
    check_ids(ex.chosen, models->gpt2);
    check_ids(ex.rejected, models->gpt2);
    const PreferenceExample chat = tokenize_preference(models->qwen, p, &models->qwen3, "sys");
    check_ids(chat.chosen, models->qwen);
    check_ids(chat.rejected, models->qwen);
    examples.push_back(ex);
  }
  std::vector<const PreferenceExample*> rows;
  std::vector<int64_t> indices;
  for (size_t i = 0; i < examples.size(); ++i) {
    rows.push_back(&examples[i]);
    indices.push_back(static_cast<int64_t>(i));
  }
  PreferenceBatch b;
  collate_preferences(rows, indices, PreferenceCollate{}, b);
  GPTRAIN_FUZZ_REQUIRE(b.pairs == static_cast<int64_t>(rows.size()) && b.inputs.size() == static_cast<size_t>(2 * b.pairs * b.T));
  try {
    check_graded(examples, 128, true, file);
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);  // a prompt that fills 128 tokens: refused naming the entry
  }
}

// `answer`'s output file: every field as read plus model_response, read back as the same entries.
void check_written_back(const std::vector<InstructionEntry>& entries) {
  const fs::path out = gptrain::fuzz::temp_dir() / "responses.json";
  std::vector<std::string> responses;
  for (size_t i = 0; i < entries.size(); ++i) responses.push_back("response " + std::to_string(i));
  write_entries_with_responses(out, entries, responses);
  const std::vector<InstructionEntry> back = load_instruction_file(out, /*require_output=*/false);
  GPTRAIN_FUZZ_REQUIRE(back.size() == entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    nlohmann::ordered_json expected = entries[i].fields;
    expected["model_response"] = responses[i];
    GPTRAIN_FUZZ_REQUIRE(back[i].fields == expected);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("instruction_data");
  const char* dir = std::getenv("GPTRAIN_FUZZ_DATA_DIR");
  const std::string data = dir ? dir : "../shared/data";
  static Models m{gptrain::Tokenizer::from_files(data + "/gpt2_tokenizer/encoder.json", data + "/gpt2_tokenizer/vocab.bpe"),
                  gptrain::Tokenizer::from_tokenizer_json(data + "/tokenizers/qwen/tokenizer.json"),
                  qwen3_chat_template()};
  models = &m;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const fs::path& dir = gptrain::fuzz::temp_dir();
  for (const char* name : {"data.json", "data.jsonl"}) {
    const fs::path file = dir / name;
    gptrain::fuzz::write_file(file, bytes);
    for (const bool require_output : {true, false}) {
      std::optional<std::vector<InstructionEntry>> entries;
      try {
        entries = load_instruction_file(file, require_output);
      } catch (const gptrain::Error& e) {
        expect_clean_rejection(e);
      }
      if (!entries) continue;
      check_entries(*entries, require_output);
      if (!require_output) check_written_back(*entries);
    }
    std::optional<std::vector<PreferenceEntry>> preferences;
    try {
      preferences = load_preference_file(file);
    } catch (const gptrain::Error& e) {
      expect_clean_rejection(e);
    }
    if (preferences) check_preferences(*preferences, file);
  }
  return 0;
}
