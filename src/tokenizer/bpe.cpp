// Byte-level BPE over the pieces of the pre-tokenizer. GPT-2's files use the merge order of
// tiktoken's byte_pair_merge: repeatedly merge the adjacent pair whose concatenation is the
// lowest-ranked token, the leftmost on ties; a piece that is already a token is emitted without
// merging. A tokenizer.json uses tokenizers' order: the adjacent pair listed first in the merges,
// the leftmost on ties; only listed pairs merge, and a piece that is a token skips merging only
// with ignore_merges (or when merging gives that token anyway). On the Llama 3 and Qwen3
// vocabularies both orders give the same tokens on everything we tried (every token, the data
// dir's 265k distinct pieces, 600k random concatenations of short tokens); the tokenizer.json path
// implements tokenizers' order anyway, since the two can differ on a vocabulary built otherwise.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <queue>
#include <thread>

#include "tokenizer/nfc.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/vocab_files.h"
#include "util/error.h"

namespace gptrain {

using tokenizer_detail::hash_bytes;
using tokenizer_detail::TokenTable;

namespace {

constexpr uint32_t kNoRank = UINT32_MAX;
// tiktoken switches to its heap-based merge at 100 bytes; both give the same tokens, the heap is
// O(n log n) instead of O(n^2) for long pieces such as a run of 10,000 spaces.
constexpr size_t kLargePiece = 100;

std::atomic<uint64_t> next_instance{1};

}  // namespace

// Merged pieces that are not a single token, per thread: rare words recur, and merging costs
// about ten times a lookup. Owned by one tokenizer instance at a time; emptied when full or when
// another instance uses it, in O(1): a slot counts only if it carries the current epoch.
struct Tokenizer::Cache {
  static constexpr size_t kSlots = size_t{1} << 16;
  static constexpr size_t kMaxEntries = kSlots / 2;
  static constexpr size_t kMaxPiece = 255;  // longer pieces (runs of spaces, digits) are not kept
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, ids_offset = 0;  // into keys and ids
    uint16_t key_size = 0, ids_size = 0;
    uint32_t epoch = 0;                       // 0 = never used
  };
  uint64_t owner = 0;
  uint32_t epoch = 0;
  size_t entries = 0;
  std::vector<Slot> slots;
  std::string keys;
  std::vector<int32_t> ids;

  void prefetch(uint64_t h) const { __builtin_prefetch(&slots[h & (kSlots - 1)]); }
  void reset(uint64_t new_owner) {
    if (slots.empty() || ++epoch == 0) {  // first use, or the epoch wrapped: clear for real
      slots.assign(kSlots, Slot{});
      epoch = 1;
    }
    owner = new_owner;
    entries = 0;
    keys.clear();
    ids.clear();
  }
};

Tokenizer::Cache& Tokenizer::thread_cache() const {
  thread_local Cache cache;
  if (cache.owner != instance_) cache.reset(instance_);
  return cache;
}

Tokenizer Tokenizer::from_files(const std::string& vocab_path, const std::string& merges_path) {
  tokenizer_detail::Vocabulary vocab = tokenizer_detail::load_vocabulary(vocab_path, merges_path);
  Tokenizer t;
  t.instance_ = next_instance.fetch_add(1);
  t.table_.build(vocab.token_bytes);
  t.merge_rank_ = std::move(vocab.merge_rank);
  t.specials_ = std::move(vocab.specials);
  t.decoded_ = std::move(vocab.token_bytes);
  t.special_flag_.assign(t.decoded_.size(), 0);
  for (const auto& [name, id] : t.specials_) {
    t.decoded_[id] = name;
    t.special_flag_[id] = 1;
    if (name == "<|endoftext|>") t.eot_id_ = id;
  }
  if (t.eot_id_ < 0)
    fail("{}: no <|endoftext|> token; GPT-2's vocabulary has it as id 50256", vocab_path);
  t.all_space_.resize(t.decoded_.size());
  for (size_t id = 0; id < t.decoded_.size(); ++id) {
    const std::string& b = t.decoded_[id];
    t.all_space_[id] = !b.empty() && b.find_first_not_of(" \n\t") == std::string::npos;
  }
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    t.byte_id_[b] = t.table_.find(&byte, 1);  // load_vocabulary checked that all 256 exist
  }
  t.pair_id_.assign(256 * 256, -1);
  for (int pair = 0; pair < 256 * 256; ++pair) {
    const uint8_t bytes[2] = {static_cast<uint8_t>(pair >> 8), static_cast<uint8_t>(pair & 255)};
    t.pair_id_[pair] = t.table_.find(bytes, 2);
  }
  return t;
}

