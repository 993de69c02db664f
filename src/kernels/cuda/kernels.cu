// The CUDA kernels of the f32 backend (launch.h). Every reduction has a fixed shape: a row's sum
// is one warp's or one block's tree in lane order, a column's sum runs over fixed chunks of rows
// in order and then the chunks in order (column_sums.cuh), and a global sum is fixed-size chunks
// summed in chunk order, so results do not depend on scheduling (docs/DESIGN.md §2,
// determinism). Grid-stride loops keep any size within the launch limits.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"
#include "kernels/dropout_mask.h"

namespace gptrain::kernels::cuda {

namespace {

template <class T>
__global__ void dropout_forward_kernel(T* out, const T* inp, int64_t n, DeviceMask m) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = load(inp + i);
    store(out + i, m.active ? x * mask_factor(m, static_cast<uint64_t>(i)) : x);
  }
}

template <class T>
__global__ void dropout_backward_kernel(T* dinp, const T* dout, int64_t n, bool write, DeviceMask m) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float d = load(dout + i);
    const float g = m.active ? d * mask_factor(m, static_cast<uint64_t>(i)) : d;
    store(dinp + i, write ? g : load(dinp + i) + g);
  }
}

// Causal grouped-query attention without the T x T matrix: one warp per query row (forward, and
// the backward's dq) or per key row (the backward's dk, dv), the lanes across the head size, the
// scores recomputed where needed. Forward: an online maximum and sum over the keys, then the
// output with the row's final statistics. A lane holds at most kMaxHeadLanes dimensions.

struct AttentionLayout {
  int64_t T, NH, NKV, HS, W, group;
  __device__ int64_t q(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * W + h * HS; }
  __device__ int64_t k(int64_t b, int64_t s, int64_t kh) const { return (b * T + s) * W + (NH + kh) * HS; }
  __device__ int64_t v(int64_t b, int64_t s, int64_t kh) const { return (b * T + s) * W + (NH + NKV + kh) * HS; }
};

AttentionLayout attention_layout(const AttentionParams& p) {
  return AttentionLayout{p.T, p.NH, p.NKV, p.HS, p.qkv_width(), p.NH / p.NKV};
}

template <class T>
__global__ void attention_forward_kernel(T* out, float* stats, const T* qkv, AttentionParams p,
                                         AttentionLayout L, DeviceMask mask, float scale) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // (b, h, t)
  if (row >= p.B * p.NH * p.T) return;
  const int lane = threadIdx.x % 32;
  const int64_t t = row % p.T, h = (row / p.T) % p.NH, b = row / (p.T * p.NH), kh = h / L.group;
  const T* q = qkv + L.q(b, t, h);
  float m = -INFINITY, l = 0.0f;
  for (int64_t s = 0; s <= t; ++s) {
    const float score = head_dot(q, qkv + L.k(b, s, kh), p.HS) * scale;
    const float m_new = fmaxf(m, score);
    l = l * expf(m - m_new) + expf(score - m_new);
    m = m_new;
  }
  const float inv = 1.0f / l;
  float acc[kMaxHeadLanes] = {};
  const uint64_t drop_row = static_cast<uint64_t>(row) * static_cast<uint64_t>(p.T);
  for (int64_t s = 0; s <= t; ++s) {
    float w = expf(head_dot(q, qkv + L.k(b, s, kh), p.HS) * scale - m) * inv;
    if (mask.active) w *= mask_factor(mask, drop_row + static_cast<uint64_t>(s));
    const T* v = qkv + L.v(b, s, kh);
    for (int j = 0; j < kMaxHeadLanes; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < p.HS) acc[j] += w * load(v + i);
    }
  }
  T* o = out + (b * p.T + t) * (p.NH * p.HS) + h * p.HS;
  for (int j = 0; j < kMaxHeadLanes; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < p.HS) store(o + i, acc[j]);
  }
  if (lane == 0) {
    stats[row * 2] = m;
    stats[row * 2 + 1] = inv;
  }
}

