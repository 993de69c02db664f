// Reading a Hugging Face tokenizer.json (and the eos_token of the tokenizer_config.json next to it)
// into what the Tokenizer needs. gptrain knows byte-level BPE with the GPT-2, Llama 3 or Qwen2
// pre-tokenizer, no normalizer or NFC, added tokens, and a post-processor that at most puts one
// token (the BOS) before the text; anything else is an error naming the file, the field and the
// value, never a silent difference from tokenizers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/pretokenizer.h"

namespace gptrain::tokenizer_detail {

struct TokenizerJson {
  // token_bytes[id]: the bytes of the BPE model's token id (model.vocab, ids 0..V-1); empty for an
  // id the vocabulary does not have.
  std::vector<std::string> token_bytes;
  struct Merge {
    int32_t left, right, merged;
  };
  std::vector<Merge> merges;  // model.merges in file order: the position is the pair's rank
  bool ignore_merges = false;  // model.ignore_merges: a piece that is a token is not merged
  Pattern pattern = Pattern::kGpt2;
  bool nfc = false;  // normalizer NFC
  struct Added {
    AddedToken token;
    bool normalized = false;  // matched in the normalized text (after NFC), not the original
  };
  std::vector<Added> added;  // added_tokens, in file order
  int32_t bos_id = -1;       // the token the post-processor puts before a single text, or -1
};

// Errors name `path`, the field (e.g. "pre_tokenizer.pretokenizers[0].pattern.Regex") and its
// line and column; malformed JSON names the line and column.
TokenizerJson read_tokenizer_json(const std::string& path);

// The content of `eos_token` in a tokenizer_config.json (a string or an object with "content"),
// or "" when it has none.
std::string read_config_eos_token(const std::string& path);

}  // namespace gptrain::tokenizer_detail
