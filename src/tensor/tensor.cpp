#include "tensor/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "util/error.h"

namespace gptrain {

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    GPTRAIN_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
    GPTRAIN_CHECK(d == 0 || n <= INT64_MAX / d, "shape {} overflows int64", shape_string(shape));
    n *= d;
  }
  return n;
}

Storage::Storage(int64_t numel, Device device) : numel_(numel), device_(device) {
  GPTRAIN_CHECK(numel >= 0, "negative storage size {}", numel);
  if (device != Device::CPU) fail("device {} storage is not available in this build", device_name(device));
  const size_t bytes = std::max<size_t>(64, ((static_cast<size_t>(numel) * sizeof(float) + 63) / 64) * 64);
  data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!data_) fail("out of memory allocating {} MiB", bytes >> 20);
}

Storage::~Storage() { std::free(data_); }

Tensor Tensor::empty(const Shape& shape, Device device) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(shape_numel(shape), device);
  t.data_ = t.storage_->data();
  t.shape_ = shape;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, Device device) {
  Tensor t = empty(shape, device);
  t.zero();
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
                "{} values for shape {}", values.size(), shape_string(shape));
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data_);
  return t;
}

Tensor Tensor::view_of(float* data, const Shape& shape, std::shared_ptr<Storage> owner, Device device) {
  Tensor t;
  t.storage_ = std::move(owner);
  t.data_ = data;
  t.shape_ = shape;
  t.device_ = device;
  return t;
}

int64_t Tensor::dim(int64_t i) const {
  const int64_t n = ndim();
  if (i < 0) i += n;
  GPTRAIN_CHECK(i >= 0 && i < n, "dimension {} out of range for shape {}", i, shape_string(shape_));
  return shape_[i];
}

Tensor Tensor::reshape(const Shape& shape) const {
  GPTRAIN_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_string(shape_),
                shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  GPTRAIN_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
                "rows [{}, {}) out of range for shape {}", begin, end, shape_string(shape_));
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  Tensor t = *this;
  t.data_ = data_ + begin * row;
  t.shape_[0] = end - begin;
  return t;
}

void Tensor::fill(float value) const { std::fill(data_, data_ + numel(), value); }

void Tensor::copy_from(const Tensor& other) const {
  GPTRAIN_CHECK(other.numel() == numel(), "copy of {} into {}", shape_string(other.shape_),
                shape_string(shape_));
  if (numel()) std::memcpy(data_, other.data_, sizeof(float) * numel());
}

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data_, data_ + numel()); }

Arena::Arena(int64_t capacity_floats) {
  if (capacity_floats > 0) reserve(capacity_floats);
}

void Arena::reserve(int64_t capacity_floats) {
  if (capacity_floats <= capacity()) return;
  storage_ = std::make_shared<Storage>(capacity_floats);
  used_ = 0;
}

Tensor Arena::alloc(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const int64_t padded = (n + 15) / 16 * 16;  // keep every tensor 64-byte aligned
  GPTRAIN_CHECK(storage_ && used_ + padded <= storage_->numel(),
                "arena of {} floats cannot hold {} more (used {})", capacity(), padded, used_);
  Tensor t = Tensor::view_of(storage_->data() + used_, shape, storage_);
  used_ += padded;
  return t;
}

}  // namespace gptrain
