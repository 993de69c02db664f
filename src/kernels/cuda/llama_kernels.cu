// The CUDA kernels of Llama's and Qwen3's layers (launch.h): RMSNorm, Qwen3's per-head query/key
// norms, the rotary tables and rotation (rotate-half), SwiGLU. Row reductions are one warp's tree;
// weight gradients sum fixed chunks of rows in order, then the chunks (column_sums.cuh;
// deterministic, no atomics).
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"

namespace gptrain::kernels::cuda {

namespace {

// One warp: y = x * rstd * w over a row of C, returning rstd.
template <class T>
__device__ float rms_row_forward(T* y, const T* x, const T* w, int64_t C, float eps) {
  const int lane = threadIdx.x % 32;
  float ss = 0.0f;
  for (int64_t c = lane; c < C; c += 32) ss += load(x + c) * load(x + c);
  const float s = 1.0f / sqrtf(warp_sum(ss) / static_cast<float>(C) + eps);
  for (int64_t c = lane; c < C; c += 32) store(y + c, load(x + c) * s * load(w + c));
  return s;
}

// One warp: dx = s (w dy - x s^2 mean(w dy x)), written or added; dx may be dy (the row's dot
// product is complete before any lane writes, and each lane rewrites only what it read).
template <class T>
__device__ void rms_row_backward(T* dx, const T* dy, const T* x, const T* w, float s, int64_t C, bool write) {
  const int lane = threadIdx.x % 32;
  float d = 0.0f;
  for (int64_t c = lane; c < C; c += 32) d += load(w + c) * load(dy + c) * load(x + c);
  const float dot = warp_sum(d) / static_cast<float>(C);
  for (int64_t c = lane; c < C; c += 32) {
    const float g = s * (load(w + c) * load(dy + c) - load(x + c) * s * s * dot);
    store(dx + c, write ? g : load(dx + c) + g);
  }
}

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* inp, const T* weight, RmsNormParams p) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= p.N) return;
  const float s = rms_row_forward(out + row * p.C, inp + row * p.C, weight, p.C, p.eps);
  if (threadIdx.x % 32 == 0) rstd[row] = s;
}

template <class T>
__global__ void rmsnorm_backward_kernel(T* dinp, const T* dout, const T* inp, const T* weight, const float* rstd,
                                        RmsNormParams p) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= p.N) return;
  rms_row_backward(dinp + row * p.C, dout + row * p.C, inp + row * p.C, weight, rstd[row], p.C,
                   p.dinp == InputGrad::Write);
}

// dw[c] += sum over rows n (and, for the query/key norms, heads h0 <= h < h0 + count of width C
// in a row of `row_width`, rstd per (n, head of `heads`)) of x rstd dy: row r of the sum is
// (n, h) = (r / count, h0 + r % count), the heads of a row consecutive (column_sums.cuh).
template <class T>
struct RmsWeightTerm {
  const T *dout, *inp;
  const float* rstd;
  int64_t C, row_width, h0, count, heads;
  __device__ void operator()(int64_t r, int64_t c, float& acc, float&) const {
    const int64_t n = r / count, h = h0 + r % count, i = n * row_width + h * C + c;
    acc += load(inp + i) * rstd[n * heads + h] * load(dout + i);
  }
};

template <class T>
__global__ void qk_norm_forward_kernel(T* out, float* rstd, const T* inp, const T* q_weight, const T* k_weight,
                                       QkNormParams p) {
  const int64_t heads = p.NH + p.NKV;
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;  // (n, head)
  if (row >= p.N * heads) return;
  const int64_t n = row / heads, h = row % heads, at = n * p.qkv_width() + h * p.HS;
  const float s = rms_row_forward(out + at, inp + at, h < p.NH ? q_weight : k_weight, p.HS, p.eps);
  if (threadIdx.x % 32 == 0) rstd[row] = s;
}

template <class T>
__global__ void qk_norm_backward_kernel(T* dinp, const T* dout, const T* inp, const T* q_weight, const T* k_weight,
                                        const float* rstd, QkNormParams p) {
  const int64_t heads = p.NH + p.NKV;
  const int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (row >= p.N * heads) return;
  const int64_t n = row / heads, h = row % heads, at = n * p.qkv_width() + h * p.HS;
  rms_row_backward(dinp + at, dout + at, inp + at, h < p.NH ? q_weight : k_weight, rstd[row], p.HS,
                   p.dinp == InputGrad::Write);
}

