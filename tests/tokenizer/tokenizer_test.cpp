// Tokenizer behaviour: loading (both file formats, every error naming file and line), special
// tokens, invalid UTF-8, decoding, the book's expected ids, and parallel encoding.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <random>
#include <string>
#include <vector>

#include "test_support.h"
#include "tokenizer/bpe.h"
#include "tokenizer/vocab_files.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

std::string spelled(std::string_view bytes) {  // bytes in GPT-2's file alphabet, as UTF-8
  std::string out;
  for (unsigned char b : bytes) {
    const uint32_t cp = tokenizer_detail::byte_to_unicode(b);
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

std::string json_escaped(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out;
}

// A tiny byte-level vocabulary written in either file format: 256 byte tokens (ids 0..255 in
// byte order), the merges "h e", "Ġ t", "Ġt he" (ids 256..258) and <|endoftext|> = 259.
struct TinyVocab {
  fs::path dir;
  explicit TinyVocab(const std::string& name) : dir(fs::temp_directory_path() / ("gptrain_tok_" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TinyVocab() { fs::remove_all(dir); }
  static std::string vocab_json() {
    std::string json = "{";
    for (int b = 0; b < 256; ++b) json += fmt::format("\"{}\": {},\n", json_escaped(spelled(std::string(1, char(b)))), b);
    json += "\"he\": 256, \"\xc4\xa0t\": 257, \"\xc4\xa0the\": 258, \"<|endoftext|>\": 259}";
    return json;
  }
  static std::string merges() { return "#version: 0.2\nh e\n\xc4\xa0 t\n\xc4\xa0t he\n"; }
  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  }
};

std::string load_error(const fs::path& vocab, const fs::path& merges) {
  try {
    Tokenizer::from_files(vocab.string(), merges.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerFiles, tiny_vocabulary_in_both_formats) {
  TinyVocab v("formats");
  v.write("vocab.json", TinyVocab::vocab_json());
  v.write("merges.txt", TinyVocab::merges());
  const Tokenizer hf = Tokenizer::from_dir(v.dir);
  EXPECT_EQ(hf.vocab_size(), 260);
  EXPECT_EQ(hf.eot_id(), 259);
  EXPECT_EQ(hf.encode(" the"), (Ids{258}));
  EXPECT_EQ(hf.encode("the"), (Ids{'t', 256}));
  EXPECT_EQ(hf.encode("the the<|endoftext|>", true), (Ids{'t', 256, 258, 259}));
  EXPECT_EQ(hf.decode(hf.encode("the the<|endoftext|>", true)), "the the<|endoftext|>");
  // Two tokenizers on one thread must not share cached merges: without merges "the" stays 3 bytes.
  TinyVocab bare("bare");
  bare.write("vocab.json", TinyVocab::vocab_json());
  bare.write("merges.txt", "#version: 0.2\n");
  const Tokenizer no_merges = Tokenizer::from_dir(bare.dir);
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(hf.encode("the"), (Ids{'t', 256}));
    EXPECT_EQ(no_merges.encode("the"), (Ids{'t', 'h', 'e'}));
  }
  fs::rename(v.dir / "vocab.json", v.dir / "encoder.json");
  fs::rename(v.dir / "merges.txt", v.dir / "vocab.bpe");
  EXPECT_EQ(Tokenizer::from_dir(v.dir).encode(" the"), (Ids{258}));
}

TEST(TokenizerFiles, missing_and_corrupt_files_name_the_file_and_line) {
  TinyVocab v("errors");
  const std::string good_vocab = TinyVocab::vocab_json();
  const fs::path vocab = v.write("vocab.json", good_vocab);
  const fs::path merges = v.write("merges.txt", TinyVocab::merges());
  auto expect_error = [&](const std::string& error, std::vector<std::string> parts) {
    for (const std::string& part : parts) EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' not in: " << error;
  };
  expect_error(load_error(v.dir / "nope.json", merges), {"nope.json", "cannot open"});
  expect_error(load_error(vocab, v.dir / "nope.txt"), {"nope.txt", "cannot open"});
  EXPECT_THROW(Tokenizer::from_dir(v.dir / "absent"), Error);

  // JSON damage on line 3 (each byte token is on its own line).
  std::string broken = good_vocab;
  broken.replace(broken.find(": 2,"), 4, ": x2,");
  expect_error(load_error(v.write("vocab.json", broken), merges), {"vocab.json line 3", "non-negative integer"});
  std::string no_comma = good_vocab;
  no_comma.replace(no_comma.find(": 2,\n"), 5, ": 2 \"x\"");
  expect_error(load_error(v.write("vocab.json", no_comma), merges), {"vocab.json line 3", "expected ',' or '}'"});
  expect_error(load_error(v.write("vocab.json", good_vocab.substr(0, 500)), merges), {"vocab.json line 53", "end of the file"});
  std::string float_id = good_vocab;
  float_id.replace(float_id.find(": 5,"), 4, ": 5.5,");
  expect_error(load_error(v.write("vocab.json", float_id), merges), {"vocab.json line 6", "integer"});
  std::string duplicate = good_vocab;
  duplicate.replace(duplicate.find(": 7,"), 4, ": 6,");
  expect_error(load_error(v.write("vocab.json", duplicate), merges), {"vocab.json line 8", "id 6", "already used"});
  std::string twice = good_vocab;
  twice.replace(twice.find("\"he\": 256"), 9, "\"h\": 256");
  expect_error(load_error(v.write("vocab.json", twice), merges), {"vocab.json line 257", "appears twice", "104 and 256"});
  std::string missing_byte = good_vocab;
  missing_byte.replace(missing_byte.find("\"A\": 65"), 7, "\"AA\": 65");
  expect_error(load_error(v.write("vocab.json", missing_byte), merges), {"vocab.json", "byte 0x41"});
  std::string foreign = good_vocab;
  foreign.replace(foreign.find("\"he\""), 4, "\"h\xe4\xb8\xad\"");
  expect_error(load_error(v.write("vocab.json", foreign), merges), {"vocab.json line 257", "U+4E2D"});
  std::string no_eot = good_vocab;
  no_eot.replace(no_eot.find("<|endoftext|>"), 13, "<|other|>");
  expect_error(load_error(v.write("vocab.json", no_eot), merges), {"vocab.json", "<|endoftext|>"});
  v.write("vocab.json", good_vocab);

  expect_error(load_error(vocab, v.write("merges.txt", "#version: 0.2\nh e\n\xc4\xa0t\n")), {"merges.txt line 3", "two tokens"});
  expect_error(load_error(vocab, v.write("merges.txt", "#version: 0.2\nh e\n\nx y\n")), {"merges.txt line 3", "empty line"});
  expect_error(load_error(vocab, v.write("merges.txt", "#version: 0.2\nh e\nhe zz\n")), {"merges.txt line 3", "\"zz\" is not a token"});
  expect_error(load_error(vocab, v.write("merges.txt", "#version: 0.2\nh e\nt h\n")), {"merges.txt line 3", "not in"});
  EXPECT_EQ(load_error(vocab, v.write("merges.txt", "h e\n\xc4\xa0 t\n\xc4\xa0t he\n\n\n")), "(no error)");
}

TEST(Tokenizer, book_examples) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  EXPECT_EQ(t->vocab_size(), 50257);
  EXPECT_EQ(t->eot_id(), 50256);
  const std::string tea = "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.";
  const Ids tea_ids = {15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 1659, 617, 34680, 27271, 13};
  EXPECT_EQ(t->encode(tea, true), tea_ids);
  EXPECT_EQ(t->decode(tea_ids), tea);
  EXPECT_EQ(t->encode("Every effort moves you"), (Ids{6109, 3626, 6100, 345}));
  EXPECT_EQ(t->encode("Every day holds a"), (Ids{6109, 1110, 6622, 257}));
  EXPECT_EQ(t->encode("This is some text"), (Ids{1212, 318, 617, 2420}));
  EXPECT_EQ(t->encode("Implementations"), (Ids{3546, 26908, 602}));
  EXPECT_EQ(t->encode("asdf asdfasdf a!!, @aba 9asdf90asdfk"),
            (Ids{292, 7568, 355, 7568, 292, 7568, 257, 3228, 11, 2488, 15498, 860, 292, 7568, 3829, 292, 7568, 74}));
  EXPECT_EQ(t->encode("Hello, world. Is this-- a test?"), (Ids{15496, 11, 995, 13, 1148, 428, 438, 257, 1332, 30}));
  EXPECT_EQ(t->token_id("\n"), 198);
  EXPECT_EQ(t->token_id("<|endoftext|>"), 50256);
  EXPECT_EQ(t->decode(t->encode("  Hello World.")), "  Hello World.");
}

TEST(Tokenizer, gpt2_files_under_hugging_face_names) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  TinyVocab hf("hf_names");  // only its temporary directory
  fs::copy_file(test::data_dir() / "gpt2_tokenizer" / "encoder.json", hf.dir / "vocab.json");
  fs::copy_file(test::data_dir() / "gpt2_tokenizer" / "vocab.bpe", hf.dir / "merges.txt");
  const Tokenizer from_hf = Tokenizer::from_dir(hf.dir);
  const std::string text = "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace.";
  EXPECT_EQ(from_hf.encode(text, true), t->encode(text, true));
  EXPECT_EQ(from_hf.vocab_size(), 50257);
}

TEST(Tokenizer, special_token_only_when_allowed) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const Ids plain = t->encode("Hello<|endoftext|>\nworld");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
  EXPECT_EQ(t->decode(plain), "Hello<|endoftext|>\nworld");
  EXPECT_EQ(t->encode("<|endoftext|>", true), (Ids{50256}));
  EXPECT_EQ(t->encode("<|endoftext|><|endoftext|>", true), (Ids{50256, 50256}));
  EXPECT_EQ(t->encode("<|endoftext|", true), t->encode("<|endoftext|"));
  EXPECT_EQ(t->decode_token(50256), "<|endoftext|>");
}

TEST(Tokenizer, any_bytes_encode_and_decode_back) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  std::mt19937 rng(11);
  const std::string pool[] = {"a", "Z", " ", "  ", "\n", "'s", "1", "!", "\xc3\xa9", "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
                              "\xff", "\x80", "\xe2\x82", "\xed\xa0\x80", "<|endoftext|>", "\t"};
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    const int parts = static_cast<int>(rng() % 24);
    for (int k = 0; k < parts; ++k) {
      if (rng() % 4 == 0) text += static_cast<char>(rng());
      else text += pool[rng() % std::size(pool)];
    }
    const bool allow = rng() % 2;
    const Ids ids = t->encode(text, allow);
    ASSERT_EQ(t->decode(ids), text) << "round " << round;
  }
  // Long pieces take the heap-based merge.
  for (const std::string& text : {std::string(5000, ' '), std::string(3000, '7'), std::string(1000, '\xff')})
    EXPECT_EQ(t->decode(t->encode(text)), text);
}

