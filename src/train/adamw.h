// torch.optim.AdamW over a model's trainable parameters, plus gradient clipping by global norm
// (torch.nn.utils.clip_grad_norm_). Frozen parameters have no gradient and no optimizer state:
// they are skipped entirely and get no weight decay, as in PyTorch.
#pragma once

#include <cstdint>

#include "model/parameters.h"
#include "tensor/tensor.h"

namespace gptrain {

struct AdamWOptions {
  double lr = 4e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
  // Exempt 1-D parameters (biases, LayerNorm scale and shift) from weight decay, as nanoGPT and
  // HF do. Off by default: the book decays every parameter it passes to the optimizer.
  bool no_decay_bias_and_norm = false;
  // ZeRO stage 1 (--zero 1): the optimizer state of `shards` ranks split in equal blocks of the
  // trainable gradient buffer; this one keeps and updates block `shard` only.
  int shards = 1, shard = 0;
  // The bf16 mode: the seed of the stochastic rounding that writes the weights' bf16 copy after
  // each update (kernels/stochastic_rounding.h; the training seed's, so runs are deterministic).
  uint64_t rounding_seed = 0;
};

class AdamW {
 public:
  // Allocates m and v for the parameters that are trainable now (call after freezing).
  AdamW(ParameterSet& params, const AdamWOptions& options);

  // One update with learning rate `lr` (the schedule's value for this step); counts steps from 1.
  // With a compute copy (ParameterSet::set_compute_dtype) the float32 weights are updated from the
  // bf16 gradients and the copy written by stochastic rounding.
  void step(double lr);
  void step() { step(options_.lr); }

  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t step) { step_ = step; }
  const AdamWOptions& options() const { return options_; }
  // Moments in the gradient buffer's layout (trainable parameters only), for checkpoints; with
  // shards, of this shard's elements [shard_begin, shard_end) of that buffer only.
  Tensor first_moment() const { return m_; }
  Tensor second_moment() const { return v_; }
  bool sharded() const { return options_.shards > 1; }
  int64_t shard_begin() const { return begin_; }
  int64_t shard_end() const { return end_; }
  int64_t shard_size() const { return block_; }  // the block every shard has (the last may hold fewer)

 private:
  ParameterSet& params_;
  AdamWOptions options_;
  Tensor m_, v_;
  int64_t step_ = 0;
  int64_t begin_ = 0, end_ = 0, block_ = 0;
};

// Global L2 norm of all trainable gradients (double accumulation; does not depend on threads).
double grad_norm(const ParameterSet& params);

// Scales gradients so their global norm is at most max_norm, exactly as clip_grad_norm_:
// coefficient max_norm / (norm + 1e-6), applied only when below 1. Returns the norm before clipping.
double clip_grad_norm(ParameterSet& params, double max_norm);

}  // namespace gptrain
