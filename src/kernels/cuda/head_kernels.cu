// The CUDA kernels of the heads and adapters (launch.h), on float32 and bf16 storage: sequence
// pooling for a classifier, the row gather of a decode step, LoRA's low-rank products (one thread
// per output, its sum in index order: each row independent of the others, so decoding stays
// batch-invariant), and attention against KV caches for generation.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch.h"

namespace gptrain::kernels::cuda {

namespace {

template <class T>
__global__ void pool_forward_kernel(T* out, const T* inp, PoolParams p) {
  GPTRAIN_CUDA_FOR(j, p.B * p.C) {
    const int64_t b = j / p.C, c = j % p.C;
    const T* x = inp + b * p.T * p.C + c;
    float v = 0.0f;
    if (p.mode == PoolMode::Last) v = load(x + (p.T - 1) * p.C);
    if (p.mode == PoolMode::First) v = load(x);
    if (p.mode == PoolMode::Mean) {
      for (int64_t t = 0; t < p.T; ++t) v += load(x + t * p.C);
      v /= static_cast<float>(p.T);
    }
    store(out + j, v);
  }
}

// One thread per input element: its share of dout (none for the unread positions). Writing
// 0 + g, as the reference does after zeroing, keeps its zeros' signs.
template <class T>
__global__ void pool_backward_kernel(T* dinp, const T* dout, PoolParams p) {
  const bool write = p.dinp == InputGrad::Write;
  GPTRAIN_CUDA_FOR(j, p.B * p.T * p.C) {
    const int64_t c = j % p.C, t = (j / p.C) % p.T, b = j / (p.C * p.T);
    const float d = load(dout + b * p.C + c);
    float g = 0.0f;
    bool touched = true;
    if (p.mode == PoolMode::Last) touched = t == p.T - 1;
    if (p.mode == PoolMode::First) touched = t == 0;
    if (touched) g = p.mode == PoolMode::Mean ? d / static_cast<float>(p.T) : d;
    if (write) store(dinp + j, 0.0f + (touched ? g : 0.0f));
    else if (touched) store(dinp + j, load(dinp + j) + g);
  }
}

template <class T>
__global__ void gather_rows_kernel(T* out, const T* inp, const int32_t* rows, GatherRowsParams p) {
  GPTRAIN_CUDA_FOR(j, p.R * p.C) out[j] = inp[int64_t(rows[j / p.C]) * p.C + j % p.C];  // a copy: exact either way
}

// h[n, j] = sum_i inp[n, i] A[j, i] for the S R rows of A.
template <class T>
__global__ void lora_down_kernel(float* h, const T* inp, const T* A, LoraParams p) {
  const int64_t SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, p.N * SR) {
    const int64_t n = k / SR, j = k % SR;
    float acc = 0.0f;
    for (int64_t i = 0; i < p.IC; ++i) acc += load(inp + n * p.IC + i) * load(A + j * p.IC + i);
    h[k] = acc;
  }
}

// The segment of B row o (segments are few: a linear search).
__device__ int segment_of(const LoraParams& p, int64_t o) {
  int s = 0;
  while (s + 1 < p.S && o >= p.seg[s + 1]) ++s;
  return s;
}

// out[n, col[s] + o - seg[s]] += scaling sum_r h[n, sR + r] B[o, r], one thread per (n, o).
template <class T>
__global__ void lora_up_kernel(T* out, const float* h, const T* B, LoraParams p) {
  const int64_t rows_b = p.seg[p.S], SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, p.N * rows_b) {
    const int64_t n = k / rows_b, o = k % rows_b;
    const int s = segment_of(p, o);
    float acc = 0.0f;
    for (int64_t r = 0; r < p.R; ++r) acc += h[n * SR + s * p.R + r] * load(B + o * p.R + r);
    T* y = out + n * p.OC + p.col[s] + (o - p.seg[s]);
    store(y, load(y) + p.scaling * acc);
  }
}

// dh[n, sR + r] = scaling sum_{o in s} dout[n, col[s] + o - seg[s]] B[o, r]
template <class T>
__global__ void lora_dh_kernel(float* dh, const T* dout, const T* B, LoraParams p) {
  const int64_t SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, p.N * SR) {
    const int64_t n = k / SR, j = k % SR;
    const int s = static_cast<int>(j / p.R);
    const int64_t r = j % p.R;
    float acc = 0.0f;
    for (int64_t o = p.seg[s]; o < p.seg[s + 1]; ++o)
      acc += load(dout + n * p.OC + p.col[s] + (o - p.seg[s])) * load(B + o * p.R + r);
    dh[k] = p.scaling * acc;
  }
}

