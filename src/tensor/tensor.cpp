#include "tensor/tensor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace gptrain {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F64: return "f64";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
  }
  return "?";
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  const uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)  // inf, NaN
                                         : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

uint16_t float_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to 65520 or more: inf
  if (abs < 0x38800000u) {
    // Below the smallest normal half (2^-14): a subnormal, mantissa = round(|f| * 2^24).
    const float scaled = std::bit_cast<float>(abs) * 0x1p24f;  // exact: a power-of-two scale
    const float r = std::nearbyint(scaled);                    // ties to even (default rounding)
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(r));
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  const uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

Device device_named(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") return Device::CUDA;
  fail("--device must be cpu or cuda, got '{}'", name);
}

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

namespace {

class HostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    const size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail("out of memory allocating {} MiB", bytes >> 20);
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void zero(void* p, size_t bytes) override {
    if (bytes) std::memset(p, 0, bytes);
  }
  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) override {
    GPTRAIN_CHECK(dst_device == Device::CPU && src_device == Device::CPU, "host allocator asked to copy {} -> {}",
                  device_name(src_device), device_name(dst_device));
    if (bytes) std::memmove(dst, src, bytes);
  }
};

std::array<Allocator*, 2>& registry() {
  static HostAllocator host;
  static std::array<Allocator*, 2> table{&host, nullptr};
  return table;
}

}  // namespace

void register_allocator(Device device, Allocator* allocator) { registry()[static_cast<size_t>(device)] = allocator; }

Allocator& allocator_for(Device device) {
  Allocator* a = registry()[static_cast<size_t>(device)];
  if (!a) fail("device {} is not available: gptrain was built without {} support", device_name(device), device_name(device));
  return *a;
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = allocator_for(device).allocate(bytes);
}

Storage::~Storage() { allocator_for(device_).deallocate(data_); }

void tensor_type_mismatch(DType have, size_t want_bytes) {
  GPTRAIN_CHECK(false, "tensor of dtype {} read as a {}-byte element type that is not its own", dtype_name(have),
                want_bytes);
  std::abort();  // unreachable: the check throws
}

void tensor_not_on_host(Device device) {
  GPTRAIN_CHECK(false, "host code read a tensor on {} (copy it to the host with host() or to(Device::CPU))",
                device_name(device));
  std::abort();  // unreachable: the check throws
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(bytes, device);
  t.data_ = t.storage_->data();
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.zero();
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values for shape {}", values.size(),
                shape_string(shape));
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Tensor::from_doubles(const Shape& shape, const std::vector<double>& values) {
  GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values for shape {}", values.size(),
                shape_string(shape));
  Tensor t = empty(shape, DType::F64);
  std::copy(values.begin(), values.end(), t.data<double>());
  return t;
}

Tensor Tensor::from_ids(const Shape& shape, std::span<const int32_t> ids) {
  GPTRAIN_CHECK(static_cast<int64_t>(ids.size()) == shape_numel(shape), "{} ids for shape {}", ids.size(),
                shape_string(shape));
  Tensor t = empty(shape, DType::I32);
  std::copy(ids.begin(), ids.end(), t.data<int32_t>());
  return t;
}

Tensor Tensor::view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<Storage> owner, Device device) {
  Tensor t;
  t.storage_ = std::move(owner);
  t.data_ = data;
  t.shape_ = shape;
  t.dtype_ = dtype;
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
  GPTRAIN_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_string(shape_), shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  GPTRAIN_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows [{}, {}) out of range for shape {}",
                begin, end, shape_string(shape_));
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  Tensor t = *this;
  if (data_) t.data_ = static_cast<char*>(data_) + static_cast<size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

void Tensor::require_host(const char* what) const {
  GPTRAIN_CHECK(defined(), "{} of an undefined tensor", what);
  GPTRAIN_CHECK(device_ == Device::CPU, "{} of a tensor on {} (copy it to the host with to(Device::CPU))", what,
                device_name(device_));
}

void Tensor::zero() const {
  if (numel()) allocator_for(device_).zero(data_, nbytes());
}

void Tensor::copy_from(const Tensor& other) const {
  GPTRAIN_CHECK(other.numel() == numel() && other.dtype_ == dtype_, "copy of {} {} into {} {}",
                dtype_name(other.dtype_), shape_string(other.shape_), dtype_name(dtype_), shape_string(shape_));
  if (!numel()) return;
  // The non-host side knows how to reach the host.
  const Device via = device_ != Device::CPU ? device_ : other.device_;
  allocator_for(via).copy(data_, device_, other.data_, other.device_, nbytes());
}

