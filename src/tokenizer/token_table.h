// Open-addressing hash table from a byte string to a token id, sized for GPT-2's 50k tokens, plus
// the byte-string hash it uses. Every encoded piece is looked up here first (most English words
// are one token), so a slot holds the token's first 8 bytes: a hit on a token of up to 8 bytes
// (most of them) touches one cache line and calls no memcmp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace gptrain::tokenizer_detail {

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t mix64(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// The first min(n, 8) bytes of p as a little-endian integer, zero-padded; reads only [p, p + n).
// Overlapping loads write the same byte values to the same positions, so OR-ing them is exact.
[[gnu::always_inline]] inline uint64_t head_bytes(const uint8_t* p, size_t n) {
  if (n >= 8) return load_u64(p);
  if (n >= 4) return load_u32(p) | (static_cast<uint64_t>(load_u32(p + n - 4)) << (8 * (n - 4)));
  if (n == 0) return 0;
  return p[0] | (static_cast<uint64_t>(p[n >> 1]) << (8 * (n >> 1))) | (static_cast<uint64_t>(p[n - 1]) << (8 * (n - 1)));
}

// A wyhash-style hash of p[0, n); `head` must be head_bytes(p, n).
[[gnu::always_inline]] inline uint64_t hash_bytes(const uint8_t* p, size_t n, uint64_t head) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  if (n <= 8) return mix64(head ^ k0, n ^ k1);
  uint64_t seed = mix64(head ^ k0, n ^ k1);
  size_t i = 8;
  for (; i + 8 < n; i += 8) seed = mix64(load_u64(p + i) ^ k2, seed ^ k1);
  return mix64(load_u64(p + n - 8) ^ k2, seed ^ k0);  // the last 8 bytes (overlap is harmless)
}
inline uint64_t hash_bytes(const uint8_t* p, size_t n) { return hash_bytes(p, n, head_bytes(p, n)); }

class TokenTable {
 public:
  static constexpr int32_t kAbsent = -1;

  // tokens[id] are the bytes of token id; ids with an empty string are left out (special tokens).
  void build(const std::vector<std::string>& tokens) {
    offsets_.assign(tokens.size() + 1, 0);
    pool_.clear();
    for (size_t id = 0; id < tokens.size(); ++id) {
      offsets_[id] = static_cast<uint32_t>(pool_.size());
      pool_ += tokens[id];
    }
    offsets_[tokens.size()] = static_cast<uint32_t>(pool_.size());
    size_t capacity = 16;
    while (capacity < tokens.size() * 2) capacity *= 2;  // load factor <= 0.5: short probe runs
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (size_t id = 0; id < tokens.size(); ++id) {
      const std::string& t = tokens[id];
      if (t.empty() || t.size() > UINT16_MAX) continue;
      const auto* p = reinterpret_cast<const uint8_t*>(t.data());
      const uint64_t head = head_bytes(p, t.size());
      size_t i = hash_bytes(p, t.size(), head) & mask_;
      while (slots_[i].id_plus_1 != 0) i = (i + 1) & mask_;
      slots_[i] = {head, static_cast<uint32_t>(id + 1), static_cast<uint32_t>(t.size())};
    }
  }

  // True before build(): find() must not be called then (it has no slot to probe).
  bool empty() const { return slots_.empty(); }

  // Always inlined (both): every piece is looked up here, and GCC stopped inlining them once the
  // tokenizer had more callers.
  [[gnu::always_inline]] int32_t find(const uint8_t* p, size_t n) const {
    const uint64_t head = head_bytes(p, n);
    return find(p, n, head, hash_bytes(p, n, head));
  }

  // With head == head_bytes(p, n) and h == hash_bytes(p, n, head) already computed.
  [[gnu::always_inline]] int32_t find(const uint8_t* p, size_t n, uint64_t head, uint64_t h) const {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id_plus_1 == 0) return kAbsent;
      if (s.head == head && s.size == n &&
          (n <= 8 || std::memcmp(pool_.data() + offsets_[s.id_plus_1 - 1] + 8, p + 8, n - 8) == 0))
        return static_cast<int32_t>(s.id_plus_1 - 1);
    }
  }

  // Starts loading the slot find() will probe first: a batch of pieces is hashed and prefetched,
  // then looked up, so the cache misses of a batch overlap instead of queueing one by one.
  void prefetch(uint64_t h) const { __builtin_prefetch(&slots_[h & mask_]); }

  std::string_view bytes(int32_t id) const {
    return std::string_view(pool_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }

 private:
  struct Slot {
    uint64_t head = 0;       // head_bytes() of the token
    uint32_t id_plus_1 = 0;  // 0 = empty
    uint32_t size = 0;       // bytes in the token
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> offsets_;  // [V + 1] byte offsets of each token in pool_
  std::string pool_;
  uint64_t mask_ = 0;
};

// Hugging Face's merge table: the pair (left id, right id) -> its rank (position in the merges
// list) and the id of the merged token. Looked up twice per merge of a rare piece.
class PairTable {
 public:
  struct Entry {
    uint32_t rank = UINT32_MAX;  // UINT32_MAX: the pair does not merge
    int32_t merged = -1;
  };

  void reserve(size_t pairs) {
    size_t capacity = 16;
    while (capacity < pairs + pairs / 2) capacity *= 2;  // load factor <= 2/3
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
  }
  // A pair listed again takes its new rank: tokenizers collects the list into a map, later wins.
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
    if ((size_ + 1) * 3 > slots_.size() * 2) grow();
    const uint64_t key = key_of(left, right);
    size_t i = mix64(key, kSeed) & mask_;
    while (slots_[i].key != 0 && slots_[i].key != key) i = (i + 1) & mask_;
    size_ += slots_[i].key == 0;
    slots_[i] = {key, {rank, merged}};
  }
  Entry find(int32_t left, int32_t right) const {
    const uint64_t key = key_of(left, right);
    for (size_t i = mix64(key, kSeed) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return s.entry;
      if (s.key == 0) return {};
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kSeed = 0x9E3779B97F4A7C15ull;
  // Never 0 (the empty slot): ids are >= 0, so left + 1 >= 1.
  static uint64_t key_of(int32_t left, int32_t right) {
    return ((static_cast<uint64_t>(static_cast<uint32_t>(left)) + 1) << 32) | static_cast<uint32_t>(right);
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(old.size());
    for (const Slot& s : old)
      if (s.key != 0) insert(static_cast<int32_t>((s.key >> 32) - 1), static_cast<int32_t>(s.key & 0xFFFFFFFFu), s.entry.rank, s.entry.merged);
  }
  struct Slot {
    uint64_t key = 0;
    Entry entry;
  };
  std::vector<Slot> slots_ = std::vector<Slot>(16);
  uint64_t mask_ = 15;
  size_t size_ = 0;
};

}  // namespace gptrain::tokenizer_detail
