// Tensor: a typed view (data pointer, element type, device, shape; row-major, last dimension
// contiguous) onto reference-counted storage. Shapes follow PyTorch's order of dimensions; the
// legend used in comments everywhere is B batch, T time, C channels, V vocab, NH heads, HS head
// size. Memory comes from the allocator registered for the device (the CPU's is built in; a GPU
// backend registers its own), so this layer never sees a device API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/dtype.h"

namespace gptrain {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device device);
Device device_named(const std::string& name);  // "cpu" or "cuda"; another name is an error naming it

using Shape = std::vector<int64_t>;
std::string shape_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

// The memory of one device.
class Allocator {
 public:
  virtual ~Allocator() = default;
  // At least 64-byte aligned; fails with a message on exhaustion.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  // Copies bytes between this device and the host, or within this device.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  // Host bytes into this device's memory at dst without waiting for the work the device has
  // queued: that work sees dst as it was, later work sees the bytes, and src may be reused as soon
  // as this returns (a batch's ids go in while the previous step still runs). Default: copy().
  virtual void upload(void* dst, Device dst_device, const void* src, size_t bytes) {
    copy(dst, dst_device, src, Device::CPU, bytes);
  }
};
// Makes `allocator` (which must outlive every tensor of the device) serve `device`.
void register_allocator(Device device, Allocator* allocator);
// The device's allocator; fails naming the device when this build has none.
Allocator& allocator_for(Device device);

class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

template <class T>
constexpr bool element_type_matches(DType t);

class Tensor {
 public:
  Tensor() = default;  // undefined: stands for "absent" (e.g. no bias, no gradient wanted)

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);   // F32, CPU
  static Tensor from_doubles(const Shape& shape, const std::vector<double>& values);  // F64, CPU
  static Tensor from_ids(const Shape& shape, std::span<const int32_t> ids);          // I32, CPU
  // A view of memory owned elsewhere (an arena, a flat parameter buffer); `owner` keeps it alive.
  static Tensor view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<Storage> owner,
                        Device device = Device::CPU);

  bool defined() const { return data_ != nullptr; }
  // The elements as T (float for F32, double for F64, int32_t for I32, uint16_t for BF16/F16),
  // for host code: a type mismatch, or a tensor on another device (host code would read device
  // memory), is a bug in the caller and throws.
  template <class T = float>
  T* data() const;
  // The same pointer on the tensor's own device, for handing to that device's kernels.
  template <class T = float>
  T* device_data() const;
  void* raw() const { return data_; }
  const Shape& shape() const { return shape_; }
  int64_t ndim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t dim(int64_t i) const;  // negative i counts from the end, as in PyTorch
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Same memory, new shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along dimension 0; contiguous, shares memory.
  Tensor slice_rows(int64_t begin, int64_t end) const;

  // A Tensor is a view: these write through it, so they are const like the data pointer.
  void zero() const;                          // any device
  void copy_from(const Tensor& other) const;  // same dtype and element count, any devices
  // nbytes() of host memory at `host` into this tensor, on any device, through Allocator::upload:
  // work already queued on the device reads the old contents.
  void upload(const void* host) const;
  Tensor to(Device device) const;             // a copy on `device`
  Tensor to(DType dtype) const;               // a converted copy (CPU; float types among themselves)
  Tensor host() const;                        // this tensor when on the CPU, else a copy there

  // Host conveniences: fill and [] on CPU tensors only; the vectors from any device.
  void fill(float value) const;             // F32 and F64
  std::vector<float> to_vector() const;     // any floating type, converted
  std::vector<double> to_doubles() const;   // any floating type, converted
  float& operator[](int64_t i) const;       // F32

 private:
  void require_host(const char* what) const;

  std::shared_ptr<Storage> storage_;
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

template <class T>
constexpr bool element_type_matches(DType t) {
  if constexpr (std::is_same_v<T, float>) return t == DType::F32;
  else if constexpr (std::is_same_v<T, double>) return t == DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>) return t == DType::I32;
  else if constexpr (std::is_same_v<T, uint16_t>) return t == DType::BF16 || t == DType::F16;
  else return false;
}

[[noreturn]] void tensor_type_mismatch(DType have, size_t want_bytes);
[[noreturn]] void tensor_not_on_host(Device device);

template <class T>
T* Tensor::device_data() const {
  if (!element_type_matches<std::remove_const_t<T>>(dtype_)) [[unlikely]]
    tensor_type_mismatch(dtype_, sizeof(T));
  return static_cast<T*>(data_);
}

template <class T>
T* Tensor::data() const {
  if (device_ != Device::CPU) [[unlikely]]
    tensor_not_on_host(device_);
  return device_data<T>();
}

// A bump allocator for activations: one aligned block, carved into tensors once per batch shape,
// so a step allocates nothing. reset() makes all previous tensors invalid. A measuring arena
// hands out shape-only tensors (no memory) and counts the bytes: the same layout code first
// measures, then allocates, so sizes are never counted by hand.
class Arena {
 public:
  explicit Arena(Device device = Device::CPU) : device_(device) {}
  static Arena measuring() {
    Arena a;
    a.measuring_ = true;
    return a;
  }
  Tensor alloc(const Shape& shape, DType dtype = DType::F32);
  void reset() { used_ = 0; }
  // Grows (discarding everything) when the next planned layout needs more room.
  void reserve(size_t bytes);
  size_t used() const { return used_; }
  size_t capacity() const { return storage_ ? storage_->bytes() : 0; }
  bool is_measuring() const { return measuring_; }
  Device device() const { return device_; }
  static constexpr size_t kAlignment = 64;

 private:
  std::shared_ptr<Storage> storage_;
  size_t used_ = 0;
  Device device_;
  bool measuring_ = false;
};

}  // namespace gptrain
