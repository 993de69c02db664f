// Reading GPT-2's vocabulary files: OpenAI's encoder.json + vocab.bpe and Hugging Face's
// vocab.json + merges.txt (the same content under other names). Tokens in these files are
// spelled in GPT-2's byte-to-unicode alphabet ("Ġ" is the space byte); here they become bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gptrain::tokenizer_detail {

struct Vocabulary {
  // token_bytes[id]: the bytes of token id; empty for special tokens, which are in `specials`.
  std::vector<std::string> token_bytes;
  // merge_rank[id]: the position in the merges file of the first merge that produces token id
  // (lower merges first), or UINT32_MAX for single bytes, special tokens and tokens no merge makes.
  std::vector<uint32_t> merge_rank;
  std::vector<std::pair<std::string, int32_t>> specials;  // e.g. {"<|endoftext|>", 50256}
};

// GPT-2's bytes_to_unicode(): the code point that stands for each byte in the files.
uint32_t byte_to_unicode(uint8_t byte);

// A token as spelled in the files (UTF-8 over the byte alphabet) to its bytes; false if a
// character stands for no byte. `bad` gets the offending code point.
bool spelled_to_bytes(std::string_view spelled, std::string& bytes, uint32_t& bad);

// Reads both files (errors name the file, the line and column, and what was expected).
// Special tokens are the vocabulary entries spelled like "<|...|>" that no merge produces.
Vocabulary load_vocabulary(const std::string& vocab_path, const std::string& merges_path);

}  // namespace gptrain::tokenizer_detail
