// Host-side launchers of the CUDA kernels (kernels.cu), on the default stream; pointers are device
// memory. Semantics are those of kernels/params.h, as every backend's. Those templated on T come
// for T = float and T = uint16_t (bf16 bits): the same float32 arithmetic, bf16 loads exact and
// stores rounded once (common.cuh), statistics float32. No CUDA header here, so the backend
// classes (backend.cpp, bf16_backend.cpp) compile with the host compiler.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/params.h"
#include "kernels/stochastic_rounding.h"

namespace gptrain::kernels {
class Backend;  // kernels/backend.h (C++20; this header is read by nvcc too)
}

namespace gptrain::kernels::cuda {

// The attention kernels hold a head row in one warp's registers (8 floats a lane): head sizes up
// to this (Llama's and Qwen3's are 64 and 128). The backend refuses larger ones by name.
inline constexpr int64_t kMaxHeadSize = 256;

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* positions, const T* wte, const T* wpe,
                       const EmbeddingParams& p);
// embedding_kernels.cu: dout's rows grouped by id (a stable sort), each id's rows summed in row
// order onto the old gradient, one store; `scratch` of embedding_backward_scratch_bytes(p).
size_t embedding_backward_scratch_bytes(const EmbeddingParams& p);
template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens, const int32_t* positions,
                        const EmbeddingParams& p, void* scratch, size_t scratch_bytes);
template <class T>
void dropout_forward(T* out, const T* inp, const DropoutParams& p);  // out may alias inp
template <class T>
void dropout_backward(T* dinp, const T* dout, const DropoutParams& p);
template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias,
                       const LayerNormParams& p);
// The parameter gradients' sums over rows (column_sums.cuh) run in float32 partials of
// kColumnChunk rows, then the chunks in order: `partial` scratch of column_partials(rows, C)
// floats per sum (layernorm_backward: two, dweight's and dbias's; the sizes below).
inline constexpr int64_t kColumnChunk = 128;
inline int64_t column_chunks(int64_t rows) { return rows > 0 ? (rows + kColumnChunk - 1) / kColumnChunk : 1; }
inline int64_t column_partials(int64_t rows, int64_t C) { return column_chunks(rows) * C; }
inline int64_t layernorm_backward_partials(const LayerNormParams& p) { return 2 * column_partials(p.N, p.C); }
inline int64_t rmsnorm_backward_partials(const RmsNormParams& p) { return column_partials(p.N, p.C); }
// The query heads' sum and the key heads' take turns in one scratch.
inline int64_t qk_norm_backward_partials(const QkNormParams& p) {
  return column_partials(p.N * (p.NH > p.NKV ? p.NH : p.NKV), p.HS);
}
template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, const LayerNormParams& p, float* partial);
// out[N,OC] = inp[N,IC] @ weight^T + bias, each row on its own (a dot product per output in
// index order): the batch-invariant product, and the one that reads f16/bf16 weights
// (weight_kind 0 f32, 1 f16, 2 bf16).
template <class T>
void matmul_rowwise(T* out, const T* inp, const void* weight, int weight_kind, const T* bias, const MatmulParams& p);
// dbias[OC] += column sums of dout[N,OC] (deterministic; `partial`: column_partials(N, OC)).
template <class T>
void column_sums_add(T* dbias, const T* dout, int64_t N, int64_t OC, float* partial);
// Causal grouped-query attention (head size up to 256); the backward needs dsum[B*NH*T] of scratch.
template <class T>
void attention_forward(T* out, float* stats, const T* qkv, const AttentionParams& p);
template <class T>
void attention_backward(T* dqkv, float* dsum, const T* dout, const T* qkv, const float* stats,
                        const AttentionParams& p);
// flash_attention.cu: the same on bf16 tensor cores (WMMA, float32 accumulation, probabilities
// rounded to bf16 before their products), for head sizes 64 and 128 on 16-byte-aligned qkv and
// dout; within derived bounds of exact arithmetic, not bit-equal to the kernels above.
bool flash_attention_supported(const AttentionParams& p, const void* qkv, const void* dout);
void flash_attention_forward(uint16_t* out, float* stats, const uint16_t* qkv, const AttentionParams& p);
void flash_attention_backward(uint16_t* dqkv, float* dsum, const uint16_t* dout, const uint16_t* qkv,
                              const float* stats, const AttentionParams& p);
