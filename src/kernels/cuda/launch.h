// Host-side launchers of the CUDA kernels (kernels.cu), f32, on the default stream; pointers are
// device memory. Semantics are those of kernels/params.h, as every backend's. No CUDA header
// here, so the backend class (backend.cpp) compiles with the host compiler.
#pragma once

#include <cstdint>

#include "kernels/params.h"
#include "kernels/stochastic_rounding.h"

namespace gptrain::kernels::cuda {

// The attention kernels hold a head row in one warp's registers (8 floats a lane): head sizes up
// to this (Llama's and Qwen3's are 64 and 128). The backend refuses larger ones by name.
inline constexpr int64_t kMaxHeadSize = 256;

void embedding_forward(float* out, const int32_t* tokens, const int32_t* positions, const float* wte,
                       const float* wpe, const EmbeddingParams& p);
void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, const int32_t* positions,
                        const EmbeddingParams& p);
void dropout_forward(float* out, const float* inp, const DropoutParams& p);  // out may alias inp
void dropout_backward(float* dinp, const float* dout, const DropoutParams& p);
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       const LayerNormParams& p);
void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, const LayerNormParams& p);
// out[N,OC] = inp[N,IC] @ weight^T + bias, each row on its own (a dot product per output in
// index order): the batch-invariant product, and the one that reads f16/bf16 weights
// (weight_kind 0 f32, 1 f16, 2 bf16).
void matmul_rowwise(float* out, const float* inp, const void* weight, int weight_kind, const float* bias,
                    const MatmulParams& p);
// dbias[OC] += column sums of dout[N,OC], rows in order (deterministic).
void column_sums_add(float* dbias, const float* dout, int64_t N, int64_t OC);
// Causal grouped-query attention (head size up to 256); the backward needs dsum[B*NH*T] of scratch.
void attention_forward(float* out, float* stats, const float* qkv, const AttentionParams& p);
void attention_backward(float* dqkv, float* dsum, const float* dout, const float* qkv, const float* stats,
                        const AttentionParams& p);
void attention_decode_forward(float* out, const float* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p);
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, const RmsNormParams& p);
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, const RmsNormParams& p);
void qk_norm_forward(float* out, float* rstd, const float* inp, const float* q_weight, const float* k_weight,
                     const QkNormParams& p);
void qk_norm_backward(float* dinp, float* dq_weight, float* dk_weight, const float* dout, const float* inp,
                      const float* q_weight, const float* k_weight, const float* rstd, const QkNormParams& p);
void rope_table(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                const RopeTableParams& p);
void rope_forward(float* qkv, const float* cos_t, const float* sin_t, const RopeParams& p);
void rope_backward(float* dqkv, const float* cos_t, const float* sin_t, const RopeParams& p);
void swiglu_forward(float* out, const float* inp, const SwigluParams& p);
void swiglu_backward(float* dinp, const float* inp, const float* dout, const SwigluParams& p);
// LoRA: h and dh are scratch of N * S * R floats.
void lora_forward(float* out, float* h, const float* inp, const float* A, const float* B, const LoraParams& p);
void lora_backward(float* dinp, float* dA, float* dB, float* h, float* dh, const float* dout, const float* inp,
                   const float* A, const float* B, const LoraParams& p);
void lora_merge(float* weight, const float* A, const float* B, const LoraParams& p);
void pool_forward(float* out, const float* inp, const PoolParams& p);
void pool_backward(float* dinp, const float* dout, const PoolParams& p);
void gather_rows_forward(float* out, const float* inp, const int32_t* rows, const GatherRowsParams& p);
void gelu_forward(float* out, const float* inp, const GeluParams& p);
void gelu_backward(float* dinp, const float* inp, const float* dout, const GeluParams& p);
void residual_forward(float* out, const float* a, const float* b, const ResidualParams& p);
void residual_backward(float* da, float* db, const float* dout, const ResidualParams& p);
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                           const CrossEntropyParams& p);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                            const float* dloss, const CrossEntropyParams& p);
void adamw_step(float* param, const float* grad, float* m, float* v, const AdamWParams& p);
// The sum of squares in fixed-size chunks (partial: sum_squares_chunks(n) doubles of scratch),
// summed in chunk order on the host.
int64_t sum_squares_chunks(int64_t n);
double sum_squares(const float* x, int64_t n, double* partial);
void scale(float* x, float factor, int64_t n);

// cuBLASLt (backend.cpp): column-major D[m,n] = op(A) op(B) + beta D, with an optional bias[m]
// added to every column; A, B, D and the bias all of `element`'s type, float32 accumulation.
// Row-major tensors are the column-major transposes; the callers do that bookkeeping.
enum class GemmType { F32, BF16 };
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B,
          int64_t ldb, void* D, int64_t ldd, float beta, const void* bias, GemmType element = GemmType::F32);

// The bf16 backend's conversions (bf16_kernels.cu), bit for bit tensor/dtype.h's.
void widen_bf16(float* dst, const uint16_t* src, int64_t n);
void round_bf16(uint16_t* dst, const float* src, int64_t n);  // to nearest, ties to even
void round_bf16_stochastic(uint16_t* dst, const float* src, int64_t n, const StochasticRounding& rounding);

}  // namespace gptrain::kernels::cuda
