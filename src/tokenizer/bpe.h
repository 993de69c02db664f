// Byte-level BPE tokenizers and their decoder: GPT-2's from its vocabulary files, token-for-token
// equal to tiktoken's "gpt2" encoding (`encode_ordinary`, or `encode(allowed_special="all")` with
// allow_special); and a Hugging Face tokenizer.json (Llama 3, Qwen2/Qwen3, GPT-2), token-for-token
// equal to tokenizers' `encode(text, add_special_tokens=False)`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/token_table.h"

namespace gptrain {

class Tokenizer {
 public:
  // encoder.json + vocab.bpe (OpenAI) or vocab.json + merges.txt (Hugging Face): same format.
  // Errors name the file, line and column.
  static Tokenizer from_files(const std::string& encoder_json_or_vocab_json,
                              const std::string& vocab_bpe_or_merges_txt);
  // A Hugging Face tokenizer.json: byte-level BPE (vocab, merges in either spelling,
  // ignore_merges) with the GPT-2, Llama 3 or Qwen2 pre-tokenizer, no normalizer or NFC, added
  // tokens (special or not; lstrip, rstrip, normalized), a ByteLevel decoder and a post-processor
  // that puts at most a BOS before the text. Anything else is an error naming the file, the field
  // and its value. eot_id() is the eos_token of the tokenizer_config.json next to the file.
  static Tokenizer from_tokenizer_json(const std::filesystem::path& path);
  // The tokenizer of a directory: its tokenizer.json when it has one, else a gpt2_tokenizer
  // directory (encoder.json + vocab.bpe) or a Hugging Face GPT-2 model directory (vocab.json +
  // merges.txt).
  static Tokenizer from_dir(const std::filesystem::path& dir);

  // Token ids of `text` (bytes; UTF-8 expected).
  // GPT-2's files: with allow_special, "<|endoftext|>" becomes eot_id() (tiktoken's allowed_special);
  // without, it is encoded as plain text. Bytes that are not valid UTF-8 are encoded as tiktoken's
  // bytes path does for text ending in them: they join the piece before them and that piece is
  // BPE-merged again; splitting restarts after them.
  // tokenizer.json: tokenizers' encode(text, add_special_tokens=False), so no BOS (see bos_id()).
  // With allow_special (tokenizers' default) special added tokens written in the text become their
  // ids; without (encode_special_tokens=True) they are plain text. Non-special added tokens (Qwen3's
  // <think>) become their ids either way, as in tokenizers. tokenizers takes only valid UTF-8, so
  // text that is not is first decoded as Python's bytes.decode("utf-8", errors="replace") does
  // (utf8_lossy()): callers that must not lose bytes check first_invalid_utf8() and warn.
  // Thread-safe; each thread keeps its own cache of merged pieces.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = false) const;
  // The same ids, appended to `ids`.
  void encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& ids) const;
  // The same ids as encode(), computed by `num_threads` threads over chunks of `text` cut where
  // the pre-tokenizer is certain to split (an ASCII space character after an ASCII non-space; for
  // Llama 3 and Qwen2 U+0020 after one). A tokenizer.json whose added tokens hold a space or take
  // the white space after them (rstrip) is encoded on one thread: no cut is certain there.
  std::vector<int32_t> encode_parallel(std::string_view text, bool allow_special, int num_threads) const;

  // The bytes of the tokens, concatenated; they may split a UTF-8 character (see
  // utf8_lossy() for display). Added and special tokens decode to their text. An id outside
  // [0, vocab_size()) or one no token has is an error.
  std::string decode(std::span<const int32_t> ids) const;
  std::string decode_token(int32_t id) const;
  // The id of a token given by its bytes (or an added or special token's text), or -1.
  int32_t token_id(std::string_view bytes) const;

