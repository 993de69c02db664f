#include "data/classification.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"
#include "util/rng.h"

namespace gptrain::data {

ClassificationSet pad_and_stack(const std::vector<std::vector<int32_t>>& encoded, const std::vector<int32_t>& labels,
                                int64_t max_length, int32_t pad_id) {
  GPTRAIN_CHECK(encoded.size() == labels.size(), "{} texts, {} labels", encoded.size(), labels.size());
  ClassificationSet set;
  set.max_length = max_length > 0 ? max_length : longest(encoded).first;
  GPTRAIN_CHECK(set.max_length > 0, "no tokens to classify");
  const size_t T = static_cast<size_t>(set.max_length);
  set.tokens.assign(encoded.size() * T, pad_id);
  for (size_t i = 0; i < encoded.size(); ++i)
    std::copy_n(encoded[i].begin(), std::min(T, encoded[i].size()), set.tokens.begin() + static_cast<ptrdiff_t>(i * T));
  set.labels = labels;
  return set;
}

std::pair<int64_t, int64_t> longest(const std::vector<std::vector<int32_t>>& encoded) {
  int64_t best = 0, at = -1;
  for (size_t i = 0; i < encoded.size(); ++i)
    if (static_cast<int64_t>(encoded[i].size()) > best) {
      best = static_cast<int64_t>(encoded[i].size());
      at = static_cast<int64_t>(i);
    }
  return {best, at};
}

ClassificationLoader::ClassificationLoader(const ClassificationSet& set, int64_t batch_size, bool shuffle,
                                           bool drop_last, uint64_t seed)
    : set_(set), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
  if (batch_size <= 0) fail("batch size must be positive, got {}", batch_size);
}

int64_t ClassificationLoader::num_batches() const {
  const int64_t n = set_.size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

int64_t ClassificationLoader::rows(int64_t batch) const {
  return std::min(batch_size_, set_.size() - batch * batch_size_);
}

const std::vector<int64_t>& ClassificationLoader::order(int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_order_;
  std::vector<int64_t> idx(static_cast<size_t>(set_.size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  if (shuffle_) {
    // Fisher-Yates with draws that depend only on (seed, epoch, position).
    const CounterRng rng(seed_, 0x434c5353ULL + static_cast<uint64_t>(epoch));
    for (int64_t i = static_cast<int64_t>(idx.size()) - 1; i > 0; --i)
      std::swap(idx[static_cast<size_t>(i)], idx[rng.below(static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  }
  cached_epoch_ = epoch;
  cached_order_ = std::move(idx);
  return cached_order_;
}

void ClassificationLoader::get(int64_t epoch, int64_t batch, std::vector<int32_t>& inputs,
                               std::vector<int32_t>& labels) const {
  GPTRAIN_CHECK(batch >= 0 && batch < num_batches(), "batch {} of {}", batch, num_batches());
  const std::vector<int64_t>& idx = order(epoch);
  const int64_t T = set_.max_length, r = rows(batch);
  inputs.resize(static_cast<size_t>(r * T));
  labels.resize(static_cast<size_t>(r));
  for (int64_t i = 0; i < r; ++i) {
    const int64_t row = idx[static_cast<size_t>(batch * batch_size_ + i)];
    std::copy_n(set_.tokens.begin() + row * T, T, inputs.begin() + i * T);
    labels[static_cast<size_t>(i)] = set_.labels[static_cast<size_t>(row)];
  }
}

}  // namespace gptrain::data
