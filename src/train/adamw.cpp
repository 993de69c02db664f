#include "train/adamw.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "util/error.h"

namespace gptrain {

AdamW::AdamW(ParameterSet& params, const AdamWOptions& options) : params_(params), options_(options) {
  if (!(options.lr >= 0)) fail("learning rate must be non-negative, got {}", options.lr);
  if (!(options.beta1 >= 0 && options.beta1 < 1)) fail("beta1 must be in [0, 1), got {}", options.beta1);
  if (!(options.beta2 >= 0 && options.beta2 < 1)) fail("beta2 must be in [0, 1), got {}", options.beta2);
  if (!(options.eps > 0)) fail("eps must be positive, got {}", options.eps);
  if (!(options.weight_decay >= 0)) fail("weight decay must be non-negative, got {}", options.weight_decay);
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards)
    fail("optimizer shard {} of {}", options.shard, options.shards);
  params.ensure_grads();
  const Tensor grads = params.flat_grads();
  if (grads.defined()) {
    const int64_t n = grads.numel();
    block_ = (n + options.shards - 1) / options.shards;
    begin_ = std::min(n, options.shard * block_);
    end_ = std::min(n, begin_ + block_);
    // The whole buffer in its shape, or this shard's block (at least one element).
    const Shape shape = sharded() ? Shape{std::max<int64_t>(end_ - begin_, 1)} : grads.shape();
    m_ = Tensor::zeros(shape, DType::F32, grads.device());  // the moments live where the gradients do
    v_ = Tensor::zeros(shape, DType::F32, grads.device());
  }
}

void AdamW::step(double lr) {
  if (!m_.defined()) return;  // nothing trainable
  ++step_;
  const Tensor grads = params_.flat_grads();
  if (!sharded()) GPTRAIN_CHECK(grads.numel() == m_.numel(), "trainable parameters changed after the optimizer was built");
  for (const Parameter& p : params_.all()) {
    if (!p.trainable) continue;
    const int64_t offset = (static_cast<const char*>(p.grad.raw()) - static_cast<const char*>(grads.raw())) /
                           static_cast<int64_t>(dtype_size(grads.dtype()));
    const int64_t n = p.value.numel();
    // The part of this parameter in the shard (all of it without shards).
    const int64_t a = std::max(offset, begin_), b = std::min(offset + n, end_);
    if (a >= b) continue;
    kernels::AdamWParams ap{b - a, lr, options_.beta1, options_.beta2, options_.eps, options_.weight_decay, step_};
    if (options_.no_decay_bias_and_norm && p.is_bias_or_norm()) ap.weight_decay = 0.0;
    const Tensor value = p.value.reshape({n}).slice_rows(a - offset, b - offset);
    const Tensor grad = p.grad.reshape({n}).slice_rows(a - offset, b - offset);
    const Tensor m = m_.reshape({m_.numel()}).slice_rows(a - begin_, b - begin_);
    const Tensor v = v_.reshape({v_.numel()}).slice_rows(a - begin_, b - begin_);
    if (params_.has_compute_copy()) {
      ap.rounding_seed = options_.rounding_seed;
      ap.element_offset = static_cast<uint64_t>(p.offset + (a - offset));  // the random bits of the flat buffer's elements
      ops::adamw_step_mixed(value, p.compute.reshape({n}).slice_rows(a - offset, b - offset), grad, m, v, ap);
    } else {
      ops::adamw_step(value, grad, m, v, ap);
    }
  }
}

double grad_norm(const ParameterSet& params) {
  const Tensor grads = params.flat_grads();
  return grads.defined() ? std::sqrt(ops::sum_squares(grads)) : 0.0;
}

double clip_grad_norm(ParameterSet& params, double max_norm) {
  if (!(max_norm > 0)) fail("gradient clipping norm must be positive, got {}", max_norm);
  const double norm = grad_norm(params);
  // torch computes the coefficient in float32 from the float32 total norm.
  const float coef = static_cast<float>(max_norm) / (static_cast<float>(norm) + 1e-6f);
  if (coef < 1.0f) ops::scale_(params.flat_grads(), coef);
  return norm;
}

}  // namespace gptrain