// dB[o, r] += scaling sum_n dout[n, col[s] + o - seg[s]] h[n, sR + r]
template <class T>
__global__ void lora_db_kernel(T* dB, const T* dout, const float* h, LoraParams p) {
  const int64_t rows_b = p.seg[p.S], SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, rows_b * p.R) {
    const int64_t o = k / p.R, r = k % p.R;
    const int s = segment_of(p, o);
    float acc = 0.0f;
    for (int64_t n = 0; n < p.N; ++n)
      acc += load(dout + n * p.OC + p.col[s] + (o - p.seg[s])) * h[n * SR + s * p.R + r];
    store(dB + k, load(dB + k) + p.scaling * acc);
  }
}

// dA[j, i] += sum_n dh[n, j] inp[n, i]
template <class T>
__global__ void lora_da_kernel(T* dA, const float* dh, const T* inp, LoraParams p) {
  const int64_t SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, SR * p.IC) {
    const int64_t j = k / p.IC, i = k % p.IC;
    float acc = 0.0f;
    for (int64_t n = 0; n < p.N; ++n) acc += dh[n * SR + j] * load(inp + n * p.IC + i);
    store(dA + k, load(dA + k) + acc);
  }
}

// dinp[n, i] += sum_j dh[n, j] A[j, i]
template <class T>
__global__ void lora_dinp_kernel(T* dinp, const float* dh, const T* A, LoraParams p) {
  const int64_t SR = p.S * p.R;
  GPTRAIN_CUDA_FOR(k, p.N * p.IC) {
    const int64_t n = k / p.IC, i = k % p.IC;
    float acc = 0.0f;
    for (int64_t j = 0; j < SR; ++j) acc += dh[n * SR + j] * load(A + j * p.IC + i);
    store(dinp + k, load(dinp + k) + acc);
  }
}

// weight[col[s] + o - seg[s], i] += scaling sum_r B[o, r] A[sR + r, i]
template <class T>
__global__ void lora_merge_kernel(T* weight, const T* A, const T* B, LoraParams p) {
  const int64_t rows_b = p.seg[p.S];
  GPTRAIN_CUDA_FOR(k, rows_b * p.IC) {
    const int64_t o = k / p.IC, i = k % p.IC;
    const int s = segment_of(p, o);
    float acc = 0.0f;
    for (int64_t r = 0; r < p.R; ++r) acc += load(B + o * p.R + r) * load(A + (s * p.R + r) * p.IC + i);
    T* w = weight + (p.col[s] + (o - p.seg[s])) * p.IC + i;
    store(w, load(w) + p.scaling * acc);
  }
}

// The new rows' keys and values into their positions past.. of the caches [max_T, NKV HS].
template <class T>
__global__ void decode_append_kernel(T* kc, T* vc, const T* qkv, int64_t first_row, int64_t rows, int64_t past,
                                     AttentionDecodeParams p) {
  const int64_t KV = p.NKV * p.HS, C = p.NH * p.HS, W = p.qkv_width();
  GPTRAIN_CUDA_FOR(k, rows * KV) {
    const int64_t t = k / KV, j = k % KV;
    const T* row = qkv + (first_row + t) * W;  // copied: exact either way
    kc[(past + t) * KV + j] = row[C + j];
    vc[(past + t) * KV + j] = row[C + KV + j];
  }
}

// One warp per (new row t, head h): attention over cached positions 0..past+t, two passes.
template <class T>
__global__ void decode_attend_kernel(T* out, const T* qkv, const T* kc, const T* vc, int64_t first_row, int64_t rows,
                                     int64_t past, AttentionDecodeParams p) {
  const int64_t w = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  if (w >= rows * p.NH) return;
  const int lane = threadIdx.x % 32;
  const int64_t t = w / p.NH, h = w % p.NH, last = past + t;
  const int64_t KV = p.NKV * p.HS, kv = (h / (p.NH / p.NKV)) * p.HS;
  const T* q = qkv + (first_row + t) * p.qkv_width() + h * p.HS;
  const float scale = 1.0f / sqrtf(static_cast<float>(p.HS));
  const auto score = [&](int64_t s) { return head_dot(q, kc + s * KV + kv, p.HS) * scale; };
  float m = -INFINITY, l = 0.0f;
  for (int64_t s = 0; s <= last; ++s) {
    const float x = score(s), m_new = fmaxf(m, x);
    l = l * expf(m - m_new) + expf(x - m_new);
    m = m_new;
  }
  float acc[kMaxHeadLanes] = {};
  for (int64_t s = 0; s <= last; ++s) {
    const float wgt = expf(score(s) - m) / l;
    for (int j = 0; j < kMaxHeadLanes; ++j) {
      const int64_t i = lane + 32 * j;
      if (i < p.HS) acc[j] += wgt * load(vc + s * KV + kv + i);
    }
  }
  T* o = out + (first_row + t) * (p.NH * p.HS) + h * p.HS;
  for (int j = 0; j < kMaxHeadLanes; ++j) {
    const int64_t i = lane + 32 * j;
    if (i < p.HS) store(o + i, acc[j]);
  }
}

}  // namespace