// The value heads pass through: out = inp (forward), dinp = or += dout (backward).
template <class T>
__global__ void value_heads_kernel(T* dst, const T* src, QkNormParams p, bool add) {
  const int64_t width = p.NKV * p.HS, first = (p.NH + p.NKV) * p.HS;
  GPTRAIN_CUDA_FOR(i, p.N * width) {
    const int64_t at = (i / width) * p.qkv_width() + first + i % width;
    store(dst + at, add ? load(dst + at) + load(src + at) : load(src + at));
  }
}

__global__ void rope_table_kernel(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                                  RopeTableParams p) {
  GPTRAIN_CUDA_FOR(j, p.N * p.half) {
    const int64_t n = j / p.half, i = j % p.half;
    const float pos = static_cast<float>(positions ? positions[n] : p.pos_offset + n % p.T);
    const float angle = inv_freq[i] * pos;
    cos_out[j] = cosf(angle);  // CUDA's cosf/sinf: within 2 ulp, with full range reduction
    sin_out[j] = sinf(angle);
  }
}

// One thread per rotated pair (i, i + HS/2) of a query or key head; sign -1 is the transpose.
template <class T>
__global__ void rope_kernel(T* qkv, const float* cos_t, const float* sin_t, RopeParams p, float sign) {
  const int64_t half = p.HS / 2, heads = p.NH + p.NKV;
  GPTRAIN_CUDA_FOR(j, p.N * heads * half) {
    const int64_t n = j / (heads * half), h = (j / half) % heads, i = j % half;
    T* x = qkv + n * p.qkv_width() + h * p.HS;
    const float c = cos_t[n * half + i], s = sign * sin_t[n * half + i];
    const float x1 = load(x + i), x2 = load(x + i + half);
    store(x + i, x1 * c - x2 * s);
    store(x + i + half, x2 * c + x1 * s);
  }
}

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* inp, SwigluParams p) {
  GPTRAIN_CUDA_FOR(j, p.N * p.M) {
    const int64_t n = j / p.M, m = j % p.M;
    const float g = load(inp + n * 2 * p.M + m), u = load(inp + n * 2 * p.M + p.M + m);
    store(out + j, g * sigmoid(g) * u);
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T* dinp, const T* inp, const T* dout, SwigluParams p) {
  const bool write = p.dinp == InputGrad::Write;
  GPTRAIN_CUDA_FOR(j, p.N * p.M) {
    const int64_t n = j / p.M, m = j % p.M;
    const float g = load(inp + n * 2 * p.M + m), u = load(inp + n * 2 * p.M + p.M + m), d = load(dout + j);
    const float s = sigmoid(g);
    const float dg = d * u * s * (1.0f + g * (1.0f - s)), du = d * g * s;
    T* pg = dinp + n * 2 * p.M + m;
    T* pu = pg + p.M;
    store(pg, write ? dg : load(pg) + dg);
    store(pu, write ? du : load(pu) + du);
  }
}

}  // namespace

template <class T>
void rmsnorm_forward(T* out, float* rstd, const T* inp, const T* weight, const RmsNormParams& p) {
  if (p.N == 0) return;
  rmsnorm_forward_kernel<<<blocks_for(p.N * 32), kThreads>>>(out, rstd, inp, weight, p);
  check_launch("rmsnorm_forward");
}

template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const float* rstd,
                      const RmsNormParams& p, float* partial) {
  if (p.N == 0) return;
  if (dweight) {  // before dinp: dinp may alias dout
    column_sums(dweight, static_cast<T*>(nullptr), RmsWeightTerm<T>{dout, inp, rstd, p.C, p.C, 0, 1, 1}, p.N, p.C,
                partial, "rmsnorm_backward (weight)");
  }
  if (dinp) {
    rmsnorm_backward_kernel<<<blocks_for(p.N * 32), kThreads>>>(dinp, dout, inp, weight, rstd, p);
    check_launch("rmsnorm_backward");
  }
}

template <class T>
void qk_norm_forward(T* out, float* rstd, const T* inp, const T* q_weight, const T* k_weight, const QkNormParams& p) {
  if (p.N == 0) return;
  qk_norm_forward_kernel<<<blocks_for(p.N * (p.NH + p.NKV) * 32), kThreads>>>(out, rstd, inp, q_weight, k_weight, p);
  check_launch("qk_norm_forward");
  if (out != inp) {
    value_heads_kernel<<<blocks_for(p.N * p.NKV * p.HS), kThreads>>>(out, inp, p, false);
    check_launch("qk_norm_forward (values)");
  }
}

