// The book's GPT-2 (ch04 GPTModel): token + learned position embeddings, dropout, n_layers
// pre-LayerNorm blocks (causal multi-head attention and a GELU MLP, each on a residual branch with
// dropout), a final LayerNorm and an output head (vocabulary logits, or N classes read at pooled
// positions). Forward and backward are explicit per layer; this file orchestrates kernels and holds
// no arithmetic loops.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/parameters.h"
#include "tensor/tensor.h"

namespace gptrain {

struct ForwardOptions {
  bool training = false;      // dropout on when training and drop_rate > 0
  uint64_t dropout_seed = 0;  // every dropout mask of the pass derives from this
  // LM head only: compute logits for the last position of each sequence alone (generation);
  // logits() is then [B, 1, V].
  bool last_position_only = false;
};

// Keys and values of every layer for the positions generated so far (generation only).
struct KVCache {
  int64_t B = 0, max_T = 0, length = 0;
  std::vector<Tensor> k, v;  // per layer [B, max_T, C]
};

class GPT2 {
 public:
  // Initialised with init(init_seed); std::nullopt leaves the weights zero (they are about to be
  // loaded from a file, and a random init of 1.5B parameters would cost seconds).
  explicit GPT2(const GPT2Config& config, std::optional<uint64_t> init_seed = 123);

  const GPT2Config& config() const { return config_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }

  // PyTorch's default initialisation, as the book's model gets it: embeddings N(0, 1), linear
  // weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), LayerNorm scale 1 and shift 0.
  // Deterministic in `seed` and independent of the thread count.
  void init(uint64_t seed);

  // Freezing. set_trainable_all(false) then thaw what should learn; call before training (it
  // rebuilds the gradient buffer). Parameter names: tok_emb.weight, pos_emb.weight,
  // blocks.{i}.{ln1,attn.qkv,attn.proj,ln2,mlp.fc,mlp.proj}.{weight,bias}, ln_f.{weight,bias},
  // head.weight (head.bias for classifiers).
  void set_trainable_all(bool trainable);
  void set_trainable_prefix(const std::string& prefix, bool trainable);
  void allocate_grads() { params_.allocate_grads(); }
  void zero_grads() { params_.zero_grads(); }

  // tokens: B*T ids. LM head: logits [B,T,V]; classifier: logits [B,n_classes].
  const Tensor& forward(std::span<const int32_t> tokens, int64_t B, int64_t T, const ForwardOptions& options);
  // forward + mean cross-entropy over targets that are not -100 (LM: B*T targets; classifier: B
  // labels). Returns 0 when every target is ignored.
  double forward_loss(std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t B,
                      int64_t T, const ForwardOptions& options);
  // Accumulates d(loss)/d(param) into the trainable parameters' gradients, for the last
  // forward_loss(), times loss_scale (1/n when accumulating n micro-batches). Stops below the
  // lowest trainable layer.
  void backward(float loss_scale = 1.0f);

  // KV-cache decoding: a cache for B sequences of up to max_T positions (at most the context).
  KVCache make_kv_cache(int64_t B, int64_t max_T) const;
  // Runs new tokens [B, Tn] at positions cache.length.. (the prompt first, then one token at a
  // time), appending their keys and values; returns the logits of the last new position [B,1,V].
  // Each new token costs one position of work instead of the whole window.
  const Tensor& forward_cached(std::span<const int32_t> tokens, int64_t B, int64_t Tn, KVCache& cache);

  const Tensor& logits() const { return output_; }
  int64_t targets_counted() const { return targets_counted_; }

  // Peak activation memory (floats) for a batch shape, training or inference.
  int64_t activation_floats(int64_t B, int64_t T, bool training) const;

 private:
  struct BlockParams {
    int ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
  };
  struct BlockActs {
    Tensor ln1, ln1_mean, ln1_rstd, qkv, att_stats, atty, attproj, res2, ln2, ln2_mean, ln2_rstd, fch,
        fch_gelu, fcproj, res3;
  };
  const Tensor& value(int index) const { return params_[index].value; }
  const Tensor& grad(int index) const { return params_[index].grad; }
  bool trainable(int index) const { return index >= 0 && params_[index].trainable; }
  Tensor opt_value(int index) const { return index >= 0 ? params_[index].value : Tensor(); }
  Tensor opt_grad(int index) const { return index >= 0 ? params_[index].grad : Tensor(); }
  int head_weight_index() const { return config_.tie_weights ? tok_emb_ : head_w_; }
  void plan(int64_t B, int64_t T, bool training);
  uint64_t site_seed(int64_t layer, int site) const;

  GPT2Config config_;
  ParameterSet params_;
  int tok_emb_ = -1, pos_emb_ = -1, lnf_w_ = -1, lnf_b_ = -1, head_w_ = -1, head_b_ = -1;
  std::vector<BlockParams> blocks_;

  // Activations of the last forward, carved from one arena per (B, T, training) shape.
  Arena arena_;
  int64_t planned_B_ = 0, planned_T_ = 0;
  bool planned_training_ = false;
  Tensor output_;  // what the last forward returned (logits_ or its last-position view)
  Tensor encoded_, lnf_, lnf_mean_, lnf_rstd_, pooled_, logits_, losses_, lse_;
  std::vector<BlockActs> acts_;
  // Backward scratch.
  Tensor dresidual_, dbranch_, dln_, dqkv_, datty_, dfch_, dfch_gelu_, dlnf_, dpooled_;

  // Buffers of forward_cached, planned per (B, Tn).
  Arena decode_arena_;
  int64_t decode_B_ = 0, decode_T_ = 0;
  BlockActs decode_;
  Tensor decode_in_, decode_lnf_, decode_lnf_mean_, decode_lnf_rstd_, decode_pooled_, decode_logits_;

  std::vector<int32_t> tokens_, targets_;
  int64_t B_ = 0, T_ = 0;
  ForwardOptions options_;
  bool have_loss_ = false;
  int64_t targets_counted_ = 0;
};

}  // namespace gptrain
