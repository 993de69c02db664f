// The tokenizer of a model as llama.cpp's GGUF keys (tokenizer.ggml.*), read from the tokenizer
// files gptrain reads (tokenizer.json, or GPT-2's vocab.json + merges.txt / encoder.json +
// vocab.bpe), the way convert_hf_to_gguf.py's _set_vocab_gpt2 and gguf-py's SpecialVocab write them:
//   model "gpt2" (byte-level BPE), pre from the pre-tokenizer pattern: "gpt-2", "qwen2", and for
//     Llama 3's "llama-bpe" with ignore_merges, "smaug-bpe" (the same regex, merges kept) without;
//   tokens: one per id of the model's embedding, spelled as the files spell them (GPT-2's
//     byte-to-unicode alphabet; an added token as its text); ids no token has are "[PAD<id>]";
//   token_type: 1 normal, 3 control (a special added token, or one spelled like <|...|>),
//     4 user-defined (a non-special added token: Qwen3's <think>), 5 unused (the [PAD] ids);
//   merges: "left right" in rank order;
//   bos/eos/padding ids: tokenizer_config.json's bos_token/eos_token/pad_token, else the model dir's
//     generation_config.json / config.json ids; add_bos_token when the post-processor puts a BOS
//     before the text (Llama 3), add_eos_token false; chat_template from tokenizer_config.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace gptrain::convert {

enum class GgufTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct GgufVocab {
  std::string pre;  // tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1;
  bool add_bos = false;
  std::string chat_template;  // "" when the tokenizer_config.json has none
};

// `vocab_size`: the model's embedding rows; the tokenizer may have fewer ids (padded with [PAD]),
// never more. `model_dir` supplies the fallback bos/eos/pad ids. Errors name the file and key.
GgufVocab read_gguf_vocab(const std::filesystem::path& tokenizer_dir, int64_t vocab_size,
                          const std::filesystem::path& model_dir);

// tokenizer.ggml.* (and tokenizer.chat_template) into `metadata`.
void add_vocab_metadata(io::GgufMetadata& metadata, const GgufVocab& vocab);

// GPT-2's byte-to-unicode spelling of raw token bytes ("Ġ" for the space byte), as in vocab.json.
std::string spell_token_bytes(const std::string& bytes);

}  // namespace gptrain::convert
