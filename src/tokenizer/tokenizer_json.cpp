// tokenizer.json as tokenizers 0.2x writes it: the top level's small parts are read into a tree
// and checked field by field; model.vocab and model.merges (most of the file) are read straight
// into token bytes and id pairs.
#include "tokenizer/tokenizer_json.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "tokenizer/json_reader.h"
#include "tokenizer/token_table.h"
#include "tokenizer/vocab_files.h"
#include "util/error.h"

namespace gptrain::tokenizer_detail {

namespace {

// The Split patterns gptrain has scanners for, verbatim as tokenizers' files spell them.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}: {}", path, std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Field-by-field checks of a parsed tree; every message names the file, the field and where it is.
class Fields {
 public:
  explicit Fields(const JsonReader& reader) : reader_(reader) {}

  [[noreturn]] void error(const JsonValue& v, const std::string& field, const std::string& what) const {
    reader_.field_error(v.offset, field, what);
  }
  [[noreturn]] void unsupported(const JsonValue& v, const std::string& field, const std::string& what,
                                const std::string& known) const {
    error(v, field, fmt::format("unsupported {} (gptrain knows {})", what, known));
  }
  void expect_kind(const JsonValue& v, const std::string& field, JsonValue::Kind kind) const {
    if (v.kind != kind)
      error(v, field, fmt::format("expected {}, found {}", JsonValue::kind_name(kind), JsonValue::kind_name(v.kind)));
  }
  const JsonValue& member(const JsonValue& object, const std::string& field, std::string_view key) const {
    expect_kind(object, field, JsonValue::kObject);
    const JsonValue* v = object.find(key);
    if (!v) error(object, field, fmt::format("the object has no \"{}\"", key));
    return *v;
  }
  const std::string& string(const JsonValue& object, const std::string& field, std::string_view key) const {
    const JsonValue& v = member(object, field, key);
    expect_kind(v, field + "." + std::string(key), JsonValue::kString);
    return v.text;
  }
  bool boolean(const JsonValue& object, const std::string& field, std::string_view key, bool absent) const {
    expect_kind(object, field, JsonValue::kObject);
    const JsonValue* v = object.find(key);
    if (!v) return absent;
    expect_kind(*v, field + "." + std::string(key), JsonValue::kBool);
    return v->boolean;
  }
  const std::string& type(const JsonValue& object, const std::string& field) const {
    return string(object, field, "type");
  }

