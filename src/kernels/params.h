// The op interface shared by every backend: one typed parameter struct per op. Each backend
// (kernels/ref: scalar ground truth in any precision, kernels/cpu: OpenMP + OpenBLAS, later
// kernels/cuda) implements <op>_forward / <op>_backward with the same argument order: outputs,
// inputs, cached intermediates, params. Backward functions ACCUMULATE (+=) into every parameter
// gradient they produce and skip any gradient whose pointer is null, so frozen parameters cost
// no gradient work. The gradient of an input activation is accumulated or written as the caller
// asks (InputGrad): writing needs no zero-filled buffer, accumulating adds a residual branch.
//
// Shape legend: B batch, T time, C channels, V vocab, NH query heads, NKV key/value heads, HS head
// size, N rows (B*T).
#pragma once

#include <cstdint>

namespace gptrain::kernels {

// Every op of the interface. The op harness (tests/kernels) fails when one of these lacks a
// backend-vs-reference case or a finite-difference gradient check.
inline constexpr const char* kOpNames[] = {"embedding",     "dropout", "layernorm",        "matmul",
                                           "attention",     "gelu",    "residual",         "cross_entropy",
                                           "pool",          "adamw",   "attention_decode", "gather_rows",
                                           "rmsnorm",       "qk_norm", "rope",             "rope_table",
                                           "swiglu",        "lora",    "lora_merge"};
// Ops without a backward to check: inference-only, a table of constants, or a weight update.
inline constexpr const char* kForwardOnlyOps[] = {"attention_decode", "gather_rows", "rope_table", "lora_merge"};

// How a backward op delivers the gradient of its input activation: added to what the buffer
// holds (a residual stream that other branches also feed), or written over it.
enum class InputGrad : uint8_t { Accumulate, Write };

// out[N,C] = wte[tokens[n], :] + wpe[position(n), :] with position(n) = positions[n] when a
// positions array is given (decoding several sequences at once), else pos_offset + n % T. Without
// a position table (n_positions = 0, rotary models) out is the token embedding alone.
struct EmbeddingParams {
  int64_t B, T, C, V;
  int64_t n_positions;     // rows of wpe; 0: no wpe
  int64_t pos_offset = 0;  // first position (KV-cache decoding continues from here)
};

// out = inp * keep / (1 - p), keep[i] = uniform(seed, i) >= p. The mask is a pure function of
// (seed, i), so backward regenerates it instead of storing it.
struct DropoutParams {
  int64_t n;
  float p;
  uint64_t seed;
  InputGrad dinp = InputGrad::Accumulate;
  uint64_t offset = 0;  // the mask of elements [offset, offset + n) of a larger tensor
};

// out[N,C] = (inp - mean) * rstd * weight (+ bias), biased variance, rstd = 1/sqrt(var + eps).
struct LayerNormParams {
  int64_t N, C;
  float eps = 1e-5f;
  InputGrad dinp = InputGrad::Accumulate;
};

// RMSNorm over rows of C (Llama, Qwen3): out = x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps),
// computed in the element type (Qwen3's norm upcasts to f32: the same for f32 models).
struct RmsNormParams {
  int64_t N, C;
  float eps = 1e-6f;
  InputGrad dinp = InputGrad::Accumulate;
};

// Qwen3's query/key norms on packed qkv[N,(NH + 2 NKV) HS]: every query head and every key head
// (a row of HS) is RMS-normalised with the weights q_weight[HS] (query heads) or k_weight[HS]
// (key heads); value heads pass through unchanged. rstd[N, NH + NKV]. Backward may run in place
// (dinp the same buffer as dout).
struct QkNormParams {
  int64_t N, NH, NKV, HS;
  float eps = 1e-6f;
  InputGrad dinp = InputGrad::Accumulate;
  constexpr int64_t qkv_width() const { return (NH + 2 * NKV) * HS; }
};

// Rotary position embedding in Hugging Face's rotate-half layout, in place on the query and key
// heads of packed qkv[N,(NH + 2 NKV) HS]: for a head row x and i < HS/2,
//   (x[i], x[i + HS/2]) <- (x[i] cos[n,i] - x[i + HS/2] sin[n,i], x[i + HS/2] cos[n,i] + x[i] sin[n,i])
// with the tables of row n's position. Value heads are untouched. Backward rotates the gradient
// back (the transpose: the same with -sin), in place.
struct RopeParams {
  int64_t N, NH, NKV, HS;
  constexpr int64_t qkv_width() const { return (NH + 2 * NKV) * HS; }
};

// The rotary tables of N rows: angle = inv_freq[i] * position(n) in the element type (as
// transformers computes it in float32), cos[n,i] and sin[n,i] of that angle; position(n) =
// positions[n] when given, else pos_offset + n % T.
struct RopeTableParams {
  int64_t N, T, half;  // half = HS / 2
  int64_t pos_offset = 0;
};

// SwiGLU (Llama, Qwen3): out[N,M] = silu(gate) * up with inp[N,2M] = gate | up (the fused
// gate_proj | up_proj rows), silu(x) = x * sigmoid(x).
struct SwigluParams {
  int64_t N, M;
  InputGrad dinp = InputGrad::Accumulate;
};

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC] (PyTorch nn.Linear layout; bias optional).
// batch_invariant: every row's result is bit-identical whatever N is and wherever the row sits
// (BLAS does not promise that: sgemv and sgemm, and sgemm for different N, round differently);
// the decode engine asks for it so that sequences decoded together give exactly the tokens each
// gives alone.
struct MatmulParams {
  int64_t N, IC, OC;
  bool batch_invariant = false;
  InputGrad dinp = InputGrad::Accumulate;
};