template <class T>
void qk_norm_backward(T* dinp, T* dq_weight, T* dk_weight, const T* dout, const T* inp, const T* q_weight,
                      const T* k_weight, const float* rstd, const QkNormParams& p, float* partial) {
  if (p.N == 0) return;
  const int64_t heads = p.NH + p.NKV;
  T* none = nullptr;
  if (dq_weight)  // before dinp: dinp may alias dout
    column_sums(dq_weight, none, RmsWeightTerm<T>{dout, inp, rstd, p.HS, p.qkv_width(), 0, p.NH, heads}, p.N * p.NH,
                p.HS, partial, "qk_norm_backward (query weight)");
  if (dk_weight)
    column_sums(dk_weight, none, RmsWeightTerm<T>{dout, inp, rstd, p.HS, p.qkv_width(), p.NH, p.NKV, heads},
                p.N * p.NKV, p.HS, partial, "qk_norm_backward (key weight)");
  if (!dinp) return;
  qk_norm_backward_kernel<<<blocks_for(p.N * heads * 32), kThreads>>>(dinp, dout, inp, q_weight, k_weight, rstd, p);
  check_launch("qk_norm_backward");
  const bool write = p.dinp == InputGrad::Write;
  if (!(write && dinp == dout)) {
    value_heads_kernel<<<blocks_for(p.N * p.NKV * p.HS), kThreads>>>(dinp, dout, p, !write);
    check_launch("qk_norm_backward (values)");
  }
}

void rope_table(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                const RopeTableParams& p) {
  if (p.N * p.half == 0) return;
  rope_table_kernel<<<blocks_for(p.N * p.half), kThreads>>>(cos_out, sin_out, inv_freq, positions, p);
  check_launch("rope_table");
}

template <class T>
void rope_forward(T* qkv, const float* cos_t, const float* sin_t, const RopeParams& p) {
  if (p.N * (p.NH + p.NKV) * (p.HS / 2) == 0) return;
  rope_kernel<<<blocks_for(p.N * (p.NH + p.NKV) * (p.HS / 2)), kThreads>>>(qkv, cos_t, sin_t, p, 1.0f);
  check_launch("rope_forward");
}

template <class T>
void rope_backward(T* dqkv, const float* cos_t, const float* sin_t, const RopeParams& p) {
  if (p.N * (p.NH + p.NKV) * (p.HS / 2) == 0) return;
  rope_kernel<<<blocks_for(p.N * (p.NH + p.NKV) * (p.HS / 2)), kThreads>>>(dqkv, cos_t, sin_t, p, -1.0f);
  check_launch("rope_backward");
}

template <class T>
void swiglu_forward(T* out, const T* inp, const SwigluParams& p) {
  if (p.N * p.M == 0) return;
  swiglu_forward_kernel<<<blocks_for(p.N * p.M), kThreads>>>(out, inp, p);
  check_launch("swiglu_forward");
}

template <class T>
void swiglu_backward(T* dinp, const T* inp, const T* dout, const SwigluParams& p) {
  if (p.N * p.M == 0) return;
  swiglu_backward_kernel<<<blocks_for(p.N * p.M), kThreads>>>(dinp, inp, dout, p);
  check_launch("swiglu_backward");
}

// float32, and bf16 storage (common.cuh: load / store).
#define GPTRAIN_LLAMA_KERNELS(T)                                                                                  \
  template void rmsnorm_forward<T>(T*, float*, const T*, const T*, const RmsNormParams&);                        \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const float*, const RmsNormParams&,    \
                                    float*);                                                                     \
  template void qk_norm_forward<T>(T*, float*, const T*, const T*, const T*, const QkNormParams&);               \
  template void qk_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const float*,            \
                                    const QkNormParams&, float*);                                                \
  template void rope_forward<T>(T*, const float*, const float*, const RopeParams&);                              \
  template void rope_backward<T>(T*, const float*, const float*, const RopeParams&);                             \
  template void swiglu_forward<T>(T*, const T*, const SwigluParams&);                                            \
  template void swiglu_backward<T>(T*, const T*, const T*, const SwigluParams&);
GPTRAIN_LLAMA_KERNELS(float)
GPTRAIN_LLAMA_KERNELS(uint16_t)
#undef GPTRAIN_LLAMA_KERNELS

}  // namespace gptrain::kernels::cuda