// Backward, per query row: D = sum_s P_s datt_s (kept for the key rows' pass) and
// dq = scale sum_s P_s (datt_s - D) k_s, with datt_s = (dout . v_s) * mask_s.
template <class T>
__global__ void attention_backward_query_kernel(T* dqkv, float* dsum, const T* dout, const T* qkv,
                                                const float* stats, AttentionParams p, AttentionLayout L,
                                                DeviceMask mask, float scale) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= p.B * p.NH * p.T) return;
  const int lane = threadIdx.x % 32;
  const int64_t t = row % p.T, h = (row / p.T) % p.NH, b = row / (p.T * p.NH), kh = h / L.group;
  const T* q = qkv + L.q(b, t, h);
  const T* dy = dout + (b * p.T + t) * (p.NH * p.HS) + h * p.HS;
  const float m = stats[row * 2], inv = stats[row * 2 + 1];
  const uint64_t drop_row = static_cast<uint64_t>(row) * static_cast<uint64_t>(p.T);
  float D = 0.0f;
  for (int64_t s = 0; s <= t; ++s) {
    const float P = expf(head_dot(q, qkv + L.k(b, s, kh), p.HS) * scale - m) * inv;
    const float f = mask.active ? mask_factor(mask, drop_row + static_cast<uint64_t>(s)) : 1.0f;
    D += P * (head_dot(dy, qkv + L.v(b, s, kh), p.HS) * f);
  }
  float acc[kMaxHeadLanes] = {};
  for (int64_t s = 0; s <= t; ++s) {
    const T* k = qkv + L.k(b, s, kh);
    const float P = expf(head_dot(q, k, p.HS) * scale - m) * inv;
    const float f = mask.active ? mask_factor(mask, drop_row + static_cast<uint64_t>(s)) : 1.0f;
    const float dscore = P * (head_dot(dy, qkv + L.v(b, s, kh), p.HS) * f - D) * scale;
    for (int j = 0; j < kMaxHeadLanes; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < p.HS) acc[j] += dscore * load(k + i);
    }
  }
  T* dq = dqkv + L.q(b, t, h);
  const bool write = p.dinp == InputGrad::Write;
  for (int j = 0; j < kMaxHeadLanes; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < p.HS) store(dq + i, write ? acc[j] : load(dq + i) + acc[j]);
  }
  if (lane == 0) dsum[row] = D;
}

// Backward, per key/value row s of kv head kh: over the query heads of its group and the query
// rows t >= s, dk = scale sum P (datt - D) q_t and dv = sum P mask dout_t (no atomics: one warp
// owns the row).
template <class T>
__global__ void attention_backward_key_kernel(T* dqkv, const float* dsum, const T* dout, const T* qkv,
                                              const float* stats, AttentionParams p, AttentionLayout L,
                                              DeviceMask mask, float scale) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // (b, kh, s)
  if (row >= p.B * p.NKV * p.T) return;
  const int lane = threadIdx.x % 32;
  const int64_t s = row % p.T, kh = (row / p.T) % p.NKV, b = row / (p.T * p.NKV);
  const T* k = qkv + L.k(b, s, kh);
  const T* v = qkv + L.v(b, s, kh);
  float dk[kMaxHeadLanes] = {}, dv[kMaxHeadLanes] = {};
  for (int64_t h = kh * L.group; h < (kh + 1) * L.group; ++h)
    for (int64_t t = s; t < p.T; ++t) {
      const int64_t qrow = (b * p.NH + h) * p.T + t;
      const T* q = qkv + L.q(b, t, h);
      const T* dy = dout + (b * p.T + t) * (p.NH * p.HS) + h * p.HS;
      const float P = expf(head_dot(q, k, p.HS) * scale - stats[qrow * 2]) * stats[qrow * 2 + 1];
      const float f = mask.active ? mask_factor(mask, static_cast<uint64_t>(qrow) * p.T + static_cast<uint64_t>(s))
                                  : 1.0f;
      const float dscore = P * (head_dot(dy, v, p.HS) * f - dsum[qrow]) * scale;
      const float pv = P * f;
      for (int j = 0; j < kMaxHeadLanes; ++j) {
        const int64_t i = lane + 32 * j;
        if (i < p.HS) {
          dk[j] += dscore * load(q + i);
          dv[j] += pv * load(dy + i);
        }
      }
    }
  T* dk_out = dqkv + L.k(b, s, kh);
  T* dv_out = dqkv + L.v(b, s, kh);
  const bool write = p.dinp == InputGrad::Write;
  for (int j = 0; j < kMaxHeadLanes; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < p.HS) {
      store(dk_out + i, write ? dk[j] : load(dk_out + i) + dk[j]);
      store(dv_out + i, write ? dv[j] : load(dv_out + i) + dv[j]);
    }
  }
}