 private:
  const JsonReader& reader_;
};

// ByteLevel as a pre-tokenizer: byte-to-unicode spelling (what gptrain's byte-level BPE assumes),
// with or without GPT-2's regex. add_prefix_space would put a space before every piece.
bool byte_level_uses_regex(const Fields& f, const JsonValue& v, const std::string& field) {
  if (f.boolean(v, field, "add_prefix_space", false))
    f.unsupported(*v.find("add_prefix_space"), field + ".add_prefix_space", "ByteLevel add_prefix_space true",
                  "add_prefix_space false");
  return f.boolean(v, field, "use_regex", true);
}

Pattern read_pre_tokenizer(const Fields& f, const JsonValue& v) {
  const std::string field = "pre_tokenizer";
  const char* known = "ByteLevel (GPT-2), or Sequence [Split (the GPT-2, Llama 3 or Qwen2 pattern, Isolated), "
                      "ByteLevel without its regex]";
  if (v.kind == JsonValue::kNull) f.unsupported(v, field, "pre_tokenizer null", known);
  const std::string& type = f.type(v, field);
  if (type == "ByteLevel") {
    if (!byte_level_uses_regex(f, v, field))
      f.unsupported(*v.find("use_regex"), field + ".use_regex", "ByteLevel alone with use_regex false (it would not split the text)", known);
    return Pattern::kGpt2;
  }
  if (type != "Sequence") f.unsupported(*v.find("type"), field + ".type", fmt::format("pre-tokenizer {}", quoted(type)), known);
  const JsonValue& list = f.member(v, field, "pretokenizers");
  f.expect_kind(list, field + ".pretokenizers", JsonValue::kArray);
  if (list.items.size() != 2)
    f.unsupported(list, field + ".pretokenizers", fmt::format("Sequence of {} pre-tokenizers", list.items.size()), known);
  const std::string split_field = field + ".pretokenizers[0]";
  const JsonValue& split = list.items[0];
  if (f.type(split, split_field) != "Split")
    f.unsupported(*split.find("type"), split_field + ".type", fmt::format("pre-tokenizer {}", quoted(f.type(split, split_field))), known);
  const JsonValue& pattern = f.member(split, split_field, "pattern");
  f.expect_kind(pattern, split_field + ".pattern", JsonValue::kObject);
  if (!pattern.find("Regex")) {
    const std::string kind = pattern.members.empty() ? "{}" : pattern.members[0].first;
    f.unsupported(pattern, split_field + ".pattern", fmt::format("pattern kind {}", quoted(kind)), "Regex patterns");
  }
  const std::string& regex = f.string(pattern, split_field + ".pattern", "Regex");
  Pattern result = Pattern::kGpt2;
  if (regex == kLlama3Pattern) result = Pattern::kLlama3;
  else if (regex == kQwen2Pattern) result = Pattern::kQwen2;
  else if (regex != kGpt2Pattern)
    f.error(*pattern.find("Regex"), split_field + ".pattern.Regex",
            fmt::format("unsupported pattern \"{}\" (gptrain knows the GPT-2, Llama 3 and Qwen2 patterns)", regex));
  const std::string& behavior = f.string(split, split_field, "behavior");
  if (behavior != "Isolated")
    f.unsupported(*split.find("behavior"), split_field + ".behavior", fmt::format("Split behavior {}", quoted(behavior)), "Isolated");
  if (f.boolean(split, split_field, "invert", false))
    f.unsupported(*split.find("invert"), split_field + ".invert", "Split invert true", "invert false");
  const std::string byte_field = field + ".pretokenizers[1]";
  const JsonValue& byte_level = list.items[1];
  if (f.type(byte_level, byte_field) != "ByteLevel")
    f.unsupported(*byte_level.find("type"), byte_field + ".type",
                  fmt::format("pre-tokenizer {}", quoted(f.type(byte_level, byte_field))), known);
  if (byte_level_uses_regex(f, byte_level, byte_field))
    f.unsupported(byte_level.find("use_regex") ? *byte_level.find("use_regex") : byte_level, byte_field + ".use_regex",
                  "ByteLevel with its own regex after a Split", known);
  return result;
}

bool read_normalizer(const Fields& f, const JsonValue& v) {
  const std::string field = "normalizer";
  if (v.kind == JsonValue::kNull) return false;
  const std::string& type = f.type(v, field);
  if (type == "NFC") return true;
  if (type == "Sequence") {  // a Sequence of NFCs is NFC; an empty one does nothing
    const JsonValue& list = f.member(v, field, "normalizers");
    f.expect_kind(list, field + ".normalizers", JsonValue::kArray);
    for (size_t i = 0; i < list.items.size(); ++i) {
      const std::string item = fmt::format("{}.normalizers[{}]", field, i);
      if (f.type(list.items[i], item) != "NFC")
        f.unsupported(*list.items[i].find("type"), item + ".type", fmt::format("normalizer {}", quoted(f.type(list.items[i], item))), "NFC");
    }
    return !list.items.empty();
  }
  f.unsupported(*v.find("type"), field + ".type", fmt::format("normalizer {}", quoted(type)), "NFC or none");
}

// A token id written in the file: an integer below `tokens`, the file's count of tokens (model.vocab's
// and added_tokens' entries; see place_vocab).
int32_t token_id_field(const Fields& f, const JsonValue& v, const std::string& field, size_t tokens) {
  f.expect_kind(v, field, JsonValue::kNumber);
  if (v.text.find_first_not_of("0123456789") != std::string::npos || v.text.size() > 10 ||
      std::stoll(v.text) >= static_cast<int64_t>(std::min<size_t>(tokens, INT32_MAX)))
    f.error(v, field, fmt::format("expected a token id (an integer below the file's {} tokens), found {}", tokens, v.text));
  return static_cast<int32_t>(std::stoll(v.text));
}

// post_processor: none, ByteLevel (offsets only), TemplateProcessing that puts at most one special
// token before a single text (Llama 3.2's <|begin_of_text|>), or a Sequence of those. The BOS is
// not added by encode() (tokenizers' add_special_tokens=False); callers prepend bos_id().
int32_t read_post_processor(const Fields& f, const JsonValue& v, const std::string& field, size_t tokens) {
  if (v.kind == JsonValue::kNull) return -1;
  const char* known = "ByteLevel, TemplateProcessing with at most one token before the text, or a Sequence of those";
  const std::string& type = f.type(v, field);
  if (type == "ByteLevel") return -1;
  if (type == "Sequence") {
    const JsonValue& list = f.member(v, field, "processors");
    f.expect_kind(list, field + ".processors", JsonValue::kArray);
    int32_t bos = -1;
    for (size_t i = 0; i < list.items.size(); ++i) {
      const int32_t b = read_post_processor(f, list.items[i], fmt::format("{}.processors[{}]", field, i), tokens);
      if (b >= 0 && bos >= 0)
        f.unsupported(list.items[i], fmt::format("{}.processors[{}]", field, i), "second token before the text", known);
      if (b >= 0) bos = b;
    }
    return bos;
  }
  if (type != "TemplateProcessing") f.unsupported(*v.find("type"), field + ".type", fmt::format("post-processor {}", quoted(type)), known);
  const JsonValue& single = f.member(v, field, "single");
  f.expect_kind(single, field + ".single", JsonValue::kArray);
  const JsonValue& specials = f.member(v, field, "special_tokens");
  std::vector<int32_t> before, after;
  bool seen_text = false;
  for (size_t i = 0; i < single.items.size(); ++i) {
    const std::string item_field = fmt::format("{}.single[{}]", field, i);
    const JsonValue& item = single.items[i];
    f.expect_kind(item, item_field, JsonValue::kObject);
    if (item.find("Sequence")) {
      seen_text = true;
      continue;
    }
    const JsonValue& special = f.member(item, item_field, "SpecialToken");
    const std::string& name = f.string(special, item_field + ".SpecialToken", "id");
    const JsonValue* entry = specials.find(name);
    if (!entry) f.error(special, item_field + ".SpecialToken.id", fmt::format("{} is not in {}.special_tokens", quoted(name), field));
    const JsonValue& ids = f.member(*entry, fmt::format("{}.special_tokens.{}", field, name), "ids");
    f.expect_kind(ids, fmt::format("{}.special_tokens.{}.ids", field, name), JsonValue::kArray);
    for (const JsonValue& id : ids.items)
      (seen_text ? after : before).push_back(token_id_field(f, id, fmt::format("{}.special_tokens.{}.ids", field, name), tokens));
  }
  if (!after.empty() || before.size() > 1)
    f.unsupported(single, field + ".single",
                  fmt::format("template with {} token(s) before the text and {} after it", before.size(), after.size()), known);
  return before.empty() ? -1 : before[0];
}

void read_decoder(const Fields& f, const JsonValue& v) {
  if (v.kind == JsonValue::kNull) return;
  const std::string& type = f.type(v, "decoder");
  if (type != "ByteLevel") f.unsupported(*v.find("type"), "decoder.type", fmt::format("decoder {}", quoted(type)), "ByteLevel");
}

void read_added_tokens(const Fields& f, const JsonValue& v, size_t tokens, TokenizerJson& out) {
  if (v.kind == JsonValue::kNull) return;
  f.expect_kind(v, "added_tokens", JsonValue::kArray);
  std::unordered_map<std::string, size_t> by_content;
  std::unordered_map<int64_t, size_t> by_id;
  for (size_t i = 0; i < v.items.size(); ++i) {
    const std::string field = fmt::format("added_tokens[{}]", i);
    const JsonValue& item = v.items[i];
    const JsonValue& id_value = f.member(item, field, "id");
    TokenizerJson::Added added;
    added.token.id = token_id_field(f, id_value, field + ".id", tokens);
    added.token.content = f.string(item, field, "content");
    if (added.token.content.empty()) f.error(item, field + ".content", "an empty added token");
    added.token.special = f.boolean(item, field, "special", false);
    added.token.lstrip = f.boolean(item, field, "lstrip", false);
    added.token.rstrip = f.boolean(item, field, "rstrip", false);
    added.normalized = f.boolean(item, field, "normalized", !added.token.special);
    if (f.boolean(item, field, "single_word", false))
      f.unsupported(*item.find("single_word"), field + ".single_word", "single_word true", "single_word false");
    if (const auto it = by_content.find(added.token.content); it != by_content.end())
      f.error(item, field + ".content", fmt::format("{} is also added_tokens[{}]", quoted(added.token.content), it->second));
    if (const auto it = by_id.find(added.token.id); it != by_id.end())
      f.error(id_value, field + ".id", fmt::format("id {} is also added_tokens[{}]", added.token.id, it->second));
    by_content.emplace(added.token.content, i);
    by_id.emplace(added.token.id, i);
    out.added.push_back(std::move(added));
  }
}

// model.vocab straight from the reader: token (in the byte alphabet) -> id. The ids are placed
// by place_vocab once the file's token count is known.
struct VocabEntries {
  struct Entry {
    size_t offset;
    int64_t id;
  };
  std::vector<Entry> entries;
  std::vector<std::string> bytes_of;
};

void read_vocab(JsonReader& r, VocabEntries& out) {
  out = {};  // a repeated "vocab" key: the last one counts, as before
  std::string bytes;
  r.read_object([&](const std::string& key, size_t key_offset) {
    const size_t value_offset = r.offset();
    const int64_t id = r.read_id();
    uint32_t bad = 0;
    if (!spelled_to_bytes(key, bytes, bad))
      r.field_error(key_offset, "model.vocab",
                    fmt::format("token {} has the character U+{:04X}, which stands for no byte in the byte-level "
                                "alphabet; gptrain knows byte-level BPE vocabularies only", quoted(key), bad));
    if (bytes.empty()) r.field_error(key_offset, "model.vocab", "an empty token");
    out.entries.push_back({value_offset, id});
    out.bytes_of.push_back(bytes);
  });
}

// The vocabulary indexed by id. Ids may leave gaps (added tokens fill them), but every id must be
// below `tokens`, the file's count of tokens (model.vocab's and added_tokens' entries): the table
// is as large as the largest id, and an id of 2^31 - 1 alone must not make us allocate 64 GiB.
void place_vocab(const JsonReader& r, VocabEntries& vocab, size_t tokens, TokenizerJson& out) {
  int64_t max_id = -1;
  size_t max_at = 0;
  for (const VocabEntries::Entry& e : vocab.entries)
    if (e.id > max_id) {
      max_id = e.id;
      max_at = e.offset;
    }
  if (max_id >= static_cast<int64_t>(tokens))
    r.field_error(max_at, "model.vocab",
                  fmt::format("id {} is beyond the {} tokens of the file (model.vocab and added_tokens); ids must be "
                              "below that", max_id, tokens));
  out.token_bytes.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<size_t> first_offset(out.token_bytes.size(), 0);
  for (size_t i = 0; i < vocab.entries.size(); ++i) {
    const VocabEntries::Entry& e = vocab.entries[i];
    std::string& slot = out.token_bytes[static_cast<size_t>(e.id)];
    if (!slot.empty())
      r.field_error(e.offset, "model.vocab",
                    fmt::format("id {} is used twice (the first time at {}); each id must appear once", e.id,
                                r.position(first_offset[e.id])));
    slot = std::move(vocab.bytes_of[i]);
    first_offset[e.id] = e.offset;
  }
}

// model.merges: "a b" strings (older files) or ["a", "b"] pairs (tokenizers >= 0.20).
void read_merges(JsonReader& r, const TokenTable& ids, TokenizerJson& out) {
  std::string item, left, right;
  uint32_t bad = 0;
  auto id_of = [&](const std::string& spelled, std::string& bytes, size_t offset, size_t index) {
    if (!spelled_to_bytes(spelled, bytes, bad))
      r.field_error(offset, fmt::format("model.merges[{}]", index),
                    fmt::format("{} has the character U+{:04X}, which stands for no byte", quoted(spelled), bad));
    const int32_t id = ids.find(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (id < 0)
      r.field_error(offset, fmt::format("model.merges[{}]", index),
                    fmt::format("{} is not in model.vocab; the merges and the vocabulary must come from the same model",
                                quoted(spelled)));
    return id;
  };
  std::string left_bytes, right_bytes;
  r.read_array([&](size_t index) {
    const size_t offset = r.offset();
    if (r.peek_kind() == JsonValue::kString) {
      r.read_string_into(item);
      const size_t space = item.find(' ');
      if (space == std::string::npos || item.find(' ', space + 1) != std::string::npos)
        r.field_error(offset, fmt::format("model.merges[{}]", index),
                      fmt::format("expected two tokens separated by one space, found {}", quoted(item)));
      left.assign(item, 0, space);
      right.assign(item, space + 1);
    } else {
      size_t parts = 0;
      r.read_array([&](size_t) { r.read_string_into(parts++ == 0 ? left : right); });
      if (parts != 2)
        r.field_error(offset, fmt::format("model.merges[{}]", index), fmt::format("expected a pair of tokens, found {} of them", parts));
    }
    const int32_t a = id_of(left, left_bytes, offset, index), b = id_of(right, right_bytes, offset, index);
    left_bytes += right_bytes;
    const int32_t merged = ids.find(reinterpret_cast<const uint8_t*>(left_bytes.data()), left_bytes.size());
    if (merged < 0)
      r.field_error(offset, fmt::format("model.merges[{}]", index),
                    fmt::format("{} + {} makes a token that is not in model.vocab", quoted(left), quoted(right)));
    out.merges.push_back({a, b, merged});
  });
}

}  // namespace

TokenizerJson read_tokenizer_json(const std::string& path) {
  const std::string text = read_whole_file(path);
  JsonReader r(path, text);
  TokenizerJson out;
  JsonValue top;  // every top-level member, the model without its vocab and merges
  top.kind = JsonValue::kObject;
  JsonValue model;
  model.kind = JsonValue::kObject;
  size_t vocab_offset = std::string::npos, merges_offset = std::string::npos;
  VocabEntries vocab;
  if (r.peek_kind() != JsonValue::kObject) r.error_at(r.offset(), "expected '{' (a tokenizer.json is one JSON object)");
  r.read_object([&](const std::string& key, size_t) {
    if (key != "model" || r.peek_kind() != JsonValue::kObject) {
      top.members.emplace_back(key, r.read_value());
      return;
    }
    model.offset = r.offset();
    r.read_object([&](const std::string& model_key, size_t) {
      if (model_key == "vocab" && r.peek_kind() == JsonValue::kObject) {
        vocab_offset = r.offset();
        read_vocab(r, vocab);
      } else if (model_key == "merges" && r.peek_kind() == JsonValue::kArray) {
        merges_offset = r.offset();  // read below: the pairs need every token's id
        r.skip_value();
      } else {
        model.members.emplace_back(model_key, r.read_value());
      }
    });
    top.members.emplace_back("model", model);
  });
  r.expect_end();

  const Fields f(r);
  const JsonValue* model_value = top.find("model");
  if (!model_value) f.error(top, "model", "missing (tokenizer.json has no \"model\")");
  f.expect_kind(*model_value, "model", JsonValue::kObject);
  const std::string& type = f.type(model, "model");
  if (type != "BPE") f.unsupported(*model.find("type"), "model.type", fmt::format("model type {}", quoted(type)), "BPE");
  if (vocab_offset == std::string::npos) f.error(model, "model.vocab", "missing, or not an object of token -> id");
  if (merges_offset == std::string::npos) f.error(model, "model.merges", "missing, or not an array");
  const JsonValue* added_tokens = top.find("added_tokens");
  const size_t tokens = vocab.entries.size() + (added_tokens ? added_tokens->items.size() : 0);
  place_vocab(r, vocab, tokens, out);
  out.ignore_merges = f.boolean(model, "model", "ignore_merges", false);
  if (const JsonValue* dropout = model.find("dropout"); dropout && dropout->kind != JsonValue::kNull &&
                                                          !(dropout->kind == JsonValue::kNumber && std::strtod(dropout->text.c_str(), nullptr) == 0.0))
    f.unsupported(*dropout, "model.dropout", fmt::format("BPE dropout {}", dropout->text), "dropout null (it makes encoding random)");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const JsonValue* v = model.find(affix); v && v->kind != JsonValue::kNull && !(v->kind == JsonValue::kString && v->text.empty()))
      f.unsupported(*v, std::string("model.") + affix, fmt::format("{} {}", affix, v->kind == JsonValue::kString ? quoted(v->text) : "value"),
                    "null or \"\"");

