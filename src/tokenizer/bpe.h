// GPT-2's byte-level BPE tokenizer, token-for-token equal to tiktoken's "gpt2" encoding
// (`encode_ordinary`, or `encode(allowed_special="all")` with allow_special), and its decoder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/token_table.h"

namespace gptrain {

class Tokenizer {
 public:
  // encoder.json + vocab.bpe (OpenAI) or vocab.json + merges.txt (Hugging Face): same format.
  // Errors name the file, line and column.
  static Tokenizer from_files(const std::string& encoder_json_or_vocab_json,
                              const std::string& vocab_bpe_or_merges_txt);
  // A gpt2_tokenizer directory (encoder.json + vocab.bpe) or a Hugging Face model directory
  // (vocab.json + merges.txt).
  static Tokenizer from_dir(const std::filesystem::path& dir);

  // Token ids of `text` (bytes; UTF-8 expected). With allow_special, "<|endoftext|>" becomes
  // eot_id() (tiktoken's allowed_special); without, it is encoded as plain text. Bytes that are
  // not valid UTF-8 are encoded as tiktoken's bytes path does for text ending in them: they join
  // the piece before them and that piece is BPE-merged again; splitting restarts after them.
  // Thread-safe; each thread keeps its own cache of merged pieces.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;
  // The same ids, appended to `ids`.
  void encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& ids) const;
  // The same ids as encode(), computed by `num_threads` threads over chunks of `text` cut where
  // the pre-tokenizer is certain to split (an ASCII space character after an ASCII non-space).
  std::vector<int32_t> encode_parallel(std::string_view text, bool allow_special, int num_threads) const;

  // The bytes of the tokens, concatenated; they may split a UTF-8 character (see
  // utf8_lossy() for display). An id outside [0, vocab_size()) is an error.
  std::string decode(std::span<const int32_t> ids) const;
  std::string decode_token(int32_t id) const;
  // The id of a token given by its bytes (or a special token's name), or -1.
  int32_t token_id(std::string_view bytes) const;

  int32_t eot_id() const { return eot_id_; }
  // The special tokens (name, id), which encode() recognises with allow_special.
  const std::vector<std::pair<std::string, int32_t>>& special_tokens() const { return specials_; }
  int64_t vocab_size() const { return static_cast<int64_t>(decoded_.size()); }

 private:
  struct Cache;
  Tokenizer() = default;
  void encode_ordinary(const uint8_t* text, size_t n, std::vector<int32_t>& ids, Cache& cache) const;
  void encode_piece(const uint8_t* piece, size_t n, std::vector<int32_t>& ids, Cache& cache) const;
  // A piece of n >= 2 bytes that is no token (h == hash_bytes(piece, n)): from the cache or merged.
  void encode_rare_piece(const uint8_t* piece, size_t n, uint64_t h, std::vector<int32_t>& ids, Cache& cache) const;
  void byte_pair_merge(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  void byte_pair_merge_large(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  uint32_t rank_of(const uint8_t* bytes, size_t n) const;
  Cache& thread_cache() const;

  tokenizer_detail::TokenTable table_;       // bytes -> id, special tokens left out
  std::vector<uint32_t> merge_rank_;         // [V] merge priority of each token (see Vocabulary)
  std::vector<int32_t> pair_id_;             // [256 * 256] id of each two-byte token, or -1
  std::vector<std::string> decoded_;         // [V] bytes of each token; a special's name
  std::vector<bool> all_space_;              // [V] token is only ' ', '\n', '\t' (tiktoken's test)
  int32_t byte_id_[256] = {};                // id of each single-byte token
  std::vector<std::pair<std::string, int32_t>> specials_;
  int32_t eot_id_ = -1;
  uint64_t instance_ = 0;                    // tells thread caches of different tokenizers apart
};

// `bytes` with each maximal invalid UTF-8 subsequence replaced by U+FFFD, as Python's
// bytes.decode("utf-8", errors="replace") and so tiktoken's decode() do.
std::string utf8_lossy(std::string_view bytes);

}  // namespace gptrain