__device__ int64_t embedding_position(const int32_t* positions, const EmbeddingParams& p, int64_t n) {
  return positions ? positions[n] : p.pos_offset + n % p.T;
}

template <class T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const int32_t* positions, const T* wte,
                                         const T* wpe, EmbeddingParams p) {
  const int64_t total = p.B * p.T * p.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / p.C, c = i % p.C;
    const float t = load(wte + int64_t(tokens[n]) * p.C + c);
    store(out + i, wpe ? t + load(wpe + embedding_position(positions, p, n) * p.C + c) : t);
  }
}

// One warp per row.
template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp, const T* weight,
                                         const T* bias, LayerNormParams p) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.N) return;
  const T* x = inp + row * p.C;
  float s = 0.0f;
  for (int64_t c = lane; c < p.C; c += 32) s += load(x + c);
  const float m = warp_sum(s) / static_cast<float>(p.C);
  float v = 0.0f;
  for (int64_t c = lane; c < p.C; c += 32) v += (load(x + c) - m) * (load(x + c) - m);
  const float var = warp_sum(v) / static_cast<float>(p.C);
  const float r = 1.0f / sqrtf(var + p.eps);
  for (int64_t c = lane; c < p.C; c += 32)
    store(out + row * p.C + c, (load(x + c) - m) * r * load(weight + c) + (bias ? load(bias + c) : 0.0f));
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <class T>
__global__ void layernorm_backward_dinp_kernel(T* dinp, const T* dout, const T* inp, const T* weight,
                                               const float* mean, const float* rstd, LayerNormParams p) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= p.N) return;
  const T* x = inp + row * p.C;
  const T* dy = dout + row * p.C;
  const float m = mean[row], r = rstd[row];
  float a = 0.0f, b = 0.0f;
  for (int64_t c = lane; c < p.C; c += 32) {
    const float norm = (load(x + c) - m) * r, dnorm = load(weight + c) * load(dy + c);
    a += dnorm;
    b += dnorm * norm;
  }
  const float dnorm_mean = warp_sum(a) / static_cast<float>(p.C);
  const float dnorm_norm_mean = warp_sum(b) / static_cast<float>(p.C);
  for (int64_t c = lane; c < p.C; c += 32) {
    const float norm = (load(x + c) - m) * r, dnorm = load(weight + c) * load(dy + c);
    const float g = (dnorm - dnorm_mean - norm * dnorm_norm_mean) * r;
    T* d = dinp + row * p.C + c;
    store(d, p.dinp == InputGrad::Write ? g : load(d) + g);
  }
}

// dweight[c] += sum_n norm * dout, dbias[c] += sum_n dout (column_sums.cuh).
template <class T>
struct LayerNormParamsTerm {
  const T *dout, *inp;
  const float *mean, *rstd;
  int64_t C;
  __device__ void operator()(int64_t n, int64_t c, float& dw, float& db) const {
    const float dy = load(dout + n * C + c);
    dw += (load(inp + n * C + c) - mean[n]) * rstd[n] * dy;
    db += dy;
  }
};

