// Tensor: a float32 view (data pointer + shape, row-major, last dimension contiguous) onto
// reference-counted storage. Shapes follow PyTorch's order of dimensions; the legend used in
// comments everywhere is B batch, T time, C channels, V vocab, NH heads, HS head size.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace gptrain {

enum class Device { CPU, CUDA };
const char* device_name(Device device);

// Only float32 is a compute type; half formats are converted when a file is read (src/io).
enum class DType { F32 };

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

// Storage aligned to 64 bytes (a cache line, and enough for AVX-512 loads).
class Storage {
 public:
  explicit Storage(int64_t numel, Device device = Device::CPU);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  int64_t numel() const { return numel_; }
  Device device() const { return device_; }

 private:
  float* data_ = nullptr;
  int64_t numel_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: stands for "absent" (e.g. no bias, no gradient wanted)

  static Tensor empty(const Shape& shape, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  // A view of memory owned elsewhere (an arena, a flat parameter buffer); `owner` keeps it alive.
  static Tensor view_of(float* data, const Shape& shape, std::shared_ptr<Storage> owner,
                        Device device = Device::CPU);

  bool defined() const { return data_ != nullptr; }
  float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const;  // negative i counts from the end, as in PyTorch
  int64_t numel() const { return shape_numel(shape_); }
  Device device() const { return device_; }
  DType dtype() const { return DType::F32; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Same memory, new shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along dimension 0; contiguous, shares memory.
  Tensor slice_rows(int64_t begin, int64_t end) const;

  // A Tensor is a view: these write through it, so they are const like the data pointer.
  void fill(float value) const;
  void zero() const { fill(0.0f); }
  void copy_from(const Tensor& other) const;
  std::vector<float> to_vector() const;

  float& operator[](int64_t i) const { return data_[i]; }

 private:
  std::shared_ptr<Storage> storage_;
  float* data_ = nullptr;
  Shape shape_;
  Device device_ = Device::CPU;
};

// A bump allocator for activations: one aligned block, carved into tensors once per batch shape,
// so the training step allocates nothing. reset() makes all previous tensors invalid.
class Arena {
 public:
  explicit Arena(int64_t capacity_floats = 0);
  Tensor alloc(const Shape& shape);
  void reset() { used_ = 0; }
  // Grows (discarding everything) when the next planned layout needs more room.
  void reserve(int64_t capacity_floats);
  int64_t used() const { return used_; }
  int64_t capacity() const { return storage_ ? storage_->numel() : 0; }

 private:
  std::shared_ptr<Storage> storage_;
  int64_t used_ = 0;
};

}  // namespace gptrain
