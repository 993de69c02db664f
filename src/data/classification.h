// Token matrices of labelled texts (the book's SpamDataset: every text encoded, truncated and
// right-padded to one length) and a loader that batches them with a seeded shuffle per epoch
// (DataLoader(shuffle, drop_last) as the book builds it).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace gptrain::data {

struct ClassificationSet {
  int64_t max_length = 0;       // T: every row is exactly this long
  std::vector<int32_t> tokens;  // [N, T], right-padded
  std::vector<int32_t> labels;  // [N] class ids
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

// Encoded texts (ids per text) truncated to max_length (text[:max_length], as the book) and padded
// with pad_id; max_length 0: the longest text.
ClassificationSet pad_and_stack(const std::vector<std::vector<int32_t>>& encoded, const std::vector<int32_t>& labels,
                                int64_t max_length, int32_t pad_id);

// Longest of the encoded texts, and which one it is.
std::pair<int64_t, int64_t> longest(const std::vector<std::vector<int32_t>>& encoded);

class ClassificationLoader {
 public:
  // The order in epoch e is a permutation that depends only on (seed, e), so a resumed run sees
  // the batches an uninterrupted run would.
  ClassificationLoader(const ClassificationSet& set, int64_t batch_size, bool shuffle, bool drop_last, uint64_t seed);
  int64_t num_batches() const;
  int64_t rows(int64_t batch) const;
  // inputs: rows(batch) * T ids; labels: rows(batch) class ids.
  void get(int64_t epoch, int64_t batch, std::vector<int32_t>& inputs, std::vector<int32_t>& labels) const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;
  const ClassificationSet& set_;
  int64_t batch_size_;
  bool shuffle_, drop_last_;
  uint64_t seed_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace gptrain::data
