// CPU backend: OpenMP across rows/heads, OpenBLAS sgemm for matrix products, explicit SIMD-friendly
// loops elsewhere. Same signatures as the reference kernels (kernels/ref) in float; semantics are
// documented on the params structs in kernels/params.h. Backward accumulates into non-null
// parameter gradients and writes or accumulates input gradients as the params say.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace gptrain::cpu {

using namespace gptrain::kernels;

void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                       const float* wpe, const EmbeddingParams& p);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        const int32_t* positions, const EmbeddingParams& p);

void dropout_forward(float* out, const float* inp, const DropoutParams& p);  // out may alias inp
void dropout_backward(float* dinp, const float* dout, const DropoutParams& p);

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, const LayerNormParams& p);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        const LayerNormParams& p);

// The batch-invariant product with F16 (bf16 false) or BF16 weights, equal bit for bit to
// matmul_forward's on the weights converted to f32.
void matmul_forward_half(float* out, const float* inp, const uint16_t* weight, bool bf16, const float* bias,
                         const MatmulParams& p);
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const MatmulParams& p);
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const MatmulParams& p);

// stats[B,NH,T,2]: each query row's softmax maximum and reciprocal sum, all the backward needs
// besides qkv (it recomputes the probabilities).
void attention_forward(float* out, float* stats, const float* qkv, const AttentionParams& p);
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* stats,
                        const AttentionParams& p);

void attention_decode_forward(float* out, const float* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p);

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, const RmsNormParams& p);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, const RmsNormParams& p);  // dinp may alias dout
void qk_norm_forward(float* out, float* rstd, const float* inp, const float* q_weight, const float* k_weight,
                     const QkNormParams& p);
void qk_norm_backward(float* dinp, float* dq_weight, float* dk_weight, const float* dout, const float* inp,
                      const float* q_weight, const float* k_weight, const float* rstd,
                      const QkNormParams& p);  // dinp may alias dout (write mode)
void rope_table(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                const RopeTableParams& p);
void rope_forward(float* qkv, const float* cos_t, const float* sin_t, const RopeParams& p);
void rope_backward(float* dqkv, const float* cos_t, const float* sin_t, const RopeParams& p);
void lora_forward(float* out, const float* inp, const float* A, const float* B, const LoraParams& p);
void lora_backward(float* dinp, float* dA, float* dB, const float* dout, const float* inp, const float* A,
                   const float* B, const LoraParams& p);
void lora_merge(float* weight, const float* A, const float* B, const LoraParams& p);
void swiglu_forward(float* out, const float* inp, const SwigluParams& p);
void swiglu_backward(float* dinp, const float* inp, const float* dout, const SwigluParams& p);

void gelu_forward(float* out, const float* inp, const GeluParams& p);
void gelu_backward(float* dinp, const float* inp, const float* dout, const GeluParams& p);  // dinp may alias dout

void residual_forward(float* out, const float* a, const float* b, const ResidualParams& p);
void residual_backward(float* da, float* db, const float* dout, const ResidualParams& p);

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                           const CrossEntropyParams& p);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, const float* dloss, const CrossEntropyParams& p);
LossTotal loss_total(const float* losses, const int32_t* targets, const CrossEntropyParams& p);

void pool_forward(float* out, const float* inp, const PoolParams& p);
void pool_backward(float* dinp, const float* dout, const PoolParams& p);
void gather_rows_forward(float* out, const float* inp, const int32_t* rows, const GatherRowsParams& p);

void adamw_step(float* param, const float* grad, float* m, float* v, const AdamWParams& p);

// Sum of squares in double (for global-norm clipping) and in-place scaling.
double sum_squares(const float* x, int64_t n);
void scale(float* x, float factor, int64_t n);

}  // namespace gptrain::cpu
