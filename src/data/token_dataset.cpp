#include "data/token_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include "util/error.h"
#include "util/rng.h"

namespace gptrain::data {

std::shared_ptr<TokenSource> TokenSource::from_vector(std::vector<int32_t> ids) {
  std::shared_ptr<TokenSource> s(new TokenSource());
  s->owned_ = std::move(ids);
  s->data_ = s->owned_.data();
  s->size_ = static_cast<int64_t>(s->owned_.size());
  s->width_ = 4;
  return s;
}

std::shared_ptr<TokenSource> TokenSource::map_shard(const std::filesystem::path& path, const std::string& format,
                                                    int64_t vocab_size) {
  std::string fmt = format;
  if (fmt.empty()) {
    const std::string ext = path.extension().string();
    fmt = ext == ".u32" ? "u32" : (ext == ".u16" || ext == ".bin") ? "u16" : "";
    if (fmt.empty()) fail("{}: cannot tell the token width from the extension; use .u16 or .u32", path.string());
  }
  if (fmt != "u16" && fmt != "u32") fail("{}: token format must be u16 or u32, got '{}'", path.string(), fmt);
  const int width = fmt == "u16" ? 2 : 4;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open token shard: {}", path.string(), std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail("{}: cannot stat: {}", path.string(), std::strerror(errno));
  }
  const size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes % width != 0) {
    ::close(fd);
    fail("{}: {} bytes is not a whole number of {} token ids (truncated file?)", path.string(), bytes, fmt);
  }
  std::shared_ptr<TokenSource> s(new TokenSource());
  s->width_ = width;
  s->size_ = static_cast<int64_t>(bytes / width);
  if (bytes) {
    s->map_ = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (s->map_ == MAP_FAILED) {
      s->map_ = nullptr;
      ::close(fd);
      fail("{}: mmap failed: {}", path.string(), std::strerror(errno));
    }
    s->map_bytes_ = bytes;
    s->data_ = s->map_;
  }
  ::close(fd);
  // The stored (unsigned) value is checked: after the cast to int32 an id of 2^32 - 100 would read
  // as -100, the ignored target.
  const auto check = [&](const auto* ids) {
    for (int64_t i = 0; i < s->size_; ++i)
      if (static_cast<uint64_t>(ids[i]) >= static_cast<uint64_t>(vocab_size))
        fail("{}: token id {} at position {} (byte offset {}) is outside the vocabulary of {}", path.string(),
             static_cast<uint64_t>(ids[i]), i, i * width, vocab_size);
  };
  if (width == 4)
    check(static_cast<const uint32_t*>(s->data_));
  else
    check(static_cast<const uint16_t*>(s->data_));
  return s;
}

std::shared_ptr<TokenSource> TokenSource::slice(std::shared_ptr<const TokenSource> whole, int64_t begin, int64_t end) {
  GPTRAIN_CHECK(0 <= begin && begin <= end && end <= whole->size(), "slice [{}, {}) of {} ids", begin, end,
                whole->size());
  std::shared_ptr<TokenSource> s(new TokenSource());
  s->width_ = whole->width_;
  s->size_ = end - begin;
  s->data_ = static_cast<const char*>(whole->data_) + begin * whole->width_;
  s->whole_ = std::move(whole);
  return s;
}

TokenSource::~TokenSource() {
  if (map_) ::munmap(map_, map_bytes_);
}

void TokenSource::copy(int64_t begin, std::span<int32_t> out) const {
  GPTRAIN_CHECK(begin >= 0 && begin + static_cast<int64_t>(out.size()) <= size_, "token range out of bounds");
  for (size_t i = 0; i < out.size(); ++i) out[i] = (*this)[begin + static_cast<int64_t>(i)];
}

SlidingWindows::SlidingWindows(std::shared_ptr<const TokenSource> tokens, int64_t max_length, int64_t stride)
    : tokens_(std::move(tokens)), max_length_(max_length), stride_(stride) {
  if (max_length <= 0) fail("context length must be positive, got {}", max_length);
  if (stride <= 0) fail("stride must be positive, got {}", stride);
  const int64_t n = tokens_->size();
  count_ = n > max_length ? (n - max_length + stride - 1) / stride : 0;
}

void SlidingWindows::get(int64_t index, std::span<int32_t> inputs, std::span<int32_t> targets) const {
  GPTRAIN_CHECK(index >= 0 && index < count_, "window {} of {}", index, count_);
  tokens_->copy(index * stride_, inputs);
  tokens_->copy(index * stride_ + 1, targets);
}

BatchLoader::BatchLoader(const SlidingWindows& windows, int64_t batch_size, bool shuffle, bool drop_last,
                         uint64_t seed)
    : windows_(windows), batch_size_(batch_size), shuffle_(shuffle), drop_last_(drop_last), seed_(seed) {
  if (batch_size <= 0) fail("batch size must be positive, got {}", batch_size);
}

int64_t BatchLoader::num_batches() const {
  const int64_t n = windows_.size();
  return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
}

int64_t BatchLoader::rows(int64_t batch) const {
  return std::min(batch_size_, windows_.size() - batch * batch_size_);
}

const std::vector<int64_t>& BatchLoader::order(int64_t epoch) const {
  if (epoch == cached_epoch_) return cached_order_;
  std::vector<int64_t> idx(static_cast<size_t>(windows_.size()));
  std::iota(idx.begin(), idx.end(), 0);
  if (shuffle_) {
    // Fisher-Yates with draws that depend only on (seed, epoch, position).
    const CounterRng rng(seed_, 0x5348554646ULL + static_cast<uint64_t>(epoch));
    for (int64_t i = static_cast<int64_t>(idx.size()) - 1; i > 0; --i)
      std::swap(idx[static_cast<size_t>(i)], idx[rng.below(static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  }
  cached_epoch_ = epoch;
  cached_order_ = std::move(idx);
  return cached_order_;
}

void BatchLoader::get(int64_t epoch, int64_t batch, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const {
  GPTRAIN_CHECK(batch >= 0 && batch < num_batches(), "batch {} of {}", batch, num_batches());
  const std::vector<int64_t>& idx = order(epoch);
  const int64_t L = windows_.max_length(), r = rows(batch);
  inputs.resize(static_cast<size_t>(r * L));
  targets.resize(static_cast<size_t>(r * L));
  for (int64_t i = 0; i < r; ++i)
    windows_.get(idx[static_cast<size_t>(batch * batch_size_ + i)], std::span(inputs).subspan(i * L, L),
                 std::span(targets).subspan(i * L, L));
}

}  // namespace gptrain::data