__device__ float weight_at(const void* w, int kind, int64_t i) {
  if (kind == 0) return static_cast<const float*>(w)[i];
  const uint16_t bits = static_cast<const uint16_t*>(w)[i];
  if (kind == 1) return __half2float(__ushort_as_half(bits));
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}

// One thread per output, the dot product in index order: the same bits for a row whatever the batch.
template <class T>
__global__ void matmul_rowwise_kernel(T* out, const T* inp, const void* weight, int kind, const T* bias,
                                      MatmulParams p) {
  const int64_t total = p.N * p.OC;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / p.OC, o = i % p.OC;
    const T* x = inp + n * p.IC;
    float acc = 0.0f;
    for (int64_t k = 0; k < p.IC; ++k) acc = fmaf(load(x + k), weight_at(weight, kind, o * p.IC + k), acc);
    store(out + i, bias ? acc + load(bias + o) : acc);
  }
}

template <class T>
struct BiasTerm {
  const T* dout;
  int64_t OC;
  __device__ void operator()(int64_t n, int64_t o, float& s, float&) const { s += load(dout + n * OC + o); }
};

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

template <class T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = load(inp + i);
    store(out + i, 0.5f * x * (1.0f + tanhf(kGeluScale * (x + kGeluCubic * x * x * x))));
  }
}

template <class T>
__global__ void gelu_backward_kernel(T* dinp, const T* inp, const T* dout, GeluParams p) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < p.n; i += int64_t(gridDim.x) * blockDim.x) {
    const float x = load(inp + i);
    const float th = tanhf(kGeluScale * (x + kGeluCubic * x * x * x));
    const float local = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    const float g = local * load(dout + i);  // read before dinp is written: they may alias
    store(dinp + i, p.dinp == InputGrad::Write ? g : load(dinp + i) + g);
  }
}

template <class T>
__global__ void residual_forward_kernel(T* out, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(out + i, load(a + i) + load(b + i));
}

template <class T>
__global__ void residual_backward_kernel(T* da, T* db, const T* dout, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = load(dout + i);
    if (da) store(da + i, load(da + i) + g);
    if (db) store(db + i, load(db + i) + g);
  }
}

// One block per row: the log-sum-exp with the row's maximum subtracted.
template <class T>
__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const T* logits, const int32_t* targets,
                                             CrossEntropyParams p) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* x = logits + row * p.V;
  float m = -INFINITY;
  for (int64_t v = threadIdx.x; v < p.V; v += blockDim.x) m = fmaxf(m, load(x + v));
  m = block_max(m, shared);
  float s = 0.0f;
  for (int64_t v = threadIdx.x; v < p.V; v += blockDim.x) s += expf(load(x + v) - m);
  s = block_sum(s, shared);
  if (threadIdx.x == 0) {
    const float l = m + logf(s);
    lse[row] = l;
    const int32_t t = targets[row];
    losses[row] = t == p.ignore_index ? 0.0f : l - load(x + t);
  }
}

template <class T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* logits, const float* lse,
                                              const int32_t* targets, const float* dloss, CrossEntropyParams p) {
  const int64_t row = blockIdx.x;
  const int32_t t = targets[row];
  const bool ignored = t == p.ignore_index;
  const float scale = dloss ? dloss[row] : p.dloss_scale;
  const float l = lse[row];
  for (int64_t v = threadIdx.x; v < p.V; v += blockDim.x) {
    const int64_t i = row * p.V + v;
    const float prob = expf(load(logits + i) - l);  // read before the write: dlogits may alias logits
    store(dlogits + i, ignored ? 0.0f : (prob - (v == t ? 1.0f : 0.0f)) * scale);
  }
}

struct AdamWScalars {
  float decay, one_minus_beta1, beta2, one_minus_beta2, bc2, eps, neg_step_size;
};