  TokenTable ids;
  ids.build(out.token_bytes);
  auto id_of = [&](const std::string& bytes) { return ids.find(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()); };
  for (size_t id = 0; id < out.token_bytes.size(); ++id) {
    if (out.token_bytes[id].empty()) continue;
    const int32_t first = id_of(out.token_bytes[id]);
    if (first != static_cast<int32_t>(id))
      f.error(model, "model.vocab", fmt::format("token {} has two ids ({} and {})", quoted(out.token_bytes[id]),
                                                std::min<size_t>(first, id), std::max<size_t>(first, id)));
  }
  // A byte-level vocabulary has a token for each of the 256 bytes.
  for (int b = 0; b < 256; ++b)
    if (id_of(std::string(1, static_cast<char>(b))) < 0)
      f.error(model, "model.vocab", fmt::format("no token for the byte 0x{:02x} (spelled U+{:04X}); a byte-level BPE "
                                                "vocabulary needs all 256 single-byte tokens", b,
                                                byte_to_unicode(static_cast<uint8_t>(b))));
  r.seek(merges_offset);
  read_merges(r, ids, out);

  auto top_member = [&](const char* key) -> const JsonValue& {
    static const JsonValue null_value;
    const JsonValue* v = top.find(key);
    return v ? *v : null_value;
  };
  out.pattern = read_pre_tokenizer(f, top_member("pre_tokenizer"));
  out.nfc = read_normalizer(f, top_member("normalizer"));
  out.bos_id = read_post_processor(f, top_member("post_processor"), "post_processor", tokens);
  read_decoder(f, top_member("decoder"));
  read_added_tokens(f, top_member("added_tokens"), tokens, out);
  // The BOS callers put before a text must be a token (tokenizers would emit the id as it is).
  if (out.bos_id >= 0) {
    const auto bos = static_cast<size_t>(out.bos_id);
    bool known = bos < out.token_bytes.size() && !out.token_bytes[bos].empty();
    for (const TokenizerJson::Added& a : out.added) known = known || a.token.id == out.bos_id;
    if (!known)
      f.error(top_member("post_processor"), "post_processor",
              fmt::format("the template puts id {} before the text, which is no token of model.vocab or added_tokens",
                          out.bos_id));
  }
  return out;
}

std::string read_config_eos_token(const std::string& path) {
  const std::string text = read_whole_file(path);
  JsonReader r(path, text);
  const JsonValue config = r.read_document();
  const Fields f(r);
  f.expect_kind(config, "(the top level)", JsonValue::kObject);
  const JsonValue* eos = config.find("eos_token");
  if (!eos || eos->kind == JsonValue::kNull) return "";
  if (eos->kind == JsonValue::kString) return eos->text;
  return f.string(*eos, "eos_token", "content");
}

}  // namespace gptrain::tokenizer_detail
