// The layer units of the transformer: Embedding, Linear, Norm, Attention, MLP. Each is a small
// description (parameter indices and sizes) with a forward and a backward that call kernels
// through the ops; the block (model/transformer.h) composes them once for training, evaluation and
// KV-cache decoding. Linear is the one place a matrix product with a weight happens, so a LoRA
// adapter (model/lora.h) attaches there and nowhere else. Backward writes the gradient of a unit's input
// where the caller asks (InputGrad::Write, no zero-filled buffer) and accumulates the gradients of
// trainable parameters; a frozen parameter has no gradient tensor and costs no work.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/parameters.h"
#include "tensor/tensor.h"

namespace gptrain {

using ops::InputGrad;

// The keys and values of every layer for the positions of one sequence so far.
struct KVCache {
  int64_t max_T = 0;         // positions it can hold
  std::vector<Tensor> k, v;  // per layer [max_T, n_kv_heads * head_dim]
};

// One sequence of a decode pass: its cache, the positions already in it, and its rows of the pass.
struct DecodeSlot {
  KVCache* cache = nullptr;
  int64_t past = 0;
  int64_t rows = 0;
};

// How a pass runs the units: training (dropout on, activations kept for backward), evaluation,
// or a decode step over KV caches.
struct Pass {
  enum class Kind { Train, Eval, Decode };
  Kind kind = Kind::Eval;
  float dropout_p = 0.0f;      // training only
  uint64_t dropout_seed = 0;   // every dropout mask of the pass derives from this
  bool batch_invariant = false;  // decode rows: each row's result independent of the others
  std::span<const DecodeSlot> decode;  // Kind::Decode: the sequences, in row order
  Tensor rope_cos, rope_sin;           // rotary tables of the pass's rows [N, head_dim / 2] (rotary models)
  // LoRA dropout (training): an adapter's input with dropout and that input's gradient, each room
  // for [N, the widest adapted input]; the masks are recomputed in backward.
  float lora_dropout = 0.0f;
  Tensor lora_x, lora_dx;
  bool without_adapters = false;  // the base model alone (ForwardOptions::without_adapters)
  // The pass's `seqs` sequences are sequences seq_offset.. of a larger batch (a micro-batch of an
  // optimizer step): every dropout mask is that batch's, so accumulation and data-parallel ranks
  // drop what one pass over the whole batch would.
  int64_t seqs = 1, seq_offset = 0;
  // Batch-invariant passes: weights read from these f16 / bf16 copies (by parameter index; an
  // undefined entry reads the f32 value). Transformer::set_decode_weights.
  const std::vector<Tensor>* half_weights = nullptr;

  // The seed of dropout site `site` of `layer` (-1: the embeddings).
  uint64_t site_seed(int64_t layer, int site) const;
  // The mask offset of a tensor of the pass (its elements per sequence times seq_offset).
  uint64_t mask_offset(const Tensor& t) const {
    return static_cast<uint64_t>(seq_offset) * static_cast<uint64_t>(t.numel() / seqs);
  }
};

struct Embedding {
  int tok = -1, pos = -1;  // pos: the learned position table, -1 for rotary models
  int64_t dim = 0;

  // out[B,T,C]; positions (I32, optional) default to pos_offset + t.
  void forward(const ParameterSet& P, const Tensor& out, const Tensor& tokens, const Tensor& positions,
               int64_t pos_offset = 0) const;
  void backward(ParameterSet& P, const Tensor& dout, const Tensor& tokens, const Tensor& positions,
                int64_t pos_offset = 0) const;
};

// Where a Linear sits: its layer, and which of the layer's dropout sites its LoRA dropout uses.
struct LinearSite {
  int64_t layer = 0;
  int site = 0;
};

struct Linear {
  int weight = -1, bias = -1;
  int64_t in = 0, out = 0;
  int lora_a = -1, lora_b = -1;  // the adapter, when the plan gives this Linear one
  ops::LoraShape lora;
  LinearSite site;

