// libFuzzer target for GPT-2's vocabulary files (tokenizer/vocab_files.h, Tokenizer::from_files):
// the input is encoder.json, a NUL byte, vocab.bpe, and optionally another NUL byte and a text to
// encode. Any input must either be refused with gptrain::Error or give a Vocabulary and a
// Tokenizer that encode a fixed text (plus the input's) into ids in range that decode back to the
// same bytes, on one thread as on several. Any other exception, a sanitizer report, a leak or a
// hang is a bug. Build and run as in fuzz/CMakeLists.txt, with -dict=fuzz/vocab_files.dict and the
// corpus fuzz/corpus/vocab_files.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "tokenizer/bpe.h"
#include "tokenizer/vocab_files.h"

namespace {

namespace fs = std::filesystem;
using gptrain::fuzz::expect_clean_rejection;

constexpr std::string_view kFixedText = "Hello, world! <|endoftext|> it's 2024:\n\ttabs  and\xc3\xa9 \xff\xfe bytes";

void check_encoding(const gptrain::Tokenizer& t, const std::string& text, bool allow_special) {
  const std::vector<int32_t> ids = t.encode(text, allow_special);
  for (const int32_t id : ids) GPTRAIN_FUZZ_REQUIRE(id >= 0 && id < t.vocab_size());
  // GPT-2's byte-level BPE loses nothing: special tokens decode to their text.
  GPTRAIN_FUZZ_REQUIRE(t.decode(ids) == text);
  GPTRAIN_FUZZ_REQUIRE(t.encode_parallel(text, allow_special, 3) == ids);
  if (!allow_special)
    for (const int32_t id : ids) GPTRAIN_FUZZ_REQUIRE(!t.is_special(id));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("vocab_files");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = gptrain::fuzz::split_input(data, size, '\0', 3);
  if (parts.size() < 2) return 0;  // both files are needed
  const fs::path& dir = gptrain::fuzz::temp_dir();
  const std::string vocab = (dir / "encoder.json").string(), merges = (dir / "vocab.bpe").string();
  gptrain::fuzz::write_file(vocab, parts[0]);
  gptrain::fuzz::write_file(merges, parts[1]);

  bool loaded = false;
  try {
    const gptrain::tokenizer_detail::Vocabulary v = gptrain::tokenizer_detail::load_vocabulary(vocab, merges);
    GPTRAIN_FUZZ_REQUIRE(!v.token_bytes.empty() && v.token_bytes.size() == v.merge_rank.size());
    for (const auto& [name, id] : v.specials) {
      GPTRAIN_FUZZ_REQUIRE(id >= 0 && static_cast<size_t>(id) < v.token_bytes.size());
      GPTRAIN_FUZZ_REQUIRE(v.token_bytes[static_cast<size_t>(id)].empty() && !name.empty());
    }
    loaded = true;
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  if (!loaded) return 0;

  std::optional<gptrain::Tokenizer> t;
  try {
    t.emplace(gptrain::Tokenizer::from_files(vocab, merges));
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);  // e.g. no <|endoftext|>
  }
  if (!t) return 0;
  GPTRAIN_FUZZ_REQUIRE(t->eot_id() >= 0 && t->eot_id() < t->vocab_size());
  GPTRAIN_FUZZ_REQUIRE(t->decode_token(t->eot_id()) == "<|endoftext|>");
  std::string text(kFixedText);
  if (parts.size() > 2) text += std::string(parts[2].substr(0, 512));
  check_encoding(*t, text, false);
  check_encoding(*t, text, true);
  for (const auto& [name, id] : t->special_tokens()) GPTRAIN_FUZZ_REQUIRE(t->token_id(name) == id);
  return 0;
}