// PyTorch's float32 order of operations (kernels/params.h) with the CPU kernel's three fused
// multiply-adds, written out there and in the reference (kernels/cpu/adamw.cpp): fma(1-b1, g - m,
// m), fma(v, b2, ((1-b2) g) g) and fma(x, decay, step m / denom). Every other operation is rounded
// on its own (__f*_rn: nvcc may not contract them), so a GPU step is the CPU's, bit for bit (the
// harness's adamw case, run by the host stand-in on every build, found the third fusion missing).
// G: the gradient's storage; with `copy` (the bf16 mode) the updated weight is also written there
// by stochastic rounding (kernels/stochastic_rounding.h), in the same pass.
template <class G>
__global__ void adamw_kernel(float* param, const G* grad, float* m, float* v, int64_t n, AdamWScalars s,
                             uint16_t* copy, StochasticRounding rounding) {
  GPTRAIN_CUDA_FOR(i, n) {
    const float g = load(grad + i);
    const float mi = __fmaf_rn(s.one_minus_beta1, __fsub_rn(g, m[i]), m[i]);
    const float vi = __fmaf_rn(v[i], s.beta2, __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2), s.eps);
    m[i] = mi;
    v[i] = vi;
    const float updated = __fmaf_rn(param[i], s.decay, __fdiv_rn(__fmul_rn(s.neg_step_size, mi), denom));
    param[i] = updated;
    if (copy) copy[i] = to_bf16_stochastic(updated, rounding.bits(static_cast<uint64_t>(i)));
  }
}

constexpr int64_t kSumChunk = 1 << 16;

// partial[c] = the sum of squares of chunk c in double: one block per chunk, a fixed tree.
template <class T>
__global__ void sum_squares_kernel(double* partial, const T* x, int64_t n) {
  __shared__ double shared[kThreads];
  const int64_t begin = blockIdx.x * kSumChunk, end = min(n, begin + kSumChunk);
  double acc = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double xi = load(x + i);
    acc += xi * xi;
  }
  shared[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

template <class T>
__global__ void scale_kernel(T* x, float factor, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(x + i, load(x + i) * factor);
}


}  // namespace

template <class T>
void attention_forward(T* out, float* stats, const T* qkv, const AttentionParams& p) {
  const int64_t rows = p.B * p.NH * p.T;
  if (rows == 0) return;
  attention_forward_kernel<<<blocks_for(rows * 32), kThreads>>>(out, stats, qkv, p, attention_layout(p),
                                                                attention_mask(p), 1.0f / sqrtf(float(p.HS)));
  check_launch("attention_forward");
}

template <class T>
void attention_backward(T* dqkv, float* dsum, const T* dout, const T* qkv, const float* stats,
                        const AttentionParams& p) {
  if (p.B * p.T == 0) return;
  const float scale = 1.0f / sqrtf(float(p.HS));
  attention_backward_query_kernel<<<blocks_for(p.B * p.NH * p.T * 32), kThreads>>>(
      dqkv, dsum, dout, qkv, stats, p, attention_layout(p), attention_mask(p), scale);
  check_launch("attention_backward (queries)");
  attention_backward_key_kernel<<<blocks_for(p.B * p.NKV * p.T * 32), kThreads>>>(
      dqkv, dsum, dout, qkv, stats, p, attention_layout(p), attention_mask(p), scale);
  check_launch("attention_backward (keys and values)");
}

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* positions, const T* wte, const T* wpe,
                       const EmbeddingParams& p) {
  embedding_forward_kernel<<<blocks_for(p.B * p.T * p.C), kThreads>>>(out, tokens, positions, wte,
                                                                       p.n_positions ? wpe : nullptr, p);
  check_launch("embedding_forward");
}

template <class T>
void dropout_forward(T* out, const T* inp, const DropoutParams& p) {
  if (p.n == 0) return;
  dropout_forward_kernel<<<blocks_for(p.n), kThreads>>>(out, inp, p.n, device_mask(p));
  check_launch("dropout_forward");
}

