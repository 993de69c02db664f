// Byte-level BPE over the pieces of the pre-tokenizer, with the merge order of tiktoken's
// byte_pair_merge: repeatedly merge the adjacent pair whose concatenation is the lowest-ranked
// token, the leftmost on ties. A piece that is already a token is emitted without merging.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <atomic>
#include <queue>
#include <thread>

#include "tokenizer/pretokenizer.h"
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
  for (const auto& [name, id] : t.specials_) {
    t.decoded_[id] = name;
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

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(dir / "encoder.json", ec) && fs::is_regular_file(dir / "vocab.bpe", ec))
    return from_files((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
  if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
    return from_files((dir / "vocab.json").string(), (dir / "merges.txt").string());
  fail("{}: no tokenizer files; expected encoder.json + vocab.bpe (OpenAI GPT-2) or vocab.json + "
       "merges.txt (a Hugging Face GPT-2 model directory)", dir.string());
}

uint32_t Tokenizer::rank_of(const uint8_t* bytes, size_t n) const {
  const int32_t id = table_.find(bytes, n);
  return id < 0 ? kNoRank : merge_rank_[id];
}

int32_t Tokenizer::token_id(std::string_view bytes) const {
  for (const auto& [name, id] : specials_)
    if (bytes == name) return id;
  if (bytes.empty()) return -1;
  return table_.find(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
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
  if (n < kLargePiece) byte_pair_merge(piece, n, ids);
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
  auto flush = [&] {
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
  auto on_piece = [&](size_t begin, size_t end) {
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
  tokenizer_detail::pretokenize(text, n, on_piece, on_invalid);
  flush();
}

void Tokenizer::encode_append(std::string_view text, bool allow_special, std::vector<int32_t>& ids) const {
  Cache& cache = thread_cache();
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
  if (num_threads <= 1 || n < 4 * kMinChunk) return encode(text, allow_special);
  // A cut at p is safe when text[p] is an ASCII space character and text[p-1] an ASCII non-space:
  // every piece that holds a non-space character is made of non-space characters after at most
  // one leading U+0020, so the piece holding text[p-1] ends at p, and the regex has no lookbehind.
  // Special tokens hold no space, so none is cut either.
  auto safe = [&](size_t p) {
    const auto a = static_cast<uint8_t>(text[p - 1]), b = static_cast<uint8_t>(text[p]);
    using tokenizer_detail::kAscii;
    return a < 0x80 && b < 0x80 && kAscii.c[a] != tokenizer_detail::kSpace && kAscii.c[b] == tokenizer_detail::kSpace;
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

}  // namespace gptrain
