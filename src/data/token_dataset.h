// Language-model data: a token sequence (in memory, or a memory-mapped shard written by
// `gptrain tokenize --format u16|u32`), cut into the book's sliding windows (GPTDatasetV1), and a
// loader that batches them with a seeded shuffle (create_dataloader_v1).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace gptrain::data {

// Read-only token ids, from memory or from a file of little-endian uint16/uint32 ids.
class TokenSource {
 public:
  static std::shared_ptr<TokenSource> from_vector(std::vector<int32_t> ids);
  // Maps a raw shard; the element width comes from `format` ("u16" or "u32"), or from the file's
  // extension (.u16 / .u32 / .bin = u16) when format is empty. Checks the size is a whole number
  // of ids and every id is below vocab_size, naming the file and the offset of a bad id.
  static std::shared_ptr<TokenSource> map_shard(const std::filesystem::path& path, const std::string& format,
                                                int64_t vocab_size);
  // Ids [begin, end) of `whole` without a copy (the view keeps `whole`, and its mapping, alive).
  static std::shared_ptr<TokenSource> slice(std::shared_ptr<const TokenSource> whole, int64_t begin, int64_t end);
  ~TokenSource();
  TokenSource(const TokenSource&) = delete;
  TokenSource& operator=(const TokenSource&) = delete;

  int64_t size() const { return size_; }
  int32_t operator[](int64_t i) const {
    return width_ == 4 ? static_cast<int32_t>(static_cast<const uint32_t*>(data_)[i])
                       : static_cast<int32_t>(static_cast<const uint16_t*>(data_)[i]);
  }
  // Copies ids [begin, begin + out.size()) into out.
  void copy(int64_t begin, std::span<int32_t> out) const;

 private:
  TokenSource() = default;
  std::vector<int32_t> owned_;
  const void* data_ = nullptr;
  int64_t size_ = 0;
  int width_ = 4;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::shared_ptr<const TokenSource> whole_;  // what a slice views
};

// Windows i = 0..count-1 of `max_length` inputs starting at i*stride, targets shifted by one:
// count = len(range(0, N - max_length, stride)), exactly as GPTDatasetV1 (no partial window).
class SlidingWindows {
 public:
  SlidingWindows(std::shared_ptr<const TokenSource> tokens, int64_t max_length, int64_t stride);
  int64_t size() const { return count_; }
  int64_t max_length() const { return max_length_; }
  void get(int64_t index, std::span<int32_t> inputs, std::span<int32_t> targets) const;
  int64_t tokens() const { return tokens_->size(); }

 private:
  std::shared_ptr<const TokenSource> tokens_;
  int64_t max_length_, stride_, count_;
};

// Batches of windows. The order in epoch e is a permutation that depends only on (seed, e), so a
// run resumed at (epoch, batch) sees exactly the batches an uninterrupted run would.
class BatchLoader {
 public:
  BatchLoader(const SlidingWindows& windows, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed);
  int64_t num_batches() const;
  int64_t batch_size() const { return batch_size_; }
  // Rows in this batch (the last one may be short when drop_last is off).
  int64_t rows(int64_t batch) const;
  // inputs/targets: rows(batch) * max_length ids each.
  void get(int64_t epoch, int64_t batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;
  const SlidingWindows& windows_;
  int64_t batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace gptrain::data
