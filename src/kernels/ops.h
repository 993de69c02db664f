// The single dispatch point between the model and the backends. Each front function checks
// shapes and devices, then calls the backend that holds the tensors (MLX style: front function,
// then primitive, then one file per backend). An undefined Tensor means "absent": no bias, or a
// gradient nobody wants (a frozen parameter), which the backend then skips entirely.
//
// Shape legend: B batch, T time, C channels, V vocab, NH heads, HS head size, N rows.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/params.h"
#include "tensor/tensor.h"

namespace gptrain::ops {

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

// out[B,T,C] = wte[V,C][tokens] + wpe[P,C][pos_offset + t]; tokens has B*T ids in [0, V).
void embedding_forward(const Tensor& out, std::span<const int32_t> tokens, const Tensor& wte,
                       const Tensor& wpe, int64_t pos_offset = 0);
void embedding_backward(const Tensor& dwte, const Tensor& dwpe, const Tensor& dout,
                        std::span<const int32_t> tokens, int64_t pos_offset = 0);

// out = inp * mask (out may be inp). p = 0 copies.
void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed);
void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed);

// out[N,C], mean[N], rstd[N] from inp[N,C] (any leading shape flattened to N rows).
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd);

// out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC]
void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);
void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight);

// out[B,T,C] and stats[B,NH,T,2] (per query row: softmax maximum, reciprocal sum) from qkv[B,T,3C];
// the backward recomputes the attention probabilities from qkv and stats.
void attention_forward(const Tensor& out, const Tensor& stats, const Tensor& qkv, int64_t n_head,
                       float dropout_p = 0.0f, uint64_t seed = 0);
void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& stats,
                        int64_t n_head, float dropout_p = 0.0f, uint64_t seed = 0);

// Appends the k and v parts of qkv[B,Tn,3C] to the caches [B,max_T,C] at rows past..past+Tn-1,
// then attends the new queries against positions 0..past+t: out[B,Tn,C].
void attention_decode_forward(const Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                              int64_t n_head, int64_t past);

void gelu_forward(const Tensor& out, const Tensor& inp);
void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout);

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b);
void residual_backward(const Tensor& da, const Tensor& db, const Tensor& dout);

struct CrossEntropyResult {
  double loss;        // mean over counted rows; 0 when every target is ignored (never NaN)
  int64_t n_counted;  // rows whose target is not ignore_index
};
// logits[N,V], targets N ids in [0,V) or ignore_index; writes losses[N] and lse[N].
CrossEntropyResult cross_entropy_forward(const Tensor& losses, const Tensor& lse,
                                         const Tensor& logits, std::span<const int32_t> targets,
                                         int32_t ignore_index = -100);
// Gradient of the mean loss (scaled by dloss) into dlogits, which may be logits itself.
// With every target ignored the gradient is all zeros.
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            std::span<const int32_t> targets, float dloss = 1.0f,
                            int32_t ignore_index = -100);

// out[B,C] from inp[B,T,C] at the last / first position or the mean over T.
void pool_forward(const Tensor& out, const Tensor& inp, kernels::PoolMode mode);
void pool_backward(const Tensor& dinp, const Tensor& dout, kernels::PoolMode mode);

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const kernels::AdamWParams& params);

double sum_squares(const Tensor& x);
void scale_(const Tensor& x, float factor);

}  // namespace gptrain::ops
