// The op interface shared by every backend: one typed parameter struct per op. Each backend
// (kernels/ref: scalar ground truth, kernels/cpu: OpenMP + OpenBLAS, kernels/cuda) implements
// <op>_forward / <op>_backward with the same argument order: outputs, inputs, cached
// intermediates, params. Backward functions ACCUMULATE (+=) into every gradient they produce and
// skip any gradient whose pointer is null, so frozen parameters cost no gradient work.
//
// Shape legend: B batch, T time, C channels, V vocab, NH heads, HS head size, N rows (B*T).
#pragma once

#include <cstdint>

namespace gptrain::kernels {

// Every op of the interface. The op harness (tests/kernels) fails when one of these lacks a
// backend-vs-reference case or a finite-difference gradient check.
inline constexpr const char* kOpNames[] = {"embedding", "dropout", "layernorm", "matmul", "attention",
                                           "gelu", "residual", "cross_entropy", "pool", "adamw",
                                           "attention_decode"};
// Inference-only ops: they need a backend case but have no backward to check.
inline constexpr const char* kForwardOnlyOps[] = {"attention_decode"};

// out[B,T,C] = wte[tokens[b,t], :] + wpe[pos_offset + t, :]
struct EmbeddingParams {
  int64_t B, T, C, V;
  int64_t n_positions;     // rows of wpe
  int64_t pos_offset = 0;  // first position (KV-cache decoding continues from here)
};

// out = inp * keep / (1 - p), keep[i] = uniform(seed, i) >= p. The mask is a pure function of
// (seed, i), so backward regenerates it instead of storing it.
struct DropoutParams {
  int64_t n;
  float p;
  uint64_t seed;
};

// out[N,C] = (inp - mean) * rstd * weight + bias, biased variance, rstd = 1/sqrt(var + eps).
struct LayerNormParams {
  int64_t N, C;
  float eps = 1e-5f;
};

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC] (PyTorch nn.Linear layout; bias optional).
struct MatmulParams {
  int64_t N, IC, OC;
};

// Causal self-attention over packed qkv[B,T,3C] (q | k | v, each C = NH*HS wide, head h in
// columns [h*HS, (h+1)*HS)); out[B,T,C]; att[B,NH,T,T] caches the softmax probabilities (before
// dropout, zero above the diagonal). Scores are scaled by 1/sqrt(HS); dropout (p, seed) acts on
// the probabilities with element index ((b*NH + h)*T + t)*T + s.
struct AttentionParams {
  int64_t B, T, NH, HS;
  float dropout_p = 0.0f;
  uint64_t seed = 0;
};

// Attention of new positions against a KV cache (generation). q[B,Tn,3C] holds the new positions'
// packed qkv rows (only the q part is read); k_cache/v_cache[B,max_T,C] hold keys and values of
// positions 0..past+Tn-1 (the new ones already appended). New position t (absolute past + t)
// attends to cached positions 0..past+t. out[B,Tn,C]. No dropout: inference only.
struct AttentionDecodeParams {
  int64_t B, Tn, NH, HS;
  int64_t past;   // positions already in the cache before this call
  int64_t max_T;  // rows of the cache per sequence
};

// Tanh-approximated GELU (GPT-2's "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluParams {
  int64_t n;
};

// out = a + b.
struct ResidualParams {
  int64_t n;
};

// Softmax cross-entropy per row of logits[N,V] with integer targets; a target equal to
// ignore_index contributes nothing. Forward writes losses[N] (0 where ignored) and the
// log-sum-exp lse[N] that backward reuses. Backward writes (does not accumulate)
// dlogits = (softmax(logits) - onehot(target)) * dloss[row], and may alias logits.
struct CrossEntropyParams {
  int64_t N, V;
  int32_t ignore_index = -100;
};

// Reads one vector per sequence for a classifier head: out[B,C] from inp[B,T,C] at the last
// position (the book's ch06 default), the first, or the mean over all T positions.
enum class PoolMode { Last, First, Mean };
struct PoolParams {
  int64_t B, T, C;
  PoolMode mode = PoolMode::Last;
};

// torch.optim.AdamW, single-tensor path (PyTorch 2.x), in PyTorch's float32 order of operations:
// p *= 1 - lr*wd; m = lerp(m, g, 1 - beta1); v = v*beta2 + (1 - beta2)*g*g;
// p -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps). step counts from 1.
struct AdamWParams {
  int64_t n;
  double lr;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;
};

}  // namespace gptrain::kernels
