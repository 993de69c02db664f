// Token-for-token equality with tiktoken's "gpt2" encoding: the published test cases
// (gpt2_tokenizer_tests.jsonl), every text file and text of the data dir (hashes of tiktoken's ids
// written by tests/tools/gen_tokenizer_fixtures.py), and our generated adversarial corpus.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "test_support.h"
#include "tokenizer/bpe.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
using nlohmann::ordered_json;

std::vector<ordered_json> read_jsonl(const fs::path& path) {
  std::vector<ordered_json> rows;
  std::istringstream in(test::read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(ordered_json::parse(line));
  return rows;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

TEST(TiktokenParity, published_gpt2_test_cases) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const fs::path path = test::data_dir() / "gpt2_tokenizer" / "gpt2_tokenizer_tests.jsonl";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found: the published GPT-2 test cases were not checked";
  int passed = 0, failed = 0;
  for (const ordered_json& c : read_jsonl(path)) {
    const std::string text = c.at("text").get<std::string>();
    const Ids want = c.at("ids").get<Ids>();
    const Ids got = t->encode(text, c.value("allowed_special", false));
    if (got == want) ++passed;
    else if (failed++ < 10) ADD_FAILURE() << "text " << ordered_json(text).dump() << "\n  want " << ordered_json(want).dump()
                                          << "\n  got  " << ordered_json(got).dump();
  }
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(passed, 537);
  std::printf("gpt2_tokenizer_tests.jsonl: %d of %d cases equal\n", passed, passed + failed);
}

TEST(TiktokenParity, every_text_file_of_the_data_dir) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const ordered_json fixture = ordered_json::parse(test::read_file(test::fixtures_dir() / "tiktoken_data_files.json"));
  int equal = 0, skipped = 0;
  int64_t tokens = 0;
  for (const ordered_json& f : fixture.at("files")) {
    const std::string name = f.at("path").get<std::string>();
    const fs::path path = test::data_dir() / name;
    if (!fs::exists(path)) {
      ++skipped;
      continue;
    }
    const std::string text = test::read_file(path);
    if (test::sha256_hex(text) != f.at("sha256").get<std::string>()) {
      std::printf("skipped %s: its content differs from the one the fixture was made from\n", name.c_str());
      ++skipped;
      continue;
    }
    bool same = true;
    for (const char* mode : {"ordinary", "special"}) {
      const Ids ids = t->encode(text, std::string(mode) == "special");
      const ordered_json& want = f.at(mode);
      const std::string hash = test::sha256_ids(ids);
      EXPECT_EQ(static_cast<int64_t>(ids.size()), want.at("count").get<int64_t>()) << name << " (" << mode << ")";
      EXPECT_EQ(hash, want.at("ids_sha256").get<std::string>()) << name << " (" << mode << ")";
      same = same && hash == want.at("ids_sha256").get<std::string>();
      tokens += static_cast<int64_t>(ids.size());
    }
    equal += same;
  }
  if (equal == 0) GTEST_SKIP() << "no data file found in " << test::data_dir();
  std::printf("data files: %d equal to tiktoken (%lld tokens in both modes), %d skipped\n", equal,
              static_cast<long long>(tokens), skipped);
}

// Per-text encodings of the SMS messages and of every string in the JSON data sets.
TEST(TiktokenParity, texts_of_the_sms_and_instruction_data) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const ordered_json fixture = ordered_json::parse(test::read_file(test::fixtures_dir() / "tiktoken_data_texts.json"));
  int collections = 0;
  int64_t texts_checked = 0;
  for (const ordered_json& c : fixture.at("collections")) {
    const std::string source = c.at("source").get<std::string>();
    const fs::path path = test::data_dir() / source;
    if (!fs::exists(path)) continue;
    const std::string raw = test::read_file(path);
    if (test::sha256_hex(raw) != c.at("source_sha256").get<std::string>()) {
      std::printf("skipped %s: its content differs from the one the fixture was made from\n", source.c_str());
      continue;
    }
    const std::vector<std::string> texts = test::collection_texts(c.at("name").get<std::string>(), raw);
    ASSERT_EQ(static_cast<int64_t>(texts.size()), c.at("texts").get<int64_t>()) << source;
    test::Sha256 all, block;
    int64_t tokens = 0;
    std::vector<std::string> blocks;
    for (size_t i = 0; i < texts.size(); ++i) {
      const Ids ids = t->encode(texts[i]);
      for (test::Sha256* h : {&all, &block}) {
        h->update_u32(static_cast<uint32_t>(ids.size()));
        for (int32_t id : ids) h->update_u32(static_cast<uint32_t>(id));
      }
      tokens += static_cast<int64_t>(ids.size());
      if ((i + 1) % 256 == 0 || i + 1 == texts.size()) {
        blocks.push_back(block.hex().substr(0, 16));
        block = test::Sha256();
      }
    }
    EXPECT_EQ(tokens, c.at("tokens").get<int64_t>()) << source;
    const auto want_blocks = c.at("block_sha256_16").get<std::vector<std::string>>();
    for (size_t b = 0; b < blocks.size() && b < want_blocks.size(); ++b)
      EXPECT_EQ(blocks[b], want_blocks[b]) << source << ": a text among numbers " << b * 256 << ".." << b * 256 + 255
                                           << " encodes differently from tiktoken";
    EXPECT_EQ(all.hex(), c.at("ids_sha256").get<std::string>()) << source;
    ++collections;
    texts_checked += static_cast<int64_t>(texts.size());
  }
  if (collections == 0) GTEST_SKIP() << "no SMS or JSON data found in " << test::data_dir();
  std::printf("texts: %lld texts in %d collections equal to tiktoken\n", static_cast<long long>(texts_checked), collections);
}

TEST(TiktokenParity, adversarial_corpus) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  int passed = 0, failed = 0, bytes_cases = 0;
  for (const ordered_json& c : read_jsonl(test::fixtures_dir() / "adversarial.jsonl")) {
    const bool is_bytes = c.contains("hex");
    const std::string text = is_bytes ? from_hex(c.at("hex").get<std::string>()) : c.at("text").get<std::string>();
    const Ids want = c.at("ids").get<Ids>();
    const Ids got = t->encode(text, c.at("allowed_special").get<bool>());
    bytes_cases += is_bytes;
    if (got == want) ++passed;
    else if (failed++ < 10)
      ADD_FAILURE() << (is_bytes ? "bytes " + c.at("hex").get<std::string>() : "text " + ordered_json(text).dump())
                    << "\n  want " << ordered_json(want).dump() << "\n  got  " << ordered_json(got).dump();
    EXPECT_EQ(t->decode(got), text);
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(passed, 500);
  std::printf("adversarial corpus: %d of %d cases equal to tiktoken (%d through the bytes path)\n", passed,
              passed + failed, bytes_cases);
}

}  // namespace
}  // namespace gptrain