Tokenizer Tokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  using tokenizer_detail::TokenizerJson;
  TokenizerJson spec = tokenizer_detail::read_tokenizer_json(path.string());
  Tokenizer t;
  t.instance_ = next_instance.fetch_add(1);
  t.hf_ = true;
  t.pattern_ = spec.pattern;
  t.nfc_ = spec.nfc;
  t.bos_id_ = spec.bos_id;
  size_t size = spec.token_bytes.size();
  for (const TokenizerJson::Added& a : spec.added) size = std::max(size, static_cast<size_t>(a.token.id) + 1);
  t.decoded_ = spec.token_bytes;
  t.decoded_.resize(size);

  tokenizer_detail::TokenTable all;  // every token of the model
  all.build(spec.token_bytes);
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    t.byte_id_[b] = all.find(&byte, 1);  // read_tokenizer_json checked that all 256 exist
  }
  t.pairs_.reserve(spec.merges.size());
  for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const TokenizerJson::Merge& m = spec.merges[rank];
    t.pairs_.insert(m.left, m.right, static_cast<uint32_t>(rank), m.merged);
  }
  t.byte_pairs_.resize(256 * 256);
  for (int pair = 0; pair < 256 * 256; ++pair) t.byte_pairs_[pair] = t.pairs_.find(t.byte_id_[pair >> 8], t.byte_id_[pair & 255]);
  if (spec.ignore_merges) {
    t.table_ = std::move(all);
  } else {
    // Without ignore_merges every piece is merged; a piece that is a token whose own bytes merge
    // back into it can skip that (most do; 588 of the Llama 3 vocabulary's 128000 do not, e.g. " Việt").
    std::vector<std::string> direct = spec.token_bytes, rest(spec.token_bytes.size());
    std::vector<int32_t> merged;
    for (size_t id = 0; id < direct.size(); ++id) {
      const std::string& bytes = spec.token_bytes[id];
      if (bytes.size() < 2) continue;
      merged.clear();
      t.merge_pairs(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), merged);
      if (merged.size() == 1 && merged[0] == static_cast<int32_t>(id)) continue;
      rest[id] = std::move(direct[id]);
      direct[id].clear();
    }
    t.table_.build(direct);
    t.rest_table_.build(rest);
  }

  std::vector<tokenizer_detail::AddedToken> raw, normalized;
  t.special_flag_.assign(size, 0);
  for (TokenizerJson::Added& a : spec.added) {
    tokenizer_detail::AddedToken& token = a.token;
    t.decoded_[token.id] = token.content;  // tokenizers decodes an added token to its text
    t.added_tokens_.emplace_back(token.content, token.id);
    if (token.special) {
      t.specials_.emplace_back(token.content, token.id);
      t.special_flag_[token.id] = 1;
    }
    // A cut of encode_parallel must not fall inside a token or in white space a token takes.
    if (token.rstrip || token.content.find_first_of(" \t\n\r\v\f") != std::string::npos) t.parallel_cuts_ = false;
    if (a.normalized && t.nfc_) {
      std::string content;
      tokenizer_detail::append_nfc(token.content, content);
      token.content = std::move(content);
    }
    (a.normalized ? normalized : raw).push_back(std::move(token));
  }
  t.added_.build(std::move(raw));
  t.added_normalized_.build(std::move(normalized));

  t.all_space_.resize(t.decoded_.size());
  for (size_t id = 0; id < t.decoded_.size(); ++id) {
    const std::string& b = t.decoded_[id];
    t.all_space_[id] = !b.empty() && b.find_first_not_of(" \n\t") == std::string::npos;
  }
  const std::filesystem::path config = path.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(config, ec)) {
    const std::string eos = tokenizer_detail::read_config_eos_token(config.string());
    if (!eos.empty()) {
      t.eot_id_ = t.token_id(eos);
      if (t.eot_id_ < 0)
        fail("{}: eos_token \"{}\" is not a token of {}; the two files must come from the same model", config.string(),
             eos, path.string());
    }
  } else if (t.pattern_ == tokenizer_detail::Pattern::kGpt2) {
    t.eot_id_ = t.token_id("<|endoftext|>");
  }
  return t;
}

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(dir / "tokenizer.json", ec)) return from_tokenizer_json(dir / "tokenizer.json");
  if (fs::is_regular_file(dir / "encoder.json", ec) && fs::is_regular_file(dir / "vocab.bpe", ec))
    return from_files((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
  if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
    return from_files((dir / "vocab.json").string(), (dir / "merges.txt").string());
  fail("{}: no tokenizer files; looked for tokenizer.json (Hugging Face), encoder.json + vocab.bpe (OpenAI GPT-2) "
       "and vocab.json + merges.txt (a Hugging Face GPT-2 model directory)", dir.string());
}

uint32_t Tokenizer::rank_of(const uint8_t* bytes, size_t n) const {
  const int32_t id = table_.find(bytes, n);
  return id < 0 ? kNoRank : merge_rank_[id];
}

int32_t Tokenizer::token_id(std::string_view bytes) const {
  for (const auto& [name, id] : specials_)
    if (bytes == name) return id;
  for (const auto& [name, id] : added_tokens_)
    if (bytes == name) return id;
  if (bytes.empty()) return -1;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const int32_t id = table_.find(p, bytes.size());
  return id >= 0 || rest_table_.empty() ? id : rest_table_.find(p, bytes.size());  // empty with ignore_merges
}

// tiktoken's _byte_pair_merge, for pieces under kLargePiece bytes. parts[k] is part k's start
// and token, and the rank and token of merging it with part k + 1; n + 1 entries, the last a
// sentinel. Keeping the tokens saves looking the final parts up again.
void Tokenizer::byte_pair_merge(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const {
  struct Part {
    uint32_t start, rank;
    int32_t id, merged_id;
  };
  Part parts[kLargePiece + 1];
  size_t count = n + 1;
  uint32_t min_rank = kNoRank;
  size_t min_index = 0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t merged = i + 1 < n ? pair_id_[(piece[i] << 8) | piece[i + 1]] : -1;
    const uint32_t rank = merged < 0 ? kNoRank : merge_rank_[merged];
    if (rank < min_rank) {
      min_rank = rank;
      min_index = i;
    }
    parts[i] = {static_cast<uint32_t>(i), rank, byte_id_[piece[i]], merged};
  }
  parts[n] = {static_cast<uint32_t>(n), kNoRank, -1, -1};
  // Merging part i with i + 1 once i + 1 has absorbed i + 2 (computed before the removal).
  auto update = [&](size_t i) {
    Part& p = parts[i];
    p.merged_id = i + 3 < count ? table_.find(piece + p.start, parts[i + 3].start - p.start) : -1;
    p.rank = p.merged_id < 0 ? kNoRank : merge_rank_[p.merged_id];
  };
  while (min_rank != kNoRank) {
    const size_t i = min_index;
    parts[i].id = parts[i].merged_id;
    if (i > 0) update(i - 1);
    update(i);
    std::copy(parts + i + 2, parts + count, parts + i + 1);
    --count;
    min_rank = kNoRank;
    for (size_t k = 0; k + 1 < count; ++k)
      if (parts[k].rank < min_rank) {
        min_rank = parts[k].rank;
        min_index = k;
      }
  }
  for (size_t k = 0; k + 1 < count; ++k) ids.push_back(parts[k].id);
}

// The same merges with a heap of (rank, start) and a linked list of parts: the lowest rank, then
// the leftmost start, is what the linear scan above picks. Stale heap entries are skipped.
void Tokenizer::byte_pair_merge_large(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const {
  if (n >= UINT32_MAX) fail("a single piece of {} bytes (one run of spaces, digits, ...) is over 4 GB; split the text", n);
  std::vector<uint32_t> next(n), prev(n), rank(n, kNoRank);  // indexed by a part's start byte
  using Entry = std::pair<uint32_t, uint32_t>;              // (rank, start)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (size_t i = 0; i < n; ++i) {
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i - 1);  // wraps for i == 0; never read there
    if (i + 1 < n) {
      const int32_t merged = pair_id_[(piece[i] << 8) | piece[i + 1]];
      rank[i] = merged < 0 ? kNoRank : merge_rank_[merged];
      if (rank[i] != kNoRank) heap.emplace(rank[i], static_cast<uint32_t>(i));
    }
  }
  auto update = [&](uint32_t start) {  // new rank of merging the part at start with its successor
    const uint32_t right = next[start];
    rank[start] = right < n ? rank_of(piece + start, next[right] - start) : kNoRank;
    if (rank[start] != kNoRank) heap.emplace(rank[start], start);
  };
  while (!heap.empty()) {
    const auto [r, start] = heap.top();
    heap.pop();
    if (rank[start] != r) continue;  // stale: this part merged with something else since
    const uint32_t right = next[start];
    next[start] = next[right];
    if (next[right] < n) prev[next[right]] = start;
    rank[right] = kNoRank;
    update(start);
    if (start > 0) update(prev[start]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) ids.push_back(table_.find(piece + i, next[i] - i));
}

// tokenizers' Word::merge_all for pieces under kLargePiece bytes: repeatedly merge the adjacent
// pair of lowest rank in the merges list, the leftmost on ties. parts[k] is part k's token and
// the rank and result of merging it with part k + 1.
void Tokenizer::merge_pairs(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const {
  if (n >= kLargePiece) {
    merge_pairs_large(piece, n, ids);
    return;
  }
  struct Part {
    uint32_t rank;
    int32_t id, merged;
  };
  Part parts[kLargePiece];
  for (size_t i = 0; i < n; ++i) {
    const tokenizer_detail::PairTable::Entry e =
        i + 1 < n ? byte_pairs_[(piece[i] << 8) | piece[i + 1]] : tokenizer_detail::PairTable::Entry{};
    parts[i] = {e.rank, byte_id_[piece[i]], e.merged};
  }
  size_t count = n;
  auto relink = [&](size_t i) {
    const tokenizer_detail::PairTable::Entry e =
        i + 1 < count ? pairs_.find(parts[i].id, parts[i + 1].id) : tokenizer_detail::PairTable::Entry{};
    parts[i].rank = e.rank;
    parts[i].merged = e.merged;
  };
  for (;;) {
    uint32_t min_rank = kNoRank;
    size_t k = 0;
    for (size_t i = 0; i + 1 < count; ++i)
      if (parts[i].rank < min_rank) {
        min_rank = parts[i].rank;
        k = i;
      }
    if (min_rank == kNoRank) break;
    parts[k].id = parts[k].merged;
    std::copy(parts + k + 2, parts + count, parts + k + 1);
    --count;
    relink(k);
    if (k > 0) relink(k - 1);
  }
  for (size_t k = 0; k < count; ++k) ids.push_back(parts[k].id);
}

// The same with a heap of (rank, start) and a linked list of parts, as tokenizers' own heap.
void Tokenizer::merge_pairs_large(const uint8_t* piece, size_t n, std::vector<int32_t>& ids) const {
  if (n >= UINT32_MAX) fail("a single piece of {} bytes (one run of spaces, digits, ...) is over 4 GB; split the text", n);
  std::vector<uint32_t> next(n), prev(n), rank(n, kNoRank);  // indexed by a part's start byte
  std::vector<int32_t> id(n), merged(n, -1);
  using Entry = std::pair<uint32_t, uint32_t>;  // (rank, start)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (size_t i = 0; i < n; ++i) {
    next[i] = static_cast<uint32_t>(i + 1);
    prev[i] = static_cast<uint32_t>(i - 1);  // wraps for i == 0; never read there
    id[i] = byte_id_[piece[i]];
    if (i + 1 < n) {
      const tokenizer_detail::PairTable::Entry e = byte_pairs_[(piece[i] << 8) | piece[i + 1]];
      rank[i] = e.rank;
      merged[i] = e.merged;
      if (rank[i] != kNoRank) heap.emplace(rank[i], static_cast<uint32_t>(i));
    }
  }
  auto update = [&](uint32_t start) {  // the pair of the part at start with its successor
    const uint32_t right = next[start];
    const tokenizer_detail::PairTable::Entry e =
        right < n ? pairs_.find(id[start], id[right]) : tokenizer_detail::PairTable::Entry{};
    rank[start] = e.rank;
    merged[start] = e.merged;
    if (rank[start] != kNoRank) heap.emplace(rank[start], start);
  };
  while (!heap.empty()) {
    const auto [r, start] = heap.top();
    heap.pop();
    if (rank[start] != r) continue;  // stale: a rank names one pair, so an equal rank is still valid
    const uint32_t right = next[start];
    id[start] = merged[start];
    next[start] = next[right];
    if (next[right] < n) prev[next[right]] = start;
    rank[right] = kNoRank;
    update(start);
    if (start > 0) update(prev[start]);
  }
  for (uint32_t i = 0; i < n; i = next[i]) ids.push_back(id[i]);
}

void Tokenizer::encode_piece(const uint8_t* piece, size_t n, std::vector<int32_t>& ids, Cache& cache) const {
  if (n == 1) {
    ids.push_back(byte_id_[piece[0]]);
    return;
  }
  const uint64_t head = tokenizer_detail::head_bytes(piece, n);
  const uint64_t h = hash_bytes(piece, n, head);
  const int32_t id = table_.find(piece, n, head, h);
  if (id >= 0) ids.push_back(id);
  else encode_rare_piece(piece, n, h, ids, cache);
}

void Tokenizer::encode_rare_piece(const uint8_t* piece, size_t n, uint64_t h, std::vector<int32_t>& ids,
                                  Cache& cache) const {
  const size_t mask = Cache::kSlots - 1;
  size_t slot = h & mask;
  for (;; slot = (slot + 1) & mask) {
    const Cache::Slot& s = cache.slots[slot];
    if (s.epoch != cache.epoch) break;
    if (s.hash == h && s.key_size == n && std::memcmp(cache.keys.data() + s.key_offset, piece, n) == 0) {
      ids.insert(ids.end(), cache.ids.begin() + s.ids_offset, cache.ids.begin() + s.ids_offset + s.ids_size);
      return;
    }
  }
  const size_t first = ids.size();
  if (hf_) merge_pairs(piece, n, ids);
  else if (n < kLargePiece) byte_pair_merge(piece, n, ids);
  else byte_pair_merge_large(piece, n, ids);
  if (n > Cache::kMaxPiece) return;
  if (cache.entries >= Cache::kMaxEntries) {
    cache.reset(cache.owner);
    slot = h & mask;
  }
  cache.slots[slot] = {h, static_cast<uint32_t>(cache.keys.size()), static_cast<uint32_t>(cache.ids.size()),
                       static_cast<uint16_t>(n), static_cast<uint16_t>(ids.size() - first), cache.epoch};
  cache.keys.append(reinterpret_cast<const char*>(piece), n);
  cache.ids.insert(cache.ids.end(), ids.begin() + first, ids.end());
  ++cache.entries;
}

void Tokenizer::encode_ordinary(const uint8_t* text, size_t n, std::vector<int32_t>& ids, Cache& cache) const {
  // One function per pattern, each with its scanner inlined: a switch inside one function made
  // GPT-2's 7% slower (the three scanners together no longer inline).
  using tokenizer_detail::Pattern;
  switch (pattern_) {
    case Pattern::kGpt2:
      encode_split(text, n, ids, cache, [](const uint8_t* s, size_t m, auto& on_piece, auto& on_invalid) {
        tokenizer_detail::pretokenize(s, m, on_piece, on_invalid);
      });
      break;
    case Pattern::kLlama3:
      encode_split(text, n, ids, cache, [](const uint8_t* s, size_t m, auto& on_piece, auto& on_invalid) {
        tokenizer_detail::pretokenize_llama3<3>(s, m, on_piece, on_invalid);
      });
      break;
    case Pattern::kQwen2:
      encode_split(text, n, ids, cache, [](const uint8_t* s, size_t m, auto& on_piece, auto& on_invalid) {
        tokenizer_detail::pretokenize_llama3<1>(s, m, on_piece, on_invalid);
      });
      break;
  }
}

template <class Split>
void Tokenizer::encode_split(const uint8_t* text, size_t n, std::vector<int32_t>& ids, Cache& cache, Split split) const {
  const size_t segment_first = ids.size();
  size_t last_piece_first = SIZE_MAX;  // index in ids of the last piece's first token
  // Pieces wait in a small batch: their table slots are prefetched when they arrive, looked up
  // together, then the piece-cache slots of the misses are prefetched, and only then are the
  // tokens emitted in order. Both tables are megabytes, so these lookups are cache misses, and
  // batching lets them overlap instead of queueing. 16 pieces are ~70 bytes of English.
  struct Pending {
    size_t begin, size;
    uint64_t head, hash;
    int32_t id;
  };
  constexpr size_t kBatch = 16;
  Pending batch[kBatch];
  size_t pending = 0;
  // Inlined by force, as are class_run_end() and TokenTable::find(): with the tokenizer.json code
  // in this file GCC stopped inlining them and GPT-2's encoding ran 5-7% more instructions.
  auto flush = [&]() __attribute__((always_inline)) {
    for (size_t k = 0; k < pending; ++k) {
      Pending& p = batch[k];
      if (p.size == 1) {
        p.id = byte_id_[text[p.begin]];
      } else {
        p.id = table_.find(text + p.begin, p.size, p.head, p.hash);
        if (p.id < 0) cache.prefetch(p.hash);
      }
    }
    for (size_t k = 0; k < pending; ++k) {
      const Pending& p = batch[k];
      last_piece_first = ids.size();
      if (p.id >= 0) ids.push_back(p.id);
      else encode_rare_piece(text + p.begin, p.size, p.hash, ids, cache);
    }
    pending = 0;
  };
  auto on_piece = [&](size_t begin, size_t end) __attribute__((always_inline)) {
    if (pending == kBatch) flush();
    Pending& p = batch[pending++];
    p.begin = begin;
    p.size = end - begin;
    if (p.size > 1) {
      p.head = tokenizer_detail::head_bytes(text + begin, p.size);
      p.hash = hash_bytes(text + begin, p.size, p.head);
      table_.prefetch(p.hash);
    }
  };
  // Invalid UTF-8, as tiktoken's _encode_bytes treats text that ends in it: the tokens of the
  // last piece (extended back over tokens made only of ' ', '\n', '\t' when the last piece starts
  // with one, tiktoken's _increase_last_piece_token_len) are decoded, the invalid bytes appended,
  // and the result encoded as one piece. tiktoken then merges everything after as one piece;
  // we restart the pre-tokenizer instead, so a bad byte changes only its neighbourhood, the work
  // stays linear, and chunks can be encoded in parallel.
  auto on_invalid = [&](size_t begin, size_t end) {
    flush();
    std::string bytes;
    if (last_piece_first != SIZE_MAX && last_piece_first < ids.size()) {
      size_t first = last_piece_first;
      if (all_space_[ids[first]])
        while (first > segment_first && all_space_[ids[first - 1]]) --first;
      for (size_t k = first; k < ids.size(); ++k) bytes += decoded_[ids[k]];
      ids.resize(first);
    }
    bytes.append(reinterpret_cast<const char*>(text + begin), end - begin);
    encode_piece(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ids, cache);
    last_piece_first = SIZE_MAX;
  };
  split(text, n, on_piece, on_invalid);
  flush();
}

void Tokenizer::encode_hugging_face(std::string_view text, bool allow_special, std::vector<int32_t>& ids,
                                    Cache& cache) const {
  std::string valid;  // tokenizers takes a Python str: bytes.decode("utf-8", errors="replace")
  if (first_invalid_utf8(text) != std::string_view::npos) {
    valid = utf8_lossy(text);
    text = valid;
  }
  const bool may_need_nfc = nfc_ && tokenizer_detail::may_need_nfc(text);
  std::string normalized;
  auto encode_plain = [&](std::string_view piece) {
    encode_ordinary(reinterpret_cast<const uint8_t*>(piece.data()), piece.size(), ids, cache);
  };
  auto push = [&](int32_t id) { ids.push_back(id); };
  // tokenizers' AddedVocabulary::extract_and_normalize: tokens matched in the original text first,
  // then each text between them normalized and searched for the normalized tokens.
  auto encode_text = [&](std::string_view piece) {
    if (may_need_nfc && tokenizer_detail::may_need_nfc(piece)) {
      normalized.clear();
      tokenizer_detail::append_nfc(piece, normalized);
      piece = normalized;
    }
    if (added_normalized_.empty()) encode_plain(piece);
    else tokenizer_detail::split_on_added_tokens(added_normalized_, piece, allow_special, encode_plain, push);
  };
  if (added_.empty()) encode_text(text);
  else tokenizer_detail::split_on_added_tokens(added_, text, allow_special, encode_text, push);
}

void Tokenizer::encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& ids) const {
  Cache& cache = thread_cache();
  if (hf_) {
    encode_hugging_face(text, allow_special, ids, cache);
    return;
  }
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t pos = 0;
  while (allow_special && pos < text.size()) {
    // The leftmost special token (the longest where several start there), as tiktoken finds them.
    size_t found = std::string_view::npos, found_size = 0;
    int32_t found_id = -1;
    for (const auto& [name, id] : specials_) {
      const size_t at = text.find(name, pos);
      if (at < found || (at == found && name.size() > found_size)) {
        found = at;
        found_size = name.size();
        found_id = id;
      }
    }
    if (found == std::string_view::npos) break;
    encode_ordinary(s + pos, found - pos, ids, cache);
    ids.push_back(found_id);
    pos = found + found_size;
  }
  encode_ordinary(s + pos, text.size() - pos, ids, cache);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 16);  // GPT-2 averages about 4 bytes per token on English
  encode_append(text, allow_special, ids);
  return ids;
}

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, bool allow_special, int num_threads) const {
  // Below ~1 MB a thread start costs more than it saves.
  constexpr size_t kMinChunk = size_t{256} << 10;
  const size_t n = text.size();
  if (num_threads <= 1 || n < 4 * kMinChunk || !parallel_cuts_) return encode(text, allow_special);
  // GPT-2: a cut at p is safe when text[p] is an ASCII space character and text[p-1] an ASCII
  // non-space: every piece that holds a non-space character is made of non-space characters after
  // at most one leading U+0020, so the piece holding text[p-1] ends at p, and the regex has no
  // lookbehind. Llama 3 and Qwen2: the same with text[p] == ' ' only, since a run of punctuation
  // takes the line breaks after it (`[^\s\p{L}\p{N}]+[\r\n]*`); a word or number ends before any
  // space, and the piece at p depends only on the text from p. Special and added tokens hold no
  // space and take none (else parallel_cuts_ is false), so none is cut either; U+0020 is an NFC
  // boundary, and invalid UTF-8 is replaced in maximal runs of bytes >= 0x80, never cut either.
  const bool any_space = pattern_ == tokenizer_detail::Pattern::kGpt2;
  auto safe = [&](size_t p) {
    const auto a = static_cast<uint8_t>(text[p - 1]), b = static_cast<uint8_t>(text[p]);
    using tokenizer_detail::kAscii;
    return a < 0x80 && b < 0x80 && kAscii.c[a] != tokenizer_detail::kSpace &&
           (any_space ? kAscii.c[b] == tokenizer_detail::kSpace : b == ' ');
  };
  // Four chunks per thread so that a slow chunk (rare words, CJK) does not leave threads idle.
  const size_t chunks_wanted = std::min<size_t>(static_cast<size_t>(num_threads) * 4, n / kMinChunk);
  std::vector<size_t> cuts = {0};
  for (size_t k = 1; k < chunks_wanted; ++k) {
    size_t p = std::max(n * k / chunks_wanted, cuts.back() + 1);
    while (p < n && !safe(p)) ++p;
    if (p < n && p > cuts.back()) cuts.push_back(p);
  }
  cuts.push_back(n);
  const size_t chunks = cuts.size() - 1;
  std::vector<std::vector<int32_t>> results(chunks);
  std::atomic<size_t> next_chunk{0};
  auto work = [&] {
    for (size_t c; (c = next_chunk.fetch_add(1)) < chunks;) {
      results[c].reserve((cuts[c + 1] - cuts[c]) / 4 + 16);
      encode_append(text.substr(cuts[c], cuts[c + 1] - cuts[c]), allow_special, results[c]);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::min<int>(num_threads, static_cast<int>(chunks)); ++t) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  size_t total = 0;
  for (const auto& r : results) total += r.size();
  std::vector<int32_t> ids;
  ids.reserve(total);
  for (const auto& r : results) ids.insert(ids.end(), r.begin(), r.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  size_t size = 0;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] < 0 || ids[k] >= static_cast<int32_t>(decoded_.size()))
      fail("token id {} at position {} is outside the vocabulary [0, {})", ids[k], k, decoded_.size());
    if (decoded_[ids[k]].empty())  // a tokenizer.json may leave ids out
      fail("token id {} at position {} is no token of this vocabulary (its ids have a gap there)", ids[k], k);
    size += decoded_[ids[k]].size();
  }
  std::string out;
  out.reserve(size);
  for (int32_t id : ids) out += decoded_[id];
  return out;
}

