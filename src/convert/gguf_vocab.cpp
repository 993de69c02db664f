// tokenizer.ggml.* from the tokenizer files: tokens, types and merges re-spelled from the bytes
// gptrain's readers give, special ids from tokenizer_config.json and the model dir.
#include "convert/gguf_vocab.h"

#include <fmt/core.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/model_dir.h"
#include "tokenizer/json_reader.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/vocab_files.h"
#include "util/error.h"

namespace gptrain::convert {

namespace fs = std::filesystem;
using tokenizer_detail::Pattern;

std::string spell_token_bytes(const std::string& bytes) {
  std::string spelled;
  spelled.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) tokenizer_detail::append_utf8(spelled, tokenizer_detail::byte_to_unicode(b));
  return spelled;
}

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// convert_hf_to_gguf's does_token_look_special: added tokens spelled <|...|> are control tokens
// even when a tokenizer forgot to mark them special.
bool looks_special(const std::string& text) {
  return (text.starts_with("<|") && text.ends_with("|>")) || text == "<pad>" || text == "<mask>";
}

// llama.cpp's pre-tokenizer of a pattern. Its "llama-bpe" and "smaug-bpe" split with the same
// Llama 3 regex and differ in one thing: llama-bpe skips merging a piece that is a token
// (tokenizers' ignore_merges, Meta's Llama 3 file), smaug-bpe merges it (Llama 3.2 Vision's file).
const char* pre_name(Pattern p, bool ignore_merges) {
  switch (p) {
    case Pattern::kGpt2: return "gpt-2";
    case Pattern::kLlama3: return ignore_merges ? "llama-bpe" : "smaug-bpe";
    case Pattern::kQwen2: return "qwen2";
  }
  return "gpt-2";
}

// merges.txt / vocab.bpe lines "A B" (already checked by load_vocabulary), a "#version" line skipped.
std::vector<std::string> read_merge_lines(const fs::path& path) {
  std::vector<std::string> merges;
  std::istringstream lines(read_text(path));
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (first && line.starts_with("#version")) {
      first = false;
      continue;
    }
    first = false;
    if (!line.empty()) merges.push_back(line);
  }
  return merges;
}

// The content of a tokenizer_config.json token entry: a string or {"content": ...}; "" otherwise.
std::string token_entry(const nlohmann::json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return "";
}

}  // namespace

