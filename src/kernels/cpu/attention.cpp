// Causal multi-head attention. One task per (batch, head); inside it the products run as
// single-threaded sgemm calls on the strided q/k/v columns of qkv (OpenBLAS stays on one thread
// inside an OpenMP parallel region), the softmax and dropout as vectorized row loops.
#include <cblas.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/dropout_mask.h"

namespace gptrain::cpu {

namespace {

// Per-thread scratch of at least n floats, reused across calls.
float* scratch(int64_t n, int slot) {
  thread_local std::vector<float> buffers[2];
  if (static_cast<int64_t>(buffers[slot].size()) < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

// probs * mask for one (b, h) into dst[T,T]; returns dst, or probs itself when there is no dropout.
const float* dropped(const float* probs, float* dst, int64_t T, uint64_t base, const DropoutMask& mask,
                     bool active) {
  if (!active) return probs;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t s = 0; s < T; ++s)
      dst[t * T + s] = s <= t ? probs[t * T + s] * mask.factor(base + t * T + s) : 0.0f;
  return dst;
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, const AttentionParams& p) {
  const int64_t T = p.T, NH = p.NH, HS = p.HS, C = NH * HS, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const DropoutMask mask(p.seed, p.dropout_p);
  const bool drop = p.dropout_p > 0.0f;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < p.B * NH; ++bh) {
    const int64_t b = bh / NH, h = bh % NH;
    const float* q = qkv + b * T * C3 + h * HS;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* a = att + bh * T * T;
    // scores[T,T] = scale * q @ k^T (the upper triangle is computed and then discarded)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, q, C3, k, C3, 0.0f, a, T);
    for (int64_t t = 0; t < T; ++t) {
      float* row = a + t * T;
      float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
      for (int64_t s = 0; s <= t; ++s) maxv = row[s] > maxv ? row[s] : maxv;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s <= t; ++s) {
        row[s] = exp_fast(row[s] - maxv);
        sum += row[s];
      }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t s = 0; s <= t; ++s) row[s] *= inv;
      for (int64_t s = t + 1; s < T; ++s) row[s] = 0.0f;
    }
    const float* w = dropped(a, scratch(T * T, 0), T, static_cast<uint64_t>(bh * T * T), mask, drop);
    // out[T,HS] (columns of head h) = w @ v
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, w, T, v, C3, 0.0f,
                out + b * T * C + h * HS, C);
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att,
                        const AttentionParams& p) {
  const int64_t T = p.T, NH = p.NH, HS = p.HS, C = NH * HS, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const DropoutMask mask(p.seed, p.dropout_p);
  const bool drop = p.dropout_p > 0.0f;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < p.B * NH; ++bh) {
    const int64_t b = bh / NH, h = bh % NH;
    const float* q = qkv + b * T * C3 + h * HS;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* dq = dqkv + b * T * C3 + h * HS;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    const float* dy = dout + b * T * C + h * HS;
    const float* a = att + bh * T * T;
    const uint64_t base = static_cast<uint64_t>(bh * T * T);
    const float* w = dropped(a, scratch(T * T, 0), T, base, mask, drop);
    // dv += w^T @ dy
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, 1.0f, w, T, dy, C, 1.0f, dv, C3);
    // dw[T,T] = dy @ v^T, then through dropout and softmax into dscores (in place)
    float* ds = scratch(T * T, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, 1.0f, dy, C, v, C3, 0.0f, ds, T);
    for (int64_t t = 0; t < T; ++t) {
      const float* arow = a + t * T;
      float* drow = ds + t * T;
      if (drop)
        for (int64_t s = 0; s <= t; ++s) drow[s] *= mask.factor(base + t * T + s);
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t s = 0; s <= t; ++s) dot += arow[s] * drow[s];
#pragma omp simd
      for (int64_t s = 0; s <= t; ++s) drow[s] = arow[s] * (drow[s] - dot);
      for (int64_t s = t + 1; s < T; ++s) drow[s] = 0.0f;
    }
    // dq += scale * ds @ k;  dk += scale * ds^T @ q
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, scale, ds, T, k, C3, 1.0f, dq, C3);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, HS, T, scale, ds, T, q, C3, 1.0f, dk, C3);
  }
}

}  // namespace gptrain::cpu
