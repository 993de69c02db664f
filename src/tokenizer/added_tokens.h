// The added tokens of a Hugging Face tokenizer (Llama 3's 256 "<|...|>" specials, Qwen3's
// "<|im_start|>", "<think>", ...): found in the text before the pre-tokenizer runs, exactly as
// tokenizers' AddedVocabulary finds them (leftmost match, the longest there, non-overlapping,
// lstrip/rstrip widening a match over white space).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/unicode_classes.h"

namespace gptrain::tokenizer_detail {

struct AddedToken {
  std::string content;  // as matched: for a `normalized` token, its content after the normalizer
  int32_t id = -1;
  bool special = false;  // special tokens are plain text when encoding without allow_special
  bool lstrip = false;   // the match takes the white space before it
  bool rstrip = false;   // ... and after it
};

// A byte trie over the tokens' contents.
class AddedTokenMatcher {
 public:
  struct Match {
    size_t begin = 0, end = 0;
    const AddedToken* token = nullptr;  // nullptr: no match
  };

  void build(std::vector<AddedToken> tokens) {
    tokens_ = std::move(tokens);
    struct Building {
      int32_t token = -1;
      std::vector<std::pair<uint8_t, uint32_t>> children;
    };
    std::vector<Building> trie(1);
    for (size_t t = 0; t < tokens_.size(); ++t) {
      uint32_t node = 0;
      for (unsigned char b : tokens_[t].content) {
        uint32_t child = 0;
        for (const auto& [byte, index] : trie[node].children)
          if (byte == b) child = index;
        if (child == 0) {
          child = static_cast<uint32_t>(trie.size());
          trie[node].children.emplace_back(b, child);
          trie.emplace_back();
        }
        node = child;
      }
      trie[node].token = static_cast<int32_t>(t);
    }
    // Flattened: each node's edges contiguous; a few hundred tokens make a few thousand nodes.
    nodes_.assign(trie.size(), Node{});
    edge_bytes_.clear();
    edge_nodes_.clear();
    for (size_t i = 0; i < trie.size(); ++i) {
      nodes_[i] = {trie[i].token, static_cast<uint32_t>(edge_bytes_.size()), static_cast<uint32_t>(trie[i].children.size())};
      for (const auto& [byte, index] : trie[i].children) {
        edge_bytes_.push_back(byte);
        edge_nodes_.push_back(index);
      }
    }
    std::memset(first_byte_, 0, sizeof(first_byte_));
    int firsts = 0;
    for (const auto& [byte, index] : trie[0].children) {
      first_byte_[byte] = true;
      only_first_byte_ = byte;
      ++firsts;
    }
    if (firsts != 1) only_first_byte_ = -1;
  }

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // The leftmost match that starts at or after `from`, the longest of those starting there.
  Match find(std::string_view text, size_t from) const {
    if (tokens_.empty()) return {};
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    for (size_t p = from; p < n; ++p) {
      if (only_first_byte_ >= 0) {  // all tokens start alike ('<'): memchr is the fast scan
        const void* hit = std::memchr(s + p, only_first_byte_, n - p);
        if (!hit) return {};
        p = static_cast<size_t>(static_cast<const uint8_t*>(hit) - s);
      } else if (!first_byte_[s[p]]) {
        continue;
      }
      uint32_t node = 0;
      int32_t longest = -1;
      size_t longest_end = 0;
      for (size_t q = p; q < n; ++q) {
        const Node& nd = nodes_[node];
        uint32_t child = 0;
        for (uint32_t e = nd.first_edge; e < nd.first_edge + nd.edges; ++e)
          if (edge_bytes_[e] == s[q]) {
            child = edge_nodes_[e];
            break;
          }
        if (child == 0) break;
        node = child;
        if (nodes_[node].token >= 0) {
          longest = nodes_[node].token;
          longest_end = q + 1;
        }
      }
      if (longest >= 0) return {p, longest_end, &tokens_[static_cast<size_t>(longest)]};
    }
    return {};
  }

 private:
  struct Node {
    int32_t token = -1;  // index into tokens_ of the token ending here, or -1
    uint32_t first_edge = 0, edges = 0;
  };
  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  std::vector<uint8_t> edge_bytes_;
  std::vector<uint32_t> edge_nodes_;
  bool first_byte_[256] = {};
  int only_first_byte_ = -1;
};

// Start of the white space that ends at `end` (Rust's char::is_whitespace, which is our kSpace:
// White_Space). `text` is valid UTF-8.
inline size_t white_space_start(std::string_view text, size_t end) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (s[start] & 0xC0) == 0x80) --start;
    if (char_info(s + start, text.size() - start).cls != kSpace) break;
    end = start;
  }
  return end;
}

inline size_t white_space_end(std::string_view text, size_t begin) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  while (begin < text.size()) {
    const CharInfo c = char_info(s + begin, text.size() - begin);
    if (c.cls != kSpace) break;
    begin += c.len;
  }
  return begin;
}

// tokenizers' AddedVocabulary::find_matches: on_text(piece) for the text between tokens and
// on_token(id) for each token, in order. Without allow_special a special token's match is skipped
// (tokenizers' encode_special_tokens): it stays in the text around it and is not searched again
// for shorter tokens. Non-special tokens (Qwen3's <think>) are found either way, as there.
template <class OnText, class OnToken>
void split_on_added_tokens(const AddedTokenMatcher& matcher, std::string_view text, bool allow_special,
                           OnText&& on_text, OnToken&& on_token) {
  size_t start_offset = 0;
  for (size_t from = 0; from < text.size();) {
    const AddedTokenMatcher::Match m = matcher.find(text, from);
    if (!m.token) break;
    from = m.end;  // the next search starts after the match itself, not after what rstrip took
    if (m.token->special && !allow_special) continue;
    size_t start = m.begin, stop = m.end;
    if (m.token->lstrip) start = std::max(white_space_start(text, start), start_offset);
    if (m.token->rstrip) stop = white_space_end(text, stop);
    if (start_offset < start) on_text(text.substr(start_offset, start - start_offset));
    on_token(m.token->id);
    start_offset = stop;
  }
  if (start_offset < text.size()) on_text(text.substr(start_offset));
}

}  // namespace gptrain::tokenizer_detail