void Tensor::upload(const void* host) const {
  GPTRAIN_CHECK(defined(), "upload into an undefined tensor");
  if (numel()) allocator_for(device_).upload(data_, device_, host, nbytes());
}

Tensor Tensor::to(Device device) const {
  Tensor t = empty(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::host() const { return device_ == Device::CPU ? *this : to(Device::CPU); }

namespace {

double element_as_double(const void* data, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::F64: return static_cast<const double*>(data)[i];
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::I32: return static_cast<const int32_t*>(data)[i];
  }
  return 0;
}

}  // namespace

Tensor Tensor::to(DType dtype) const {
  require_host("to(dtype)");
  GPTRAIN_CHECK(is_floating(dtype) && is_floating(dtype_), "conversion {} -> {} is not defined", dtype_name(dtype_),
                dtype_name(dtype));
  Tensor t = empty(shape_, dtype);
  const int64_t n = numel();
  if (dtype == dtype_) {
    t.copy_from(*this);
    return t;
  }
  for (int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::F32:
        t.data<float>()[i] = dtype_ == DType::F64 ? static_cast<float>(static_cast<const double*>(data_)[i])
                                                  : static_cast<float>(element_as_double(data_, dtype_, i));
        break;
      case DType::F64: t.data<double>()[i] = element_as_double(data_, dtype_, i); break;
      case DType::BF16: t.data<uint16_t>()[i] = float_to_bf16(static_cast<float>(element_as_double(data_, dtype_, i))); break;
      case DType::F16: t.data<uint16_t>()[i] = float_to_f16(static_cast<float>(element_as_double(data_, dtype_, i))); break;
      case DType::I32: break;
    }
  }
  return t;
}

void Tensor::fill(float value) const {
  require_host("fill");
  if (dtype_ == DType::F64) {
    std::fill(data<double>(), data<double>() + numel(), static_cast<double>(value));
  } else {
    std::fill(data<float>(), data<float>() + numel(), value);
  }
}

std::vector<float> Tensor::to_vector() const {
  GPTRAIN_CHECK(defined(), "to_vector of an undefined tensor");
  if (device_ != Device::CPU) return host().to_vector();
  if (dtype_ == DType::F32) return std::vector<float>(data<float>(), data<float>() + numel());
  GPTRAIN_CHECK(is_floating(dtype_), "to_vector of an {} tensor", dtype_name(dtype_));
  std::vector<float> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[static_cast<size_t>(i)] = static_cast<float>(element_as_double(data_, dtype_, i));
  return out;
}

std::vector<double> Tensor::to_doubles() const {
  GPTRAIN_CHECK(defined(), "to_doubles of an undefined tensor");
  if (device_ != Device::CPU) return host().to_doubles();
  GPTRAIN_CHECK(is_floating(dtype_), "to_doubles of an {} tensor", dtype_name(dtype_));
  std::vector<double> out(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) out[static_cast<size_t>(i)] = element_as_double(data_, dtype_, i);
  return out;
}

float& Tensor::operator[](int64_t i) const {
  GPTRAIN_DCHECK(device_ == Device::CPU, "operator[] on a {} tensor", device_name(device_));
  return data<float>()[i];
}

void Arena::reserve(size_t bytes) {
  GPTRAIN_CHECK(!measuring_, "a measuring arena holds no memory");
  if (bytes <= capacity()) return;
  storage_ = std::make_shared<Storage>(bytes, device_);
  used_ = 0;
}

Tensor Arena::alloc(const Shape& shape, DType dtype) {
  const size_t n = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  const size_t padded = (n + kAlignment - 1) / kAlignment * kAlignment;  // keep every tensor 64-byte aligned
  if (measuring_) {
    used_ += padded;
    return Tensor::view_of(nullptr, shape, dtype, nullptr, device_);
  }
  GPTRAIN_CHECK(storage_ && used_ + padded <= storage_->bytes(), "arena of {} bytes cannot hold {} more (used {})",
                capacity(), padded, used_);
  Tensor t = Tensor::view_of(static_cast<char*>(storage_->data()) + used_, shape, dtype, storage_, device_);
  used_ += padded;
  return t;
}

}  // namespace gptrain