  // Registers `name`.weight [out, in] (and `name`.bias [out]) in P, and the plan's adapter for
  // `name` (`name`.lora_A, `name`.lora_B), if any.
  static Linear add(ParameterSet& P, const std::string& name, int64_t in, int64_t out, bool bias, LinearSite site,
                    const AdapterPlan& plan);
  // Registers the plan's adapter for `name`, if any (a tied head adapts the embedding's matrix).
  void add_adapter(ParameterSet& P, const std::string& name, const AdapterPlan& plan);
  // y[N,out] = x[N,in] W^T (+ b) (+ the adapter's scaling (drop(x) A^T) B^T).
  void forward(const ParameterSet& P, const Tensor& y, const Tensor& x, const Pass& pass) const;
  // dx (written or accumulated, skipped when undefined), and the trainable dW, db, dA, dB (accumulated).
  void backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, InputGrad mode,
                const Pass& pass) const;
};

struct NormActs {
  Tensor out, mean, rstd;  // mean: LayerNorm only
};

struct Norm {
  NormKind kind = NormKind::LayerNorm;
  int weight = -1, bias = -1;
  float eps = 1e-5f;
  int64_t dim = 0;

  static Norm add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer);
  void forward(const ParameterSet& P, const NormActs& a, const Tensor& x) const;
  void backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, const NormActs& a,
                InputGrad mode) const;
};

struct AttentionActs {
  Tensor qkv_raw;  // [B,T,(NH + 2 NKV) HS] the projection before the query/key norms (with them only)
  Tensor qk_rstd;  // [B,T,NH + NKV] their statistics
  Tensor qkv;    // [B,T,(NH + 2 NKV) HS] what attention reads: normed and rotated
  Tensor stats;  // [B,NH,T,2] (batch passes)
  Tensor y;      // [B,T,NH*HS], the heads' outputs before the output projection
  Tensor proj;   // [B,T,C]
};

// Gradient buffers one block's backward needs (shared by every block).
struct BlockGrads {
  Tensor dbranch;  // [N,C] a residual branch's output gradient (after its dropout)
  Tensor dnorm;    // [N,C] the gradient of a norm's output
  Tensor dy;       // [N,NH*HS]
  Tensor dqkv;     // [N,(NH + 2 NKV) HS]
  Tensor dhidden;  // [N,mlp hidden]: GELU's in place through the activation; SwiGLU's gate | up
  Tensor dact;     // [N,mlp width] SwiGLU's activation gradient
};

struct Attention {
  Linear qkv, proj;
  ops::AttentionShape shape{};
  int q_norm = -1, k_norm = -1;  // Qwen3's per-head RMSNorm weights [head_dim]
  float qk_norm_eps = 1e-6f;
  bool rope = false;              // rotary positions on the query and key heads

  static Attention add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer,
                       const AdapterPlan& plan);

  // acts.proj = proj(attention(qkv(x))); dropout on the probabilities while training.
  void forward(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass,
               int64_t layer) const;
  // dx (written) from d(acts.proj).
  void backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x, const AttentionActs& a,
                const BlockGrads& g, const Pass& pass, int64_t layer) const;
  // The two halves: acts.y (the heads' outputs) from x, and dx (written) from g.dy = d(acts.y).
  // The output projection `proj` is then the caller's (the block's, on a subset of rows for a
  // classifier's last block: model/transformer.h, PooledTail).
  void attend(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass, int64_t layer) const;
  void attend_backward(ParameterSet& P, const Tensor& dx, const Tensor& x, const AttentionActs& a,
                       const BlockGrads& g, const Pass& pass, int64_t layer) const;
  uint64_t probabilities_offset(const Pass& pass, const AttentionActs& a) const;
};

struct MlpActs {
  Tensor hidden;  // [N, mlp width] before the activation (SwiGLU: [N, 2 x width], gate | up)
  Tensor act;     // [N, mlp width] after it
  Tensor proj;    // [N, C]
};

struct Mlp {
  MlpKind kind = MlpKind::GeluTanh;
  Linear fc, proj;  // SwiGLU: fc is the fused gate | up projection

  static Mlp add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer,
                 const AdapterPlan& plan);

  void forward(const ParameterSet& P, const MlpActs& a, const Tensor& x, const Pass& pass) const;
  // dx (written) from d(acts.proj).
  void backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x, const MlpActs& a,
                const BlockGrads& g, const Pass& pass) const;
};

}  // namespace gptrain