template <class T>
void pool_forward(T* out, const T* inp, const PoolParams& p) {
  if (p.B * p.C == 0) return;
  pool_forward_kernel<<<blocks_for(p.B * p.C), kThreads>>>(out, inp, p);
  check_launch("pool_forward");
}

template <class T>
void pool_backward(T* dinp, const T* dout, const PoolParams& p) {
  if (p.B * p.T * p.C == 0) return;
  pool_backward_kernel<<<blocks_for(p.B * p.T * p.C), kThreads>>>(dinp, dout, p);
  check_launch("pool_backward");
}

template <class T>
void gather_rows_forward(T* out, const T* inp, const int32_t* rows, const GatherRowsParams& p) {
  if (p.R * p.C == 0) return;
  gather_rows_kernel<<<blocks_for(p.R * p.C), kThreads>>>(out, inp, rows, p);
  check_launch("gather_rows_forward");
}

template <class T>
void lora_forward(T* out, float* h, const T* inp, const T* A, const T* B, const LoraParams& p) {
  if (p.N == 0) return;
  lora_down_kernel<<<blocks_for(p.N * p.S * p.R), kThreads>>>(h, inp, A, p);
  check_launch("lora_forward (down)");
  lora_up_kernel<<<blocks_for(p.N * p.seg[p.S]), kThreads>>>(out, h, B, p);
  check_launch("lora_forward (up)");
}

template <class T>
void lora_backward(T* dinp, T* dA, T* dB, float* h, float* dh, const T* dout, const T* inp, const T* A, const T* B,
                   const LoraParams& p) {
  if (p.N == 0) return;
  const int64_t SR = p.S * p.R;
  if (dB) {
    lora_down_kernel<<<blocks_for(p.N * SR), kThreads>>>(h, inp, A, p);
    check_launch("lora_backward (down)");
    lora_db_kernel<<<blocks_for(p.seg[p.S] * p.R), kThreads>>>(dB, dout, h, p);
    check_launch("lora_backward (dB)");
  }
  if (!dA && !dinp) return;
  lora_dh_kernel<<<blocks_for(p.N * SR), kThreads>>>(dh, dout, B, p);
  check_launch("lora_backward (dh)");
  if (dA) {
    lora_da_kernel<<<blocks_for(SR * p.IC), kThreads>>>(dA, dh, inp, p);
    check_launch("lora_backward (dA)");
  }
  if (dinp) {
    lora_dinp_kernel<<<blocks_for(p.N * p.IC), kThreads>>>(dinp, dh, A, p);
    check_launch("lora_backward (dinp)");
  }
}

template <class T>
void lora_merge(T* weight, const T* A, const T* B, const LoraParams& p) {
  if (p.seg[p.S] * p.IC == 0) return;
  lora_merge_kernel<<<blocks_for(p.seg[p.S] * p.IC), kThreads>>>(weight, A, B, p);
  check_launch("lora_merge");
}

template <class T>
void attention_decode_forward(T* out, const T* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p) {
  for (int64_t i = 0; i < p.n_seqs; ++i) {  // seqs is host memory (the ops build it); the caches are the device's
    const DecodeSeq& s = seqs[i];
    T* kc = static_cast<T*>(s.k_cache);
    T* vc = static_cast<T*>(s.v_cache);
    decode_append_kernel<<<blocks_for(s.rows * p.NKV * p.HS), kThreads>>>(kc, vc, qkv, s.first_row, s.rows, s.past, p);
    check_launch("attention_decode_forward (append)");
    decode_attend_kernel<<<blocks_for(s.rows * p.NH * 32), kThreads>>>(out, qkv, kc, vc, s.first_row, s.rows, s.past,
                                                                       p);
    check_launch("attention_decode_forward");
  }
}

// The two storage types (common.cuh: load / store); h and dh are float32 scratch either way.
#define GPTRAIN_HEAD_KERNELS(T)                                                                                   \
  template void pool_forward<T>(T*, const T*, const PoolParams&);                                                 \
  template void pool_backward<T>(T*, const T*, const PoolParams&);                                                \
  template void gather_rows_forward<T>(T*, const T*, const int32_t*, const GatherRowsParams&);                    \
  template void lora_forward<T>(T*, float*, const T*, const T*, const T*, const LoraParams&);                     \
  template void lora_backward<T>(T*, T*, T*, float*, float*, const T*, const T*, const T*, const T*,              \
                                 const LoraParams&);                                                              \
  template void lora_merge<T>(T*, const T*, const T*, const LoraParams&);                                         \
  template void attention_decode_forward<T>(T*, const T*, const DecodeSeq*, const AttentionDecodeParams&);
GPTRAIN_HEAD_KERNELS(float)
GPTRAIN_HEAD_KERNELS(uint16_t)
#undef GPTRAIN_HEAD_KERNELS

}  // namespace gptrain::kernels::cuda
