// libFuzzer target for a Hugging Face tokenizer.json (tokenizer/tokenizer_json.h,
// Tokenizer::from_tokenizer_json) and the tokenizer_config.json beside it: the input is
// tokenizer.json, optionally followed by a NUL byte and tokenizer_config.json, and another NUL
// byte and a text to encode. Any input must either be refused with gptrain::Error or give a
// Tokenizer whose ids (a fixed text plus the input's) are in range, decode without error, and are
// the same on one thread as on several; the BOS and end-of-text ids must be tokens. Without NFC or
// whitespace-taking added tokens, valid UTF-8 must decode back to itself. Any other exception, a
// sanitizer report, a leak or a hang is a bug. Build and run as in fuzz/CMakeLists.txt, with
// -dict=fuzz/tokenizer_json.dict and the corpus fuzz/corpus/tokenizer_json.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer_json.h"

namespace {

namespace fs = std::filesystem;
using gptrain::fuzz::expect_clean_rejection;

constexpr std::string_view kFixedText =
    "Hello, world! <|endoftext|><think> it's 2024:\n\ttabs  and caf\xc3\xa9 cafe\xcc\x81 \xff\xfe bytes \xe4\xbd\xa0";

void check_encoding(const gptrain::Tokenizer& t, const std::string& text, bool allow_special, bool lossless) {
  const std::vector<int32_t> ids = t.encode(text, allow_special);
  for (const int32_t id : ids) GPTRAIN_FUZZ_REQUIRE(id >= 0 && id < t.vocab_size());
  const std::string decoded = t.decode(ids);  // every id the encoder gives is a token
  if (lossless) GPTRAIN_FUZZ_REQUIRE(decoded == text);
  GPTRAIN_FUZZ_REQUIRE(t.encode_parallel(text, allow_special, 3) == ids);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gptrain::fuzz::temp_dir("tokenizer_json");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = gptrain::fuzz::split_input(data, size, '\0', 3);
  const fs::path& dir = gptrain::fuzz::temp_dir();
  const fs::path json = dir / "tokenizer.json", config = dir / "tokenizer_config.json";
  gptrain::fuzz::write_file(json, parts[0]);
  if (parts.size() > 1 && !parts[1].empty())
    gptrain::fuzz::write_file(config, parts[1]);
  else
    gptrain::fuzz::remove_file(config);

  std::optional<gptrain::tokenizer_detail::TokenizerJson> spec;
  try {
    spec = gptrain::tokenizer_detail::read_tokenizer_json(json.string());
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);
  }
  if (parts.size() > 1 && !parts[1].empty()) {
    try {
      (void)gptrain::tokenizer_detail::read_config_eos_token(config.string());
    } catch (const gptrain::Error& e) {
      expect_clean_rejection(e);
    }
  }
  if (!spec) return 0;
  for (const auto& m : spec->merges) {
    const auto n = static_cast<int32_t>(spec->token_bytes.size());
    GPTRAIN_FUZZ_REQUIRE(m.left >= 0 && m.left < n && m.right >= 0 && m.right < n && m.merged >= 0 && m.merged < n);
  }
  for (const auto& a : spec->added) GPTRAIN_FUZZ_REQUIRE(a.token.id >= 0 && !a.token.content.empty());

  std::optional<gptrain::Tokenizer> t;
  try {
    t.emplace(gptrain::Tokenizer::from_tokenizer_json(json));
  } catch (const gptrain::Error& e) {
    expect_clean_rejection(e);  // e.g. tokenizer_config.json's eos_token is no token
  }
  if (!t) return 0;
  GPTRAIN_FUZZ_REQUIRE(t->bos_id() >= -1 && t->bos_id() < t->vocab_size());
  GPTRAIN_FUZZ_REQUIRE(t->eot_id() >= -1 && t->eot_id() < t->vocab_size());
  if (t->bos_id() >= 0) (void)t->decode_token(t->bos_id());  // the BOS callers prepend must be a token
  if (t->eot_id() >= 0) (void)t->decode_token(t->eot_id());
  for (const auto& [name, id] : t->special_tokens()) {
    GPTRAIN_FUZZ_REQUIRE(t->is_special(id));
    GPTRAIN_FUZZ_REQUIRE(t->decode_token(id) == name);
  }

  bool lossless = !spec->nfc;
  for (const auto& a : spec->added) {
    lossless = lossless && !a.token.lstrip && !a.token.rstrip;
    // An added token over a vocabulary id decodes to its content, as in tokenizers, whatever the
    // vocabulary spelled there.
    const auto id = static_cast<size_t>(a.token.id);
    if (id < spec->token_bytes.size() && !spec->token_bytes[id].empty() && spec->token_bytes[id] != a.token.content)
      lossless = false;
  }
  std::string text(kFixedText);
  if (parts.size() > 2) text += std::string(parts[2].substr(0, 512));
  check_encoding(*t, text, false, false);
  check_encoding(*t, text, true, false);
  const std::string clean = gptrain::utf8_lossy(text);
  check_encoding(*t, clean, false, lossless);
  check_encoding(*t, clean, true, lossless);
  return 0;
}