std::string Tokenizer::decode_token(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(decoded_.size()))
    fail("token id {} is outside the vocabulary [0, {})", id, decoded_.size());
  if (decoded_[id].empty()) fail("token id {} is no token of this vocabulary (its ids have a gap there)", id);
  return decoded_[id];
}

std::string utf8_lossy(std::string_view bytes) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n;) {
    uint32_t cp = 0;
    const size_t len = tokenizer_detail::decode_utf8(s + i, n - i, cp);
    if (len > 0) {
      out.append(bytes.data() + i, len);
      i += len;
      continue;
    }
    // One U+FFFD per maximal subpart: the longest prefix of some valid sequence (Unicode §3.9,
    // what Python's decoder does), e.g. E2 82 'A' -> U+FFFD 'A', but ED A0 80 -> three U+FFFD.
    const uint8_t b0 = s[i];
    size_t need = 0;  // continuation bytes a sequence led by b0 needs
    uint8_t lo = 0x80, hi = 0xBF;  // the range allowed for its first continuation byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      need = 1;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      need = 2;
      lo = b0 == 0xE0 ? 0xA0 : 0x80;
      hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      need = 3;
      lo = b0 == 0xF0 ? 0x90 : 0x80;
      hi = b0 == 0xF4 ? 0x8F : 0xBF;
    }
    size_t len_bad = 1;
    if (need > 0 && i + 1 < n && s[i + 1] >= lo && s[i + 1] <= hi) {
      len_bad = 2;
      while (len_bad <= need && i + len_bad < n && (s[i + len_bad] & 0xC0) == 0x80) ++len_bad;
    }
    out += kReplacement;
    i += len_bad;
  }
  return out;
}

size_t first_invalid_utf8(std::string_view bytes) {
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n && (tokenizer_detail::load_u64(s + i) & 0x8080808080808080ull) == 0) {  // 8 ASCII bytes
      i += 8;
      continue;
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t len = tokenizer_detail::decode_utf8(s + i, n - i, cp);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace gptrain