TEST(Tokenizer, decoding_a_split_character_gives_its_raw_bytes) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const Ids rare = t->encode("\xe9\xbe\x98");  // U+9F98 is two tokens: E9 BE and 98
  ASSERT_EQ(rare, (Ids{11737, 246}));
  EXPECT_EQ(t->decode({rare.data(), 1}), "\xe9\xbe");
  EXPECT_EQ(utf8_lossy(t->decode({rare.data(), 1})), "\xef\xbf\xbd");  // as tiktoken's decode() shows it
  EXPECT_EQ(utf8_lossy("a\xe2\x82" "b\xed\xa0\x80" "c"), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "c");
  EXPECT_EQ(utf8_lossy("\xf0\x9f\x98"), "\xef\xbf\xbd");
  EXPECT_THROW(t->decode(Ids{50257}), Error);
  EXPECT_THROW(t->decode(Ids{-1}), Error);
}

TEST(Tokenizer, the_verdict_and_its_book_split) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const auto path = test::data_dir() / "the-verdict.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  const std::string text = test::read_file(path);
  const Ids ids = t->encode(text, true);
  EXPECT_EQ(ids.size(), 5145u);
  EXPECT_EQ(Ids(ids.begin(), ids.begin() + 8), (Ids{40, 367, 2885, 1464, 1807, 3619, 402, 271}));
  EXPECT_EQ(t->encode(text.substr(0, 18431), true).size(), 4612u);  // ch05's 90/10 split by characters
  EXPECT_EQ(t->encode(text.substr(18431), true).size(), 534u);
}

