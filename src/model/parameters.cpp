#include "model/parameters.h"

#include <climits>

#include "kernels/stochastic_rounding.h"
#include "util/error.h"

namespace gptrain {

namespace {
// Keep each parameter 64-byte aligned inside the flat buffers.
int64_t padded(int64_t n, DType t) {
  const int64_t per_line = static_cast<int64_t>(64 / dtype_size(t));
  return (n + per_line - 1) / per_line * per_line;
}
}  // namespace

int ParameterSet::add(const std::string& name, const Shape& shape, ParamKind kind, int64_t layer, int64_t fan_in) {
  GPTRAIN_CHECK(!flat_.defined(), "parameter {} added after allocation", name);
  GPTRAIN_CHECK(find(name) == nullptr, "duplicate parameter {}", name);
  Parameter p;
  p.name = name;
  p.value = Tensor::view_of(nullptr, shape, DType::F32, nullptr);
  p.kind = kind;
  p.layer = layer;
  p.fan_in = fan_in;
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::allocate(DType dtype, Device device) {
  GPTRAIN_CHECK(!flat_.defined(), "parameters allocated twice");
  dtype_ = dtype;
  compute_dtype_ = dtype;
  total_ = 0;
  for (Parameter& p : params_) {
    p.offset = total_;
    total_ += padded(p.value.numel(), dtype);
  }
  flat_ = Tensor::zeros({total_}, dtype, device);
  bind_values();
}

void ParameterSet::bind_values() {
  for (Parameter& p : params_) {
    p.value = Tensor::view_of(static_cast<char*>(flat_.raw()) + static_cast<size_t>(p.offset) * dtype_size(dtype_),
                              p.value.shape(), dtype_, flat_.storage(), flat_.device());
    p.compute = !flat_compute_.defined()
                    ? p.value
                    : Tensor::view_of(static_cast<char*>(flat_compute_.raw()) +
                                          static_cast<size_t>(p.offset) * dtype_size(compute_dtype_),
                                      p.value.shape(), compute_dtype_, flat_compute_.storage(), flat_compute_.device());
  }
}

void ParameterSet::set_compute_dtype(DType dtype) {
  GPTRAIN_CHECK(flat_.defined(), "compute type set before the parameters are allocated");
  if (dtype == compute_dtype_) return;
  if (dtype == dtype_) {
    flat_compute_ = Tensor();
  } else {
    if (dtype_ != DType::F32 || dtype != DType::BF16)
      fail("parameters of {} compute in {} or bf16 beside f32 values, not {}", dtype_name(dtype_), dtype_name(dtype_),
           dtype_name(dtype));
    flat_compute_ = Tensor::zeros({total_}, dtype, flat_.device());  // the values' layout, element for element
  }
  compute_dtype_ = dtype;
  bind_values();
  refresh_compute();
  if (grads_allocated_) allocate_grads();
}

void ParameterSet::refresh_compute(uint64_t seed, int64_t step) {
  if (!flat_compute_.defined()) return;
  const Tensor values = flat_.host();
  const Tensor copy = Tensor::zeros({total_}, compute_dtype_);
  const float* x = values.data<float>();
  uint16_t* y = copy.data<uint16_t>();
  for (const Parameter& p : params_) {
    const int64_t n = p.value.numel(), at = p.offset;
    if (p.trainable && step > 0) {
      const kernels::StochasticRounding rounding(seed, step, static_cast<uint64_t>(at));
      for (int64_t i = 0; i < n; ++i) y[at + i] = float_to_bf16_stochastic(x[at + i], rounding.bits(static_cast<uint64_t>(i)));
    } else {
      for (int64_t i = 0; i < n; ++i) y[at + i] = float_to_bf16(x[at + i]);
    }
  }
  flat_compute_.copy_from(copy);
}

void ParameterSet::move_to(Device device) {
  GPTRAIN_CHECK(flat_.defined(), "parameters moved before they are allocated");
  if (flat_.device() == device) return;
  flat_ = flat_.to(device);
  if (flat_compute_.defined()) flat_compute_ = flat_compute_.to(device);
  bind_values();
  if (grads_allocated_) {
    const Tensor old = flat_grads_;
    allocate_grads();  // on the new device, views rebuilt
    if (old.defined()) flat_grads_.copy_from(old);
  }
}

Parameter* ParameterSet::find(const std::string& name) {
  for (Parameter& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const Parameter* ParameterSet::find(const std::string& name) const {
  for (const Parameter& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

Parameter& ParameterSet::at(const std::string& name) {
  Parameter* p = find(name);
  if (!p) fail("the model has no parameter named '{}'", name);
  return *p;
}

int64_t ParameterSet::numel() const {
  int64_t n = 0;
  for (const Parameter& p : params_) n += p.value.numel();
  return n;
}

int64_t ParameterSet::trainable_numel() const {
  int64_t n = 0;
  for (const Parameter& p : params_)
    if (p.trainable) n += p.value.numel();
  return n;
}

int64_t ParameterSet::lowest_trainable_layer() const {
  int64_t lowest = INT64_MAX;
  for (const Parameter& p : params_)
    if (p.trainable && p.layer < lowest) lowest = p.layer;
  return lowest;
}

void ParameterSet::allocate_grads() {
  GPTRAIN_CHECK(flat_.defined(), "gradients before the parameters are allocated");
  int64_t n = 0;
  for (const Parameter& p : params_)
    if (p.trainable) n += padded(p.value.numel(), dtype_);
  // The values' layout (padding counted in their type), so the moments keep one layout whatever
  // the compute type: a bf16 run's optimizer state resumes an f32 run's and the reverse.
  flat_grads_ = n ? Tensor::zeros({n}, compute_dtype_, flat_.device()) : Tensor();
  int64_t offset = 0;
  for (Parameter& p : params_) {
    if (!p.trainable) {
      p.grad = Tensor();
      continue;
    }
    p.grad = Tensor::view_of(
        static_cast<char*>(flat_grads_.raw()) + static_cast<size_t>(offset) * dtype_size(compute_dtype_),
        p.value.shape(), compute_dtype_, flat_grads_.storage(), flat_.device());
    offset += padded(p.value.numel(), dtype_);
  }
  grads_allocated_ = true;
}

void ParameterSet::ensure_grads() {
  if (!grads_allocated_) allocate_grads();
}

void ParameterSet::zero_grads() {
  ensure_grads();
  if (flat_grads_.defined()) flat_grads_.zero();
}

}  // namespace gptrain