// A LoRA adapter on a Linear of weight [OC, IC], in S segments of its outputs (a fused q|k|v
// adapts each part on its own as the book's W_query, W_key, W_value; a part may be left out, as
// PEFT's default q_proj + v_proj):
//   out[n, col[s] + j] += scaling * sum_r (sum_i inp[n, i] A[s R + r, i]) B[seg[s] + j, r]
// for j in [0, seg[s+1] - seg[s]): A = [S R, IC] (segment s: rows [sR, (s+1)R)), B = [seg[S], R]
// (segment s: rows [seg[s], seg[s+1])), PEFT's lora_A / lora_B layouts, stacked. The segments'
// output columns are increasing and do not overlap. The forward adds to out (the base Linear
// wrote it); the backward adds to dinp, dA and dB (each skipped when null) and recomputes inp A^T.
inline constexpr int kMaxLoraSegments = 4;
struct LoraParams {
  int64_t N, IC, OC, R;  // OC: the Linear's output width (the row stride of out)
  int S = 1;
  int64_t seg[kMaxLoraSegments + 1] = {};  // rows of B: seg[0] = 0, segment s = [seg[s], seg[s+1])
  int64_t col[kMaxLoraSegments] = {};      // the first output column of each segment
  float scaling = 1.0f;
  bool batch_invariant = false;  // decode rows: each row's result independent of the others
};

// Causal self-attention over packed qkv[B,T,(NH + 2 NKV) HS]: the NH query heads, then the NKV key
// heads, then the NKV value heads, head j of each part in columns [j*HS, (j+1)*HS) of that part.
// Query head h attends with key/value head h / (NH / NKV) (grouped-query attention; NKV = NH is
// multi-head attention). out[B,T,NH*HS]; stats[B,NH,T,2] keeps each query row's softmax maximum
// and reciprocal sum, from which backward rebuilds the probabilities. Scores are scaled by
// 1/sqrt(HS); dropout (p, seed) acts on the probabilities with element index
// dropout_offset + ((b*NH + h)*T + t)*T + s (the offset places a micro-batch inside a larger batch).
struct AttentionParams {
  int64_t B, T, NH, NKV, HS;
  float dropout_p = 0.0f;
  uint64_t seed = 0;
  InputGrad dinp = InputGrad::Accumulate;
  uint64_t dropout_offset = 0;
  constexpr int64_t qkv_width() const { return (NH + 2 * NKV) * HS; }
};

// One sequence of a decode step: `rows` new positions (rows first_row.. of the step's packed qkv),
// continuing at position `past` of its caches k_cache/v_cache[max_T, NKV*HS] (one layer).
struct DecodeSeq {
  void* k_cache;
  void* v_cache;
  int64_t max_T;
  int64_t past;
  int64_t first_row;
  int64_t rows;
};

// Attention of new positions against KV caches (generation): the keys and values of the new rows
// of qkv[R,(NH + 2 NKV) HS] are appended to their sequence's caches, then new position t
// (absolute past + t) of a sequence attends to its cached positions 0..past+t. out[R,NH*HS]. No
// dropout: inference only.
struct AttentionDecodeParams {
  int64_t NH, NKV, HS;
  int64_t n_seqs;
  constexpr int64_t qkv_width() const { return (NH + 2 * NKV) * HS; }
};

// Tanh-approximated GELU (GPT-2's "gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
struct GeluParams {
  int64_t n;
  InputGrad dinp = InputGrad::Accumulate;
};

// out = a + b.
struct ResidualParams {
  int64_t n;
};

// Softmax cross-entropy per row of logits[N,V] with integer targets; a target equal to
// ignore_index contributes nothing. Forward writes losses[N] (0 where ignored) and the
// log-sum-exp lse[N] that backward reuses. Backward writes (does not accumulate)
// dlogits = (softmax(logits) - onehot(target)) * dloss[row] (dloss_scale for every row when no
// dloss array is given), zero for ignored rows; dlogits may alias logits.
struct CrossEntropyParams {
  int64_t N, V;
  int32_t ignore_index = -100;
  float dloss_scale = 1.0f;
};

// The mean loss's parts: the sum of losses[r] over counted rows (in row order, in double; 0 when no
// losses are given) and their number.
struct LossTotal {
  double sum;
  int64_t counted;
};

// Reads one vector per sequence for a classifier head: out[B,C] from inp[B,T,C] at the last
// position (the book's ch06 default), the first, or the mean over all T positions.
enum class PoolMode { Last, First, Mean };
struct PoolParams {
  int64_t B, T, C;
  PoolMode mode = PoolMode::Last;
  InputGrad dinp = InputGrad::Accumulate;
};

// out[R,C] = inp[rows[r], :] for r < R; inp has N rows (the last position of each sequence of a
// decode step).
struct GatherRowsParams {
  int64_t R, N, C;
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
  // The bf16 mode (Backend::adamw_step_mixed): the seed of the copy's stochastic rounding, and
  // where element 0 of the call sits in the flat parameter buffer (its random bits are that
  // element's).
  uint64_t rounding_seed = 0;
  uint64_t element_offset = 0;
};

}  // namespace gptrain::kernels