GgufVocab read_gguf_vocab(const fs::path& tokenizer_dir, int64_t vocab_size, const fs::path& model_dir) {
  GgufVocab v;
  v.tokens.assign(static_cast<size_t>(vocab_size), std::string());
  v.token_types.assign(static_cast<size_t>(vocab_size), static_cast<int32_t>(GgufTokenType::Unused));
  std::string source;  // the file the ids come from, for messages
  auto set_token = [&](int64_t id, std::string text, GgufTokenType type) {
    if (id < 0 || id >= vocab_size)
      fail("{}: token id {} ({}) is outside the model's vocabulary of {}; is the tokenizer the model's? "
           "(pass --tokenizer DIR)",
           source, id, text, vocab_size);
    v.tokens[static_cast<size_t>(id)] = std::move(text);
    v.token_types[static_cast<size_t>(id)] = static_cast<int32_t>(type);
  };
  int32_t post_processor_bos = -1;
  std::error_code ec;
  const fs::path tokenizer_json = tokenizer_dir / "tokenizer.json";
  if (fs::is_regular_file(tokenizer_json, ec)) {
    source = tokenizer_json.string();
    const tokenizer_detail::TokenizerJson t = tokenizer_detail::read_tokenizer_json(source);
    for (size_t id = 0; id < t.token_bytes.size(); ++id)
      if (!t.token_bytes[id].empty())
        set_token(static_cast<int64_t>(id), spell_token_bytes(t.token_bytes[id]), GgufTokenType::Normal);
    for (const tokenizer_detail::TokenizerJson::Added& a : t.added)
      set_token(a.token.id, a.token.content,
                a.token.special || looks_special(a.token.content) ? GgufTokenType::Control : GgufTokenType::UserDefined);
    v.merges.reserve(t.merges.size());
    for (const tokenizer_detail::TokenizerJson::Merge& m : t.merges)
      v.merges.push_back(spell_token_bytes(t.token_bytes[static_cast<size_t>(m.left)]) + " " +
                         spell_token_bytes(t.token_bytes[static_cast<size_t>(m.right)]));
    v.pre = pre_name(t.pattern, t.ignore_merges);
    post_processor_bos = t.bos_id;
    v.add_bos = t.bos_id >= 0;
  } else {
    fs::path vocab_file = tokenizer_dir / "encoder.json", merges_file = tokenizer_dir / "vocab.bpe";
    if (!fs::is_regular_file(vocab_file, ec) || !fs::is_regular_file(merges_file, ec)) {
      vocab_file = tokenizer_dir / "vocab.json";
      merges_file = tokenizer_dir / "merges.txt";
    }
    if (!fs::is_regular_file(vocab_file, ec) || !fs::is_regular_file(merges_file, ec))
      fail("{}: no tokenizer files; looked for tokenizer.json, encoder.json + vocab.bpe and vocab.json + merges.txt",
           tokenizer_dir.string());
    source = vocab_file.string();
    const tokenizer_detail::Vocabulary voc = tokenizer_detail::load_vocabulary(vocab_file.string(), merges_file.string());
    for (size_t id = 0; id < voc.token_bytes.size(); ++id)
      if (!voc.token_bytes[id].empty())
        set_token(static_cast<int64_t>(id), spell_token_bytes(voc.token_bytes[id]), GgufTokenType::Normal);
    for (const auto& [text, id] : voc.specials) set_token(id, text, GgufTokenType::Control);
    v.merges = read_merge_lines(merges_file);
    v.pre = "gpt-2";
    v.add_bos = false;  // GPT-2's tokenizer never puts a token before the text
  }
  for (size_t id = 0; id < v.tokens.size(); ++id)
    if (v.token_types[id] == static_cast<int32_t>(GgufTokenType::Unused)) v.tokens[id] = fmt::format("[PAD{}]", id);

  // Special ids: tokenizer_config.json's token texts first (as gguf-py's SpecialVocab), looked up
  // among the added tokens; then the model dir's ids.
  auto added_id = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
      const int32_t type = v.token_types[id];
      if ((type == static_cast<int32_t>(GgufTokenType::Control) || type == static_cast<int32_t>(GgufTokenType::UserDefined)) &&
          v.tokens[id] == text)
        return static_cast<int32_t>(id);
    }
    return -1;
  };
  const fs::path config_file = tokenizer_dir / "tokenizer_config.json";
  if (fs::is_regular_file(config_file, ec)) {
    nlohmann::json config;
    try {
      config = nlohmann::json::parse(read_text(config_file));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON: {}", config_file.string(), e.what());
    }
    if (!config.is_object()) fail("{}: expected a JSON object", config_file.string());
    v.bos_id = added_id(token_entry(config, "bos_token"));
    v.eos_id = added_id(token_entry(config, "eos_token"));
    v.pad_id = added_id(token_entry(config, "pad_token"));
    if (const auto it = config.find("chat_template"); it != config.end() && it->is_string())
      v.chat_template = it->get<std::string>();
  }
  if (v.bos_id < 0) v.bos_id = post_processor_bos;
  const GenerationConfig generation = read_generation_config(model_dir);
  if (v.bos_id < 0) v.bos_id = generation.bos_id;
  if (v.eos_id < 0 && !generation.eos_ids.empty()) v.eos_id = generation.eos_ids.front();
  if (v.pad_id < 0) v.pad_id = generation.pad_id;
  for (const auto& [what, id] : {std::pair{"bos", v.bos_id}, std::pair{"eos", v.eos_id}, std::pair{"pad", v.pad_id}})
    if (id >= vocab_size)
      fail("{}: the {} token id {} is outside the model's vocabulary of {}", model_dir.string(), what, id, vocab_size);
  return v;
}

void add_vocab_metadata(io::GgufMetadata& metadata, const GgufVocab& vocab) {
  metadata.add_string("tokenizer.ggml.model", "gpt2");
  metadata.add_string("tokenizer.ggml.pre", vocab.pre);
  metadata.add_strings("tokenizer.ggml.tokens", vocab.tokens);
  metadata.add_i32s("tokenizer.ggml.token_type", vocab.token_types);
  metadata.add_strings("tokenizer.ggml.merges", vocab.merges);
  if (vocab.bos_id >= 0) metadata.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  if (vocab.eos_id >= 0) metadata.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  if (vocab.pad_id >= 0) metadata.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.pad_id));
  metadata.add_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  metadata.add_bool("tokenizer.ggml.add_eos_token", false);  // gptrain's tokenizers never append one
  if (!vocab.chat_template.empty()) metadata.add_string("tokenizer.chat_template", vocab.chat_template);
}

}  // namespace gptrain::convert