template <class T>
void dropout_backward(T* dinp, const T* dout, const DropoutParams& p) {
  if (p.n == 0) return;
  dropout_backward_kernel<<<blocks_for(p.n), kThreads>>>(dinp, dout, p.n, p.dinp == InputGrad::Write, device_mask(p));
  check_launch("dropout_backward");
}

template <class T>
void layernorm_forward(T* out, float* mean, float* rstd, const T* inp, const T* weight, const T* bias,
                       const LayerNormParams& p) {
  layernorm_forward_kernel<<<blocks_for(p.N * 32), kThreads>>>(out, mean, rstd, inp, weight, bias, p);
  check_launch("layernorm_forward");
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const float* mean, const float* rstd, const LayerNormParams& p, float* partial) {
  if (dweight || dbias)
    column_sums(dweight, dbias, LayerNormParamsTerm<T>{dout, inp, mean, rstd, p.C}, p.N, p.C, partial,
                "layernorm_backward (weights)");
  if (dinp) {  // after the parameter gradients: dinp may not alias dout here, but keep the order safe
    layernorm_backward_dinp_kernel<<<blocks_for(p.N * 32), kThreads>>>(dinp, dout, inp, weight, mean, rstd, p);
    check_launch("layernorm_backward");
  }
}

template <class T>
void matmul_rowwise(T* out, const T* inp, const void* weight, int weight_kind, const T* bias, const MatmulParams& p) {
  matmul_rowwise_kernel<<<blocks_for(p.N * p.OC), kThreads>>>(out, inp, weight, weight_kind, bias, p);
  check_launch("matmul_forward (row-wise)");
}

template <class T>
void column_sums_add(T* dbias, const T* dout, int64_t N, int64_t OC, float* partial) {
  column_sums(dbias, static_cast<T*>(nullptr), BiasTerm<T>{dout, OC}, N, OC, partial, "matmul_backward (bias)");
}

template <class T>
void gelu_forward(T* out, const T* inp, const GeluParams& p) {
  gelu_forward_kernel<<<blocks_for(p.n), kThreads>>>(out, inp, p.n);
  check_launch("gelu_forward");
}

template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, const GeluParams& p) {
  gelu_backward_kernel<<<blocks_for(p.n), kThreads>>>(dinp, inp, dout, p);
  check_launch("gelu_backward");
}

template <class T>
void residual_forward(T* out, const T* a, const T* b, const ResidualParams& p) {
  residual_forward_kernel<<<blocks_for(p.n), kThreads>>>(out, a, b, p.n);
  check_launch("residual_forward");
}

template <class T>
void residual_backward(T* da, T* db, const T* dout, const ResidualParams& p) {
  if (!da && !db) return;
  residual_backward_kernel<<<blocks_for(p.n), kThreads>>>(da, db, dout, p.n);
  check_launch("residual_backward");
}

template <class T>
void cross_entropy_forward(float* losses, float* lse, const T* logits, const int32_t* targets,
                           const CrossEntropyParams& p) {
  if (p.N == 0) return;
  cross_entropy_forward_kernel<<<static_cast<unsigned>(p.N), kThreads>>>(losses, lse, logits, targets, p);
  check_launch("cross_entropy_forward");
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const float* lse, const int32_t* targets,
                            const float* dloss, const CrossEntropyParams& p) {
  if (p.N == 0) return;
  cross_entropy_backward_kernel<<<static_cast<unsigned>(p.N), kThreads>>>(dlogits, logits, lse, targets, dloss, p);
  check_launch("cross_entropy_backward");
}

