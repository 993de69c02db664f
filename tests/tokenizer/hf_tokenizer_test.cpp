// tokenizer.json behaviour: two made-up files against tokenizers (added tokens with lstrip, rstrip
// and normalized, NFC, the BOS of a TemplateProcessing, merges in both spellings), what the real
// files expose (BOS, EOS, special tokens, vocabulary size), invalid UTF-8, parallel encoding, and
// every error naming the file and the field.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "test_support.h"
#include "tokenizer/bpe.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
using nlohmann::ordered_json;

fs::path hf_fixtures() { return fs::path(GPTRAIN_FIXTURES_DIR) / "hf_tokenizer"; }

struct TempDir {
  fs::path dir;
  explicit TempDir(const std::string& name) : dir(fs::temp_directory_path() / ("gptrain_hf_" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  }
};

TEST(HfTokenizer, made_up_files_equal_tokenizers) {
  std::istringstream in(test::read_file(hf_fixtures() / "tiny_cases.jsonl"));
  std::map<std::string, Tokenizer> loaded;
  int cases = 0;
  for (std::string line; std::getline(in, line);) {
    const ordered_json c = ordered_json::parse(line);
    const std::string file = c.at("file").get<std::string>();
    if (!loaded.count(file)) loaded.emplace(file, Tokenizer::from_tokenizer_json(hf_fixtures() / file));
    const Tokenizer& t = loaded.at(file);
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(t.encode(text, true), c.at("special").get<Ids>()) << file << " " << ordered_json(text).dump();
    EXPECT_EQ(t.encode(text, false), c.at("ordinary").get<Ids>()) << file << " " << ordered_json(text).dump();
    EXPECT_EQ(t.encode_parallel(text, true, 2), c.at("special").get<Ids>());
    if (c.contains("with_bos")) {
      Ids with_bos = {t.bos_id()};
      for (int32_t id : t.encode(text, true)) with_bos.push_back(id);
      EXPECT_EQ(with_bos, c.at("with_bos").get<Ids>()) << file << " " << ordered_json(text).dump();
    }
    ++cases;
  }
  EXPECT_EQ(cases, 64);
  const Tokenizer& tiny = loaded.at("tiny_tokenizer.json");
  EXPECT_EQ(tiny.bos_id(), -1);
  EXPECT_EQ(tiny.eot_id(), -1);  // no tokenizer_config.json, not GPT-2's pattern
  const Tokenizer& gpt2 = loaded.at("tiny_gpt2_tokenizer.json");
  EXPECT_EQ(gpt2.bos_id(), gpt2.token_id("<s>"));
  EXPECT_EQ(gpt2.eot_id(), gpt2.token_id("<|endoftext|>"));  // a GPT-2 tokenizer.json without a config
  EXPECT_TRUE(gpt2.is_special(gpt2.token_id("<mask>")));
  EXPECT_FALSE(gpt2.is_special(gpt2.token_id("<extra>")));
  EXPECT_EQ(gpt2.special_tokens().size(), 4u);
  EXPECT_EQ(gpt2.decode(gpt2.encode("x <mask>[R]  y<extra>", true)), "x<mask>[R]y<extra>");  // stripped space is gone
}

TEST(HfTokenizer, what_the_real_files_expose) {
  if (const Tokenizer* t = test::hf_tokenizer("llama3")) {
    EXPECT_EQ(t->vocab_size(), 128256);
    EXPECT_EQ(t->bos_id(), -1);  // this file's post-processor is ByteLevel only
    EXPECT_EQ(t->eot_id(), -1);  // and no tokenizer_config.json is next to it
    EXPECT_EQ(t->special_tokens().size(), 256u);
    EXPECT_TRUE(t->is_special(128000));
    EXPECT_FALSE(t->is_special(127999));
    EXPECT_EQ(t->token_id("<|eot_id|>"), 128009);
    EXPECT_EQ(t->token_id("<|reserved_special_token_250|>"), 128255);
    EXPECT_EQ(t->token_id("<|endoftext|>"), -1);  // no such token (with ignore_merges: one table only)
    EXPECT_EQ(t->token_id(" Vi\xe1\xbb\x87t"), 101798);
    EXPECT_EQ(t->decode(Ids{128000, 9906, 128009}), "<|begin_of_text|>Hello<|eot_id|>");
    EXPECT_EQ(t->encode("<|eot_id|>", true), (Ids{128009}));
    EXPECT_EQ(t->encode("<|eot_id|>", false), (Ids{27, 91, 68, 354, 851, 91, 29}));
    EXPECT_TRUE(t->replaces_invalid_utf8());
    EXPECT_THROW(t->decode(Ids{128256}), Error);
  }
  if (const Tokenizer* t = test::hf_tokenizer("llama3_vision")) {
    EXPECT_EQ(t->vocab_size(), 128257);
    EXPECT_EQ(t->bos_id(), 128000);  // TemplateProcessing puts <|begin_of_text|> first; encode() does not
    EXPECT_EQ(t->eot_id(), 128001);  // tokenizer_config.json: eos_token <|end_of_text|>
    EXPECT_EQ(t->encode("hi"), (Ids{6151}));
    EXPECT_EQ(t->token_id("<|image|>"), 128256);
    EXPECT_EQ(t->token_id("<|endoftext|>"), -1);
    EXPECT_EQ(t->token_id(" Vi\xe1\xbb\x87t"), 101798);  // a token, though encode() never gives it
  }
  if (const Tokenizer* t = test::hf_tokenizer("qwen3")) {
    EXPECT_EQ(t->vocab_size(), 151669);
    EXPECT_EQ(t->bos_id(), -1);
    EXPECT_EQ(t->eot_id(), 151645);  // <|im_end|>
    EXPECT_EQ(t->special_tokens().size(), 14u);
    EXPECT_EQ(t->token_id("<think>"), 151667);
    EXPECT_FALSE(t->is_special(151667));  // added, not special: found even without allow_special
    EXPECT_EQ(t->encode("<think>", false), (Ids{151667}));
    EXPECT_EQ(t->encode("<|im_start|>", true), (Ids{151644}));
    EXPECT_NE(t->encode("<|im_start|>", false), (Ids{151644}));
    // The book's Qwen3 test prompt (inventory: pkg/llms_from_scratch/tests/test_qwen3.py).
    EXPECT_EQ(t->encode("<|im_start|>user\nGive me a short introduction to large language models.<|im_end|>\n", true),
              (Ids{151644, 872, 198, 35127, 752, 264, 2805, 16800, 311, 3460, 4128, 4119, 13, 151645, 198}));
    EXPECT_EQ(t->encode("e\xcc\x81"), t->encode("\xc3\xa9"));  // NFC
  }
  const fs::path qwen_dir = test::data_dir() / "tokenizers" / "qwen";
  if (fs::exists(qwen_dir / "tokenizer.json")) {
    EXPECT_EQ(Tokenizer::from_dir(qwen_dir).vocab_size(), 151669);
  }
}

// tokenizers cannot take invalid UTF-8; a tokenizer.json encodes what Python's
// bytes.decode("utf-8", errors="replace") gives, and first_invalid_utf8() lets a caller warn.
TEST(HfTokenizer, invalid_utf8_is_encoded_as_its_replacement) {
  EXPECT_EQ(first_invalid_utf8("plain ASCII text"), std::string_view::npos);
  EXPECT_EQ(first_invalid_utf8("caf\xc3\xa9 \xe4\xb8\xad"), std::string_view::npos);
  EXPECT_EQ(first_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(first_invalid_utf8("\xe2\x82"), 0u);  // truncated
  EXPECT_EQ(first_invalid_utf8("x\xed\xa0\x80"), 1u);  // an encoded surrogate
  EXPECT_EQ(first_invalid_utf8(std::string(1000, 'a') + "\xc0\xaf"), 1000u);
  EXPECT_EQ(first_invalid_utf8(""), std::string_view::npos);
  const Tokenizer tiny = Tokenizer::from_tokenizer_json(hf_fixtures() / "tiny_tokenizer.json");
  const std::string bad = "ab\xff\xe2\x82 hello\xed\xa0\x80";
  EXPECT_EQ(tiny.encode(bad), tiny.encode(utf8_lossy(bad)));
  EXPECT_EQ(tiny.decode(tiny.encode(bad)), "ab\xef\xbf\xbd\xef\xbf\xbd hello\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  if (const Tokenizer* qwen = test::hf_tokenizer("qwen3")) {
    EXPECT_EQ(qwen->encode("a\xff" "b"), qwen->encode("a\xef\xbf\xbd" "b"));
  }
  if (const Tokenizer* gpt2 = test::gpt2_tokenizer()) {  // GPT-2's files keep every byte
    EXPECT_FALSE(gpt2->replaces_invalid_utf8());
    EXPECT_EQ(gpt2->decode(gpt2->encode(bad)), bad);
  }
}

// Chunks cut where the pattern certainly splits: parallel ids equal serial ones, with special
// tokens, invalid UTF-8, NFC and every adversarial text in the chunks.
TEST(HfTokenizer, parallel_encoding_equals_serial) {
  std::string text;
  std::istringstream in(test::read_file(hf_fixtures() / "adversarial.jsonl"));
  std::string corpus;
  for (std::string line; std::getline(in, line);) {
    const ordered_json c = ordered_json::parse(line);
    corpus += c.contains("hex") ? c.at("hex").get<std::string>() : c.at("text").get<std::string>();
    corpus += " ";
  }
  corpus += "\xff\xfe <|im_start|>user<|eot_id|> e\xcc\x81 ";
  for (int round = 0; text.size() < (size_t{3} << 19); ++round) text += fmt::format("{} {}\n", round, corpus);
  int compared = 0;
  for (const char* name : {"llama3", "llama3_vision", "qwen3"}) {
    const Tokenizer* t = test::hf_tokenizer(name);
    if (!t) continue;
    for (bool special : {true, false}) {
      const Ids serial = t->encode(text, special);
      EXPECT_EQ(t->encode_parallel(text, special, 3), serial) << name << " allow_special " << special;
      ++compared;
    }
  }
  if (compared == 0) GTEST_SKIP() << "none of the three tokenizer.json files is in " << test::data_dir();
  std::printf("parallel == serial on %zu bytes: %d tokenizer/mode pairs\n", text.size(), compared);
}

// ------------------------------------------------------------------------------------------------
// Errors: each names the file, the field and the value.

std::string load_error(const fs::path& path) {
  try {
    Tokenizer::from_tokenizer_json(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_parts(const std::string& error, const std::vector<std::string>& parts) {
  for (const std::string& part : parts) EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' not in: " << error;
}

// tiny_tokenizer.json with `from` replaced by `to` (once).
std::string tiny_with(const std::string& from, const std::string& to) {
  std::string json = test::read_file(hf_fixtures() / "tiny_tokenizer.json");
  const size_t at = json.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) json.replace(at, from.size(), to);
  return json;
}

TEST(HfTokenizerErrors, unsupported_parts_name_the_field_and_value) {
  TempDir d("unsupported");
  const std::string json = test::read_file(hf_fixtures() / "tiny_tokenizer.json");
  const size_t regex = json.find("\"Regex\": \"") + 10;
  std::string other_pattern = json;
  other_pattern.replace(regex, json.find('"', regex) - regex, "\\\\p{L}+|\\\\s+");
  expect_parts(load_error(d.write("tokenizer.json", other_pattern)),
               {"tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex: unsupported pattern \"\\p{L}+|\\s+\"",
                "gptrain knows the GPT-2, Llama 3 and Qwen2 patterns", "line "});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"type\": \"BPE\"", "\"type\": \"WordPiece\""))),
               {"tokenizer.json: model.type: unsupported model type \"WordPiece\" (gptrain knows BPE)"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"type\": \"NFC\"", "\"type\": \"NFKC\""))),
               {"tokenizer.json: normalizer.type: unsupported normalizer \"NFKC\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"type\": \"Split\"", "\"type\": \"Whitespace\""))),
               {"pre_tokenizer.pretokenizers[0].type: unsupported pre-tokenizer \"Whitespace\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"behavior\": \"Isolated\"", "\"behavior\": \"Removed\""))),
               {"pre_tokenizer.pretokenizers[0].behavior: unsupported Split behavior \"Removed\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"single_word\": false", "\"single_word\": true"))),
               {"added_tokens[0].single_word: unsupported single_word true"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"dropout\": null", "\"dropout\": 0.1"))),
               {"model.dropout: unsupported BPE dropout 0.1"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"decoder\": {\n  \"type\": \"ByteLevel\"",
                                                              "\"decoder\": {\n  \"type\": \"WordPiece\""))),
               {"decoder.type: unsupported decoder \"WordPiece\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"post_processor\": {\n  \"type\": \"ByteLevel\"",
                                                              "\"post_processor\": {\n  \"type\": \"RobertaProcessing\""))),
               {"post_processor.type: unsupported post-processor \"RobertaProcessing\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"pre_tokenizer\": {", "\"pre_tokenizer\": null, \"x\": {"))),
               {"pre_tokenizer: unsupported pre_tokenizer null"});
}

