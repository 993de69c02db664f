// The single dispatch point between the model and the backends. Each front function checks
// shapes, element types and devices, then calls the backend that holds the tensors (MLX style:
// front function, then primitive, then one file per backend; kernels/backend.h): F32 tensors on
// the CPU run the OpenMP + OpenBLAS kernels, F64 tensors the scalar reference kernels. An
// undefined Tensor means "absent": no bias, or a gradient nobody wants (a frozen parameter),
// which the backend then skips entirely. Ids (tokens, targets, positions, rows) are I32 tensors
// on the same device.
//
// Shape legend: B batch, T time, C channels, V vocab, NH query heads, NKV key/value heads, HS
// head size, N rows.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/params.h"
#include "tensor/tensor.h"

namespace gptrain::ops {

using kernels::InputGrad;

// With the environment variable GPTRAIN_PROFILE set, every op records its calls and wall time.
struct ProfileEntry {
  std::string op;
  int64_t calls;
  double seconds;
};
std::vector<ProfileEntry> profile();
void reset_profile();

// Threads used by every CPU kernel and by BLAS (one OpenMP pool; 0 = all cores).
void set_num_threads(int threads);
int num_threads();

// out[B,T,C] = wte[V,C][tokens] + wpe[P,C][position]; tokens has B*T ids in [0, V); positions
// (B*T ids, optional) default to pos_offset + t. Without wpe (undefined) out is wte[tokens].
void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& positions, const Tensor& wte,
                       const Tensor& wpe, int64_t pos_offset = 0);
void embedding_backward(const Tensor& dwte, const Tensor& dwpe, const Tensor& dout, const Tensor& tokens,
                        const Tensor& positions, int64_t pos_offset = 0);

// out = inp * mask (out may be inp). p = 0 copies. `offset`: inp is the elements [offset, ...) of a
// larger tensor (a micro-batch of a bigger batch), whose mask it gets.
void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset = 0);
void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed,
                      InputGrad mode = InputGrad::Accumulate, uint64_t offset = 0);

// out[N,C], mean[N], rstd[N] from inp[N,C] (any leading shape flattened to N rows); bias optional.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                        const Tensor& inp, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                        InputGrad mode = InputGrad::Accumulate);

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC]; batch_invariant: see MatmulParams.
void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    bool batch_invariant = false);
// The decode product with weight [OC, IC] in F16 or BF16 (out, inp, bias f32): batch-invariant,
// each output equal bit for bit to matmul_forward(batch_invariant) on the weight converted to f32.
void matmul_forward_half(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);
void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                     const Tensor& inp, const Tensor& weight, InputGrad mode = InputGrad::Accumulate);

// A LoRA adapter on a Linear (kernels/params.h, LoraParams): out[N,OC] += scaling * (inp A_s^T) B_s^T
// into the output columns of each segment s, A [S*R, IC], B [sum of widths, R] (segments in B's
// row order, their columns increasing and disjoint).
struct LoraSegment {
  int64_t col = 0, width = 0;  // output columns [col, col + width)
};
struct LoraShape {
  std::vector<LoraSegment> segments;
  float scaling = 1.0f;
};
void lora_forward(const Tensor& out, const Tensor& inp, const Tensor& A, const Tensor& B, const LoraShape& shape,
                  bool batch_invariant = false);
// weight[OC, IC] += the adapter's scaling B_s A_s into the rows of each segment: the merged Linear
// computes what the base with the adapter did.
void lora_merge(const Tensor& weight, const Tensor& A, const Tensor& B, const LoraShape& shape);
// Adds to dinp (after the base Linear's backward), dA and dB; each skipped when undefined.
void lora_backward(const Tensor& dinp, const Tensor& dA, const Tensor& dB, const Tensor& dout, const Tensor& inp,
                   const Tensor& A, const Tensor& B, const LoraShape& shape);

// The head layout of an attention layer (kernels/params.h, AttentionParams).
struct AttentionShape {
  int64_t n_heads, n_kv_heads, head_dim;
  int64_t qkv_width() const { return (n_heads + 2 * n_kv_heads) * head_dim; }
};

// out[B,T,NH*HS] and stats[B,NH,T,2] (per query row: softmax maximum, reciprocal sum) from
// qkv[B,T,(NH+2NKV)*HS]; the backward recomputes the attention probabilities from qkv and stats.
// dropout_offset: the probabilities' mask element offset (kernels/params.h, AttentionParams).
void attention_forward(const Tensor& out, const Tensor& stats, const Tensor& qkv, const AttentionShape& shape,
                       float dropout_p = 0.0f, uint64_t seed = 0, uint64_t dropout_offset = 0);
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& stats,
                        const AttentionShape& shape, float dropout_p = 0.0f, uint64_t seed = 0,
                        InputGrad mode = InputGrad::Accumulate, uint64_t dropout_offset = 0);