namespace {

AdamWScalars adamw_scalars(const AdamWParams& p) {
  // Scalars formed in double and rounded once, as the CPU backend and PyTorch do.
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(p.beta2, static_cast<double>(p.step)));
  const AdamWScalars s{static_cast<float>(1.0 - p.lr * p.weight_decay), static_cast<float>(1.0 - p.beta1),
                       static_cast<float>(p.beta2),  static_cast<float>(1.0 - p.beta2),
                       static_cast<float>(bc2_sqrt), static_cast<float>(p.eps),
                       static_cast<float>(-p.lr / bc1)};
  return s;
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, const AdamWParams& p) {
  if (p.n == 0) return;
  adamw_kernel<<<blocks_for(p.n), kThreads>>>(param, grad, m, v, p.n, adamw_scalars(p), static_cast<uint16_t*>(nullptr),
                                              StochasticRounding(0, 0, 0));
  check_launch("adamw_step");
}

void adamw_step_mixed(float* master, uint16_t* copy, const uint16_t* grad, float* m, float* v, const AdamWParams& p) {
  if (p.n == 0) return;
  adamw_kernel<<<blocks_for(p.n), kThreads>>>(master, grad, m, v, p.n, adamw_scalars(p), copy,
                                              StochasticRounding(p.rounding_seed, p.step, p.element_offset));
  check_launch("adamw_step_mixed");
}

int64_t sum_squares_chunks(int64_t n) { return (n + kSumChunk - 1) / kSumChunk; }

template <class T>
double sum_squares(const T* x, int64_t n, double* partial) {
  if (n == 0) return 0.0;
  const int64_t chunks = sum_squares_chunks(n);
  sum_squares_kernel<<<static_cast<unsigned>(chunks), kThreads>>>(partial, x, n);
  check_launch("sum_squares");
  std::vector<double> host(static_cast<size_t>(chunks));
  check_cuda(cudaMemcpy(host.data(), partial, host.size() * sizeof(double), cudaMemcpyDeviceToHost),
             "sum_squares: copy to the host");
  double total = 0.0;
  for (double v : host) total += v;  // chunk order, as the CPU backend
  return total;
}

template <class T>
void scale(T* x, float factor, int64_t n) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads>>>(x, factor, n);
  check_launch("scale");
}

// The two storage types of the kernels above (common.cuh: load / store).
#define GPTRAIN_STORAGE_KERNELS(T)                                                                                 \
  template void attention_forward<T>(T*, float*, const T*, const AttentionParams&);                              \
  template void attention_backward<T>(T*, float*, const T*, const T*, const float*, const AttentionParams&);     \
  template void embedding_forward<T>(T*, const int32_t*, const int32_t*, const T*, const T*,                     \
                                     const EmbeddingParams&);                                                    \
  template void dropout_forward<T>(T*, const T*, const DropoutParams&);                                          \
  template void dropout_backward<T>(T*, const T*, const DropoutParams&);                                         \
  template void layernorm_forward<T>(T*, float*, float*, const T*, const T*, const T*, const LayerNormParams&);  \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const float*, const float*,      \
                                      const LayerNormParams&, float*);                                           \
  template void column_sums_add<T>(T*, const T*, int64_t, int64_t, float*);                                      \
  template void matmul_rowwise<T>(T*, const T*, const void*, int, const T*, const MatmulParams&);                \
  template void gelu_forward<T>(T*, const T*, const GeluParams&);                                                \
  template void gelu_backward<T>(T*, const T*, const T*, const GeluParams&);                                     \
  template void residual_forward<T>(T*, const T*, const T*, const ResidualParams&);                              \
  template void residual_backward<T>(T*, T*, const T*, const ResidualParams&);                                   \
  template void cross_entropy_forward<T>(float*, float*, const T*, const int32_t*, const CrossEntropyParams&);   \
  template void cross_entropy_backward<T>(T*, const T*, const float*, const int32_t*, const float*,              \
                                          const CrossEntropyParams&);                                            \
  template double sum_squares<T>(const T*, int64_t, double*);                                                    \
  template void scale<T>(T*, float, int64_t);
GPTRAIN_STORAGE_KERNELS(float)
GPTRAIN_STORAGE_KERNELS(uint16_t)
#undef GPTRAIN_STORAGE_KERNELS

}  // namespace gptrain::kernels::cuda
