#include "data/preference_data.h"

#include <fmt/core.h>

#include <algorithm>

#include "util/error.h"
#include "util/unicode_text.h"

namespace gptrain::data {

namespace fs = std::filesystem;

namespace {

std::string where(const fs::path& path, int64_t line, int64_t index) {
  return fmt::format("{}:{}: entry {} (counting from 0)", path.string(), line, index);
}

const char* json_type(const nlohmann::ordered_json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "a string";
}

}  // namespace

std::vector<PreferenceEntry> load_preference_file(const fs::path& path) {
  std::vector<InstructionEntry> entries = load_instruction_file(path, /*require_output=*/false);
  std::vector<PreferenceEntry> out;
  out.reserve(entries.size());
  for (InstructionEntry& e : entries) {
    PreferenceEntry p;
    for (const char* name : {"chosen", "rejected"}) {
      const auto it = e.fields.find(name);
      if (it == e.fields.end())
        fail("{} has no \"{}\" field (a preference entry needs \"instruction\", \"input\", \"chosen\" and \"rejected\")",
             where(path, e.line, e.index), name);
      if (!it->is_string())
        fail("{}: \"{}\" is {}, expected a string", where(path, e.line, e.index), name, json_type(*it));
      std::string text = it->get<std::string>();
      if (strip_unicode_whitespace(text).empty())
        fail("{}: \"{}\" is an empty response{}; every pair needs two responses to compare",
             where(path, e.line, e.index), name, text.empty() ? "" : " (only whitespace)");
      (std::string_view(name) == "chosen" ? p.chosen : p.rejected) = std::move(text);
    }
    p.entry = std::move(e);
    out.push_back(std::move(p));
  }
  return out;
}

PreferenceExample tokenize_preference(const Tokenizer& tokenizer, const PreferenceEntry& p, const ChatTemplate* chat,
                                      const std::string& system) {
  PreferenceExample ex;
  ex.index = p.entry.index;
  ex.line = p.entry.line;
  if (!chat) {
    // The book's PreferenceDataset, encoded as it does (special-token text in the data is plain text).
    const std::string prompt = format_input(p.entry);
    ex.masked_prefix = static_cast<int64_t>(tokenizer.encode(prompt, /*allow_special=*/false).size()) + 2;
    ex.chosen = tokenizer.encode(prompt + std::string(kResponseHeader) + p.chosen, false);
    ex.rejected = tokenizer.encode(prompt + std::string(kResponseHeader) + p.rejected, false);
    return ex;
  }
  const int32_t end_of_turn = chat_stop_ids(*chat, tokenizer)[0];
  InstructionEntry e = p.entry;
  for (auto [response, ids] : {std::pair{&p.chosen, &ex.chosen}, {&p.rejected, &ex.rejected}}) {
    e.output = *response;
    e.has_output = true;
    const std::vector<ChatMessage> messages = entry_messages(e, system, /*with_output=*/true);
    TokenizedExample t = chat_example(tokenizer, *chat, messages);
    t.ids.push_back(end_of_turn);
    *ids = std::move(t.ids);
    ex.masked_prefix = t.prompt_tokens;  // the same prompt for both responses
  }
  return ex;
}

void collate_preferences(std::span<const PreferenceExample* const> examples, std::span<const int64_t> indices,
                         const PreferenceCollate& o, PreferenceBatch& out) {
  GPTRAIN_CHECK(!examples.empty(), "collate of an empty batch");
  GPTRAIN_CHECK(indices.size() == examples.size(), "collate: {} indices for {} examples", indices.size(),
                examples.size());
  size_t longest = 0;
  for (const PreferenceExample* e : examples) longest = std::max({longest, e->chosen.size(), e->rejected.size()});
  // max(len + 1) over chosen and rejected, then the optional cut; inputs and targets are one shorter.
  int64_t L = static_cast<int64_t>(longest) + 1;
  if (o.max_length > 0) L = std::min(L, o.max_length);
  GPTRAIN_CHECK(L >= 2, "collate: sequences of {} token(s) leave nothing to predict", L);
  const int64_t P = static_cast<int64_t>(examples.size()), T = L - 1;
  out.pairs = P;
  out.T = T;
  out.examples.assign(indices.begin(), indices.end());
  out.inputs.assign(static_cast<size_t>(2 * P * T), o.pad_id);
  out.targets.assign(static_cast<size_t>(2 * P * T), -100);
  for (int64_t half = 0; half < 2; ++half)
    for (int64_t p = 0; p < P; ++p) {
      const PreferenceExample& e = *examples[static_cast<size_t>(p)];
      const std::vector<int32_t>& ids = half == 0 ? e.chosen : e.rejected;
      const int64_t n = static_cast<int64_t>(ids.size());
      const int64_t first_graded = o.mask_prompt ? e.masked_prefix : 0;
      int32_t* in = out.inputs.data() + (half * P + p) * T;
      int32_t* tg = out.targets.data() + (half * P + p) * T;
      for (int64_t t = 0; t < T && t < n; ++t) in[t] = ids[static_cast<size_t>(t)];
      // Label position j = t + 1 is graded when it holds a real token past the masked prefix.
      for (int64_t t = 0; t < T; ++t) {
        const int64_t j = t + 1;
        if (j < n && j >= first_graded) tg[t] = ids[static_cast<size_t>(j)];
      }
    }
}

int64_t graded_tokens(std::span<const int32_t> ids, int64_t masked_prefix, int64_t max_length, bool mask_prompt) {
  int64_t end = static_cast<int64_t>(ids.size());
  if (max_length > 0) end = std::min(end, max_length);
  const int64_t begin = std::max<int64_t>(1, mask_prompt ? masked_prefix : 0);
  return std::max<int64_t>(0, end - begin);
}

void check_graded(const std::vector<PreferenceExample>& examples, int64_t max_length, bool mask_prompt,
                  const fs::path& file) {
  for (const PreferenceExample& e : examples)
    for (auto [name, ids] : {std::pair{"chosen", &e.chosen}, {"rejected", &e.rejected}})
      if (graded_tokens(*ids, e.masked_prefix, max_length, mask_prompt) == 0)
        fail("{}: the \"{}\" sequence keeps no response token ({} tokens, {} of them prompt{}): its log-probability "
             "would be 0 / 0; raise --max-length or drop the entry",
             where(file, e.line, e.index), name, ids->size(), e.masked_prefix,
             max_length > 0 ? fmt::format(", cut to --max-length {}", max_length) : "");
}

}  // namespace gptrain::data