  // GPT-2's files: <|endoftext|>. tokenizer.json: the eos_token of the tokenizer_config.json next
  // to it (Qwen3: <|im_end|>; Llama 3.2: <|end_of_text|>); without that file, <|endoftext|> for a
  // GPT-2 tokenizer.json and -1 for others.
  int32_t eot_id() const { return eot_id_; }
  // The token tokenizers' post-processor puts before a text (add_special_tokens=True), which
  // encode() leaves out: Llama 3.2's <|begin_of_text|>. -1 when the post-processor adds none (GPT-2,
  // Qwen3, the first Llama 3 tokenizer.json).
  int32_t bos_id() const { return bos_id_; }
  // Largest id + 1, added tokens included (Llama 3: 128256; Qwen3: 151669).
  int64_t vocab_size() const { return static_cast<int64_t>(decoded_.size()); }
  // The special tokens (text, id): GPT-2's <|endoftext|>; a tokenizer.json's added tokens marked
  // special (not Qwen3's <think>, <tool_call>, ..., which are added but not special).
  const std::vector<std::pair<std::string, int32_t>>& special_tokens() const { return specials_; }
  bool is_special(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < special_flag_.size() && special_flag_[static_cast<size_t>(id)];
  }
  // True for a tokenizer.json: invalid UTF-8 is replaced by U+FFFD before encoding (see encode()).
  // GPT-2's files encode every byte.
  bool replaces_invalid_utf8() const { return hf_; }

 private:
  struct Cache;
  Tokenizer() = default;
  void encode_ordinary(const uint8_t* text, size_t n, std::vector<int32_t>& ids, Cache& cache) const;
  // encode_ordinary() with the pre-tokenizer `split(text, n, on_piece, on_invalid)`.
  template <class Split>
  void encode_split(const uint8_t* text, size_t n, std::vector<int32_t>& ids, Cache& cache, Split split) const;
  void encode_hugging_face(std::string_view text, bool allow_special, std::vector<int32_t>& ids, Cache& cache) const;
  void encode_piece(const uint8_t* piece, size_t n, std::vector<int32_t>& ids, Cache& cache) const;
  // A piece of n >= 2 bytes that is no token (h == hash_bytes(piece, n)): from the cache or merged.
  void encode_rare_piece(const uint8_t* piece, size_t n, uint64_t h, std::vector<int32_t>& ids, Cache& cache) const;
  void byte_pair_merge(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  void byte_pair_merge_large(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  // Hugging Face's BPE (tokenizer.json): merges by the rank of the pair in the merges list.
  void merge_pairs(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  void merge_pairs_large(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const;
  uint32_t rank_of(const uint8_t* bytes, size_t n) const;
  Cache& thread_cache() const;

  // A piece found here is emitted as this one token. GPT-2's files and ignore_merges: every token;
  // otherwise the tokens that merging their own bytes gives back (the others are in rest_table_).
  tokenizer_detail::TokenTable table_;       // bytes -> id, special tokens left out
  tokenizer_detail::TokenTable rest_table_;  // tokenizer.json without ignore_merges: the other tokens
  std::vector<uint32_t> merge_rank_;         // [V] merge priority of each token (see Vocabulary)
  std::vector<int32_t> pair_id_;             // [256 * 256] id of each two-byte token, or -1
  std::vector<std::string> decoded_;         // [V] bytes of each token; an added token's text
  std::vector<bool> all_space_;              // [V] token is only ' ', '\n', '\t' (tiktoken's test)
  int32_t byte_id_[256] = {};                // id of each single-byte token
  std::vector<std::pair<std::string, int32_t>> specials_;
  std::vector<uint8_t> special_flag_;        // [V] 1 for the ids in specials_
  int32_t eot_id_ = -1;
  int32_t bos_id_ = -1;
  uint64_t instance_ = 0;                    // tells thread caches of different tokenizers apart

  // tokenizer.json only.
  bool hf_ = false;
  tokenizer_detail::Pattern pattern_ = tokenizer_detail::Pattern::kGpt2;
  bool nfc_ = false;
  bool parallel_cuts_ = true;                         // encode_parallel may cut the text
  tokenizer_detail::PairTable pairs_;                 // (left, right) -> rank, merged id
  std::vector<tokenizer_detail::PairTable::Entry> byte_pairs_;  // [256 * 256] the same for two bytes
  tokenizer_detail::AddedTokenMatcher added_;         // matched in the original text
  tokenizer_detail::AddedTokenMatcher added_normalized_;  // matched after the normalizer
  std::vector<std::pair<std::string, int32_t>> added_tokens_;  // every added token, for token_id()
};

// `bytes` with each maximal invalid UTF-8 subsequence replaced by U+FFFD, as Python's
// bytes.decode("utf-8", errors="replace") and so tiktoken's decode() do.
std::string utf8_lossy(std::string_view bytes);

// The offset of the first byte of `bytes` that starts no valid UTF-8 character (strict, as
// utf8_lossy() decodes), or std::string_view::npos when all of it is valid.
size_t first_invalid_utf8(std::string_view bytes);

}  // namespace gptrain