TEST(HfTokenizerErrors, damaged_files_name_the_line_and_column_or_the_field) {
  TempDir d("damaged");
  const std::string json = test::read_file(hf_fixtures() / "tiny_tokenizer.json");
  // Malformed JSON: the parser's position.
  std::string no_comma = json;
  const size_t version = no_comma.find("\"version\": \"1.0\",");
  no_comma.erase(version + 16, 1);
  expect_parts(load_error(d.write("tokenizer.json", no_comma)),
               {"tokenizer.json line 3, column 2: expected ',' or '}' after the value", "not valid JSON"});
  expect_parts(load_error(d.write("tokenizer.json", json.substr(0, json.size() / 2))), {"tokenizer.json line ", "column"});
  expect_parts(load_error(d.write("tokenizer.json", "")), {"tokenizer.json line 1, column 1: expected '{'"});
  expect_parts(load_error(d.write("tokenizer.json", json + "x")), {"expected the end of the file"});
  // Valid JSON, wrong content.
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"ignore_merges\": false", "\"ignore_merges\": 0"))),
               {"model.ignore_merges: expected a boolean, found a number"});
  const std::string first_merge = "[\n    \"h\",\n    \"e\"\n   ]";
  expect_parts(load_error(d.write("tokenizer.json", tiny_with(first_merge, "[\"h\", \"\\u3042\"]"))),
               {"model.merges[0]", "has the character U+3042, which stands for no byte"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with(first_merge, "[\"h\", \"e\", \"l\"]"))),
               {"model.merges[0]: expected a pair of tokens, found 3"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with(first_merge, "\"h e l\""))),
               {"model.merges[0]: expected two tokens separated by one space, found \"h e l\""});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with(first_merge, "[\"h\", \"q\"]"))),
               {"model.merges[0]: \"h\" + \"q\" makes a token that is not in model.vocab"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"!\": 33,", ""))),
               {"model.vocab: no token for the byte 0x21"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"\\\"\": 34,", "\"\\\"\": 33,"))),
               {"model.vocab: id 33 is used twice"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"!\": 33,", "\"!\": 33, \"\\u3042\": 999,"))),
               {"model.vocab: token \"\xe3\x81\x82\" has the character U+3042", "byte-level BPE vocabularies only"});
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"model\": {", "\"modelx\": {"))), {"model: missing"});
  // found by fuzz/tokenizer_json_fuzz: one id of 2^31 - 1 sized the table to 64 GiB; ids are below
  // the file's count of tokens
  expect_parts(load_error(d.write("tokenizer.json", tiny_with("\"!\": 33,", "\"!\": 2147483646,"))),
               {"model.vocab", "id 2147483646 is beyond the", "tokens of the file"});
  expect_parts(load_error(d.dir / "absent.json"), {"absent.json", "cannot open"});
  // A tokenizer_config.json whose eos_token is no token.
  d.write("tokenizer.json", json);
  d.write("tokenizer_config.json", "{\"eos_token\": \"<|nope|>\"}");
  expect_parts(load_error(d.dir / "tokenizer.json"), {"tokenizer_config.json: eos_token \"<|nope|>\" is not a token"});
  d.write("tokenizer_config.json", "{\"eos_token\": {\"content\": \"<think>\", \"special\": false}}");
  EXPECT_EQ(Tokenizer::from_dir(d.dir).eot_id(), Tokenizer::from_dir(d.dir).token_id("<think>"));
  d.write("tokenizer_config.json", "{\"eos_token\": ");
  expect_parts(load_error(d.dir / "tokenizer.json"), {"tokenizer_config.json line 1, column 15"});
}

TEST(HfTokenizerErrors, a_directory_without_tokenizer_files_names_what_was_looked_for) {
  TempDir d("empty");
  try {
    Tokenizer::from_dir(d.dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    expect_parts(e.what(), {d.dir.string(), "tokenizer.json", "encoder.json + vocab.bpe", "vocab.json + merges.txt"});
  }
}

}  // namespace
}  // namespace gptrain