TEST(Tokenizer, tinyshakespeare_matches_nanogpt_counts) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  const auto path = test::data_dir() / "corpus" / "tinyshakespeare.txt";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  const std::string text = test::read_file(path);  // ASCII: characters are bytes
  const size_t split = text.size() * 9 / 10;        // nanoGPT: data[:int(n*0.9)]
  const Ids train = t->encode(text.substr(0, split));
  EXPECT_EQ(train.size(), 301966u);
  EXPECT_EQ(t->encode(text.substr(split)).size(), 36059u);
  EXPECT_EQ(Ids(train.begin(), train.begin() + 10), (Ids{5962, 22307, 25, 198, 8421, 356, 5120, 597, 2252, 11}));
}

TEST(Tokenizer, parallel_encoding_equals_serial) {
  GPTRAIN_REQUIRE_GPT2_TOKENIZER(t);
  std::string text;
  for (const char* name : {"corpus/gutenberg_2701_moby_dick.txt", "corpus/tinystories_sample_cs336.txt",
                           "corpus/gutenberg_84_frankenstein.txt", "corpus/gutenberg_1342_pride_and_prejudice.txt"})
    if (fs::exists(test::data_dir() / name)) text += test::read_file(test::data_dir() / name);
  if (text.size() < (size_t{2} << 20)) GTEST_SKIP() << "corpus files not found in " << test::data_dir();
  // Chunk boundaries land on awkward text too: runs of spaces, invalid bytes, CJK without spaces.
  for (size_t at = 100000; at + 5000 < text.size(); at += 300007) {
    text.insert(at, std::string(300, ' ') + "\xff\xe2\x82 x\t\t\n");
    text.insert(at + 1000, "\xe4\xb8\xad\xe6\x96\x87\xe4\xb8\xad\xe6\x96\x87 <|endoftext|>  ");
  }
  for (bool allow : {false, true}) {
    const Ids serial = t->encode(text, allow);
    for (int threads : {2, 3, 8}) EXPECT_EQ(t->encode_parallel(text, allow, threads), serial) << threads << " threads";
  }
  std::string cjk;
  while (cjk.size() < (size_t{3} << 20)) cjk += "\xe4\xb8\xad\xe6\x96\x87\xe6\xb2\xa1\xe6\x9c\x89\xe7\xa9\xba\xe6\xa0\xbc";
  EXPECT_EQ(t->encode_parallel(cjk, false, 2), t->encode(cjk));  // no safe cut: one chunk
}

}  // namespace
}  // namespace gptrain