// One sequence of a decode step: its caches of one layer ([max_T, NKV*HS] each), the positions
// already in them, and how many of the step's rows (consecutive, in sequence order) are its new
// positions.
struct DecodeSequence {
  Tensor k_cache, v_cache;
  int64_t past = 0;
  int64_t rows = 0;
};
// Appends the keys and values of qkv[R, (NH+2NKV)*HS] to each sequence's caches, then attends the
// new queries against positions 0..past+t of their own sequence: out[R, NH*HS].
void attention_decode_forward(const Tensor& out, const Tensor& qkv, std::span<const DecodeSequence> sequences,
                              const AttentionShape& shape);

// RMSNorm: out[N,C], rstd[N] from inp[N,C] (any leading shape flattened to N rows). dinp may be
// dout itself (the gradient replaces it in place).
void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight, float eps);
void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight, const Tensor& rstd, InputGrad mode = InputGrad::Accumulate);

// Query/key head norms of packed qkv[N,(NH+2NKV)*HS] (kernels/params.h, QkNormParams): out and
// rstd[N, NH+NKV] from inp; backward may run in place (dinp = dout, write mode).
void qk_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& q_weight,
                     const Tensor& k_weight, const AttentionShape& shape, float eps);
void qk_norm_backward(const Tensor& dinp, const Tensor& dq_weight, const Tensor& dk_weight, const Tensor& dout,
                      const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight, const Tensor& rstd,
                      const AttentionShape& shape, InputGrad mode = InputGrad::Accumulate);

// Rotary tables cos/sin[N, HS/2] of N rows at positions (I32 [N], optional: pos_offset + n % T)
// from inv_freq[HS/2]; then the rotation of qkv's query and key heads, in place, and back.
void rope_table(const Tensor& cos, const Tensor& sin, const Tensor& inv_freq, const Tensor& positions, int64_t T,
                int64_t pos_offset = 0);
void rope_forward(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const AttentionShape& shape);
void rope_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin, const AttentionShape& shape);

// out[N,M] = silu(gate) * up from inp[N,2M] = gate | up.
void swiglu_forward(const Tensor& out, const Tensor& inp);
void swiglu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout, InputGrad mode = InputGrad::Accumulate);

void gelu_forward(const Tensor& out, const Tensor& inp);
// dinp may be dout itself (the gradient replaces it in place).
void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout, InputGrad mode = InputGrad::Accumulate);

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b);
void residual_backward(const Tensor& da, const Tensor& db, const Tensor& dout);

struct CrossEntropyResult {
  double loss;        // mean over counted rows; 0 when every target is ignored (never NaN)
  int64_t n_counted;  // rows whose target is not ignore_index
};
// logits[N,V], targets: N ids in [0,V) or ignore_index; writes losses[N] and lse[N].
CrossEntropyResult cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                         const Tensor& targets, int32_t ignore_index = -100);
// Gradient of the mean loss (scaled by dloss) into dlogits, which may be logits itself.
// With every target ignored the gradient is all zeros.
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            float dloss = 1.0f, int32_t ignore_index = -100);

// The gradient of sum_r row_dloss[r] * losses[r] (row_dloss: one weight per row, any sign; a DPO
// objective's per-token weights) into dlogits, which may be logits itself. Ignored rows get zeros.
void cross_entropy_backward_rows(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                                 const Tensor& targets, const Tensor& row_dloss, int32_t ignore_index = -100);

// out[B,C] from inp[B,T,C] at the last / first position or the mean over T.
void pool_forward(const Tensor& out, const Tensor& inp, kernels::PoolMode mode);
void pool_backward(const Tensor& dinp, const Tensor& dout, kernels::PoolMode mode,
                   InputGrad mode_dinp = InputGrad::Accumulate);
// out[R,C] = inp[rows[r], :].
void gather_rows_forward(const Tensor& out, const Tensor& inp, const Tensor& rows);

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const kernels::AdamWParams& params);
// The bf16 mode's AdamW (Backend::adamw_step_mixed): master, m and v float32, grad and copy bf16 on
// one device; updates master, m and v, and writes copy by stochastic rounding.
void adamw_step_mixed(const Tensor& master, const Tensor& copy, const Tensor& grad, const Tensor& m, const Tensor& v,
                      const kernels::AdamWParams& params);

double sum_squares(const Tensor& x);
void scale_(const Tensor& x, float factor);

}  // namespace gptrain::ops
