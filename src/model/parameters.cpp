#include "model/parameters.h"

#include "util/error.h"

namespace gptrain {

int ParameterSet::add(const std::string& name, const Shape& shape, ParamKind kind, int64_t fan_in) {
  GPTRAIN_CHECK(!flat_.defined(), "parameter {} added after allocation", name);
  GPTRAIN_CHECK(find(name) == nullptr, "duplicate parameter {}", name);
  Parameter p;
  p.name = name;
  p.value = Tensor::view_of(nullptr, shape, nullptr);
  p.kind = kind;
  p.fan_in = fan_in;
  p.offset = total_;
  // Keep each parameter 64-byte aligned inside the flat buffer.
  total_ += (shape_numel(shape) + 15) / 16 * 16;
  params_.push_back(std::move(p));
  return static_cast<int>(params_.size()) - 1;
}

void ParameterSet::allocate() {
  flat_ = Tensor::zeros({total_});
  for (Parameter& p : params_)
    p.value = Tensor::view_of(flat_.data() + p.offset, p.value.shape(), flat_.storage());
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

int64_t ParameterSet::trainable_numel() const {
  int64_t n = 0;
  for (const Parameter& p : params_)
    if (p.trainable) n += p.value.numel();
  return n;
}

void ParameterSet::allocate_grads() {
  int64_t n = 0;
  for (const Parameter& p : params_)
    if (p.trainable) n += (p.value.numel() + 15) / 16 * 16;
  flat_grads_ = n ? Tensor::zeros({n}) : Tensor();
  int64_t offset = 0;
  for (Parameter& p : params_) {
    if (!p.trainable) {
      p.grad = Tensor();
      continue;
    }
    p.grad = Tensor::view_of(flat_grads_.data() + offset, p.value.shape(), flat_grads_.storage());
    offset += (p.value.numel() + 15) / 16 * 16;
  }
}

void ParameterSet::zero_grads() {
  if (flat_grads_.defined()) flat_grads_.zero();
}

}  // namespace gptrain