// The KV caches (seqs, host memory) hold T too.
template <class T>
void attention_decode_forward(T* out, const T* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p);
template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, const RmsNormParams& p);
template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      const RmsNormParams& p, float* partial);  // rmsnorm_backward_partials(p)
template <class T>
void qk_norm_forward(T* out, float* rstd, const T* inp, const T* q_weight, const T* k_weight, const QkNormParams& p);
template <class T>
void qk_norm_backward(T* dinp, T* dq_weight, T* dk_weight, const T* dout, const T* inp, const T* q_weight,
                      const T* k_weight, const float* rstd, const QkNormParams& p,
                      float* partial);  // qk_norm_backward_partials(p)
void rope_table(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                const RopeTableParams& p);
template <class T>
void rope_forward(T* qkv, const float* cos_t, const float* sin_t, const RopeParams& p);
template <class T>
void rope_backward(T* dqkv, const float* cos_t, const float* sin_t, const RopeParams& p);
template <class T>
void swiglu_forward(T* out, const T* inp, const SwigluParams& p);
template <class T>
void swiglu_backward(T* dinp, const T* inp, const T* dout, const SwigluParams& p);
// head_kernels.cu. LoRA: h and dh are float32 scratch of N * S * R.
template <class T>
void lora_forward(T* out, float* h, const T* inp, const T* A, const T* B, const LoraParams& p);
template <class T>
void lora_backward(T* dinp, T* dA, T* dB, float* h, float* dh, const T* dout, const T* inp, const T* A, const T* B,
                   const LoraParams& p);
template <class T>
void lora_merge(T* weight, const T* A, const T* B, const LoraParams& p);
template <class T>
void pool_forward(T* out, const T* inp, const PoolParams& p);
template <class T>
void pool_backward(T* dinp, const T* dout, const PoolParams& p);
template <class T>
void gather_rows_forward(T* out, const T* inp, const int32_t* rows, const GatherRowsParams& p);
template <class T>
void gelu_forward(T* out, const T* inp, const GeluParams& p);
template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, const GeluParams& p);
template <class T>
void residual_forward(T* out, const T* a, const T* b, const ResidualParams& p);
template <class T>
void residual_backward(T* da, T* db, const T* dout, const ResidualParams& p);
template <class T>
void cross_entropy_forward(float* losses, float* lse, const T* logits, const int32_t* targets,
                           const CrossEntropyParams& p);
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const float* lse, const int32_t* targets,
                            const float* dloss, const CrossEntropyParams& p);
void adamw_step(float* param, const float* grad, float* m, float* v, const AdamWParams& p);
// The bf16 mode's: bf16 gradients, float32 masters and moments, the bf16 copy written by
// stochastic rounding in the same pass (the arithmetic adamw_step's, on the widened gradient).
void adamw_step_mixed(float* master, uint16_t* copy, const uint16_t* grad, float* m, float* v, const AdamWParams& p);
// The sum of squares in fixed-size chunks (partial: sum_squares_chunks(n) doubles of scratch),
// summed in chunk order on the host.
int64_t sum_squares_chunks(int64_t n);
template <class T>
double sum_squares(const T* x, int64_t n, double* partial);
template <class T>
void scale(T* x, float factor, int64_t n);

// cuBLASLt (backend.cpp): column-major D[m,n] = op(A) op(B) + beta D, with an optional bias[m]
// added to every column; A, B, D and the bias all of `element`'s type, float32 accumulation.
// Row-major tensors are the column-major transposes; the callers do that bookkeeping.
enum class GemmType { F32, BF16 };
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B,
          int64_t ldb, void* D, int64_t ldd, float beta, const void* bias, GemmType element = GemmType::F32);

// Every op of the bf16 mode by widening alone (bf16_backend.cpp; not registered): what the
// bf16 kernels of cuda-bf16 must equal bit for bit (tests/kernels/cuda_bf16_test.cpp).
const Backend& widened_bf16_backend();

// The bf16 backend's conversions (bf16_kernels.cu), bit for bit tensor/dtype.h's.
void widen_bf16(float* dst, const uint16_t* src, int64_t n);
void round_bf16(uint16_t* dst, const float* src, int64_t n);  // to nearest, ties to even
void round_bf16_stochastic(uint16_t* dst, const float* src, int64_t n, const StochasticRounding& rounding);

}  // namespace gptrain::kernels::cuda
