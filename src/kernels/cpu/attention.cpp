// Causal multi-head attention. One task per (batch, head); inside it the products run as
// single-threaded sgemm calls on the strided q/k/v columns of qkv (OpenBLAS stays on one thread
// inside an OpenMP parallel region), the softmax and dropout as vectorized row loops.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/dropout_mask.h"

namespace gptrain::cpu {

namespace {

// Per-thread scratch of at least n floats, reused across calls.
float* scratch(int64_t n, int slot) {
  thread_local std::vector<float> buffers[3];
  if (static_cast<int64_t>(buffers[slot].size()) < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

// Rows [r0, r1) of probs * mask for one (b, h) into dst (only the causal part s <= t is read
// later); returns dst, or probs itself when there is no dropout.
const float* dropped(const float* probs, float* dst, int64_t T, int64_t r0, int64_t r1, uint64_t base,
                     const DropoutMask& mask, bool active) {
  if (!active) return probs;
  for (int64_t t = r0; t < r1; ++t) {
    float* row = dst + t * T;
    mask.factors(base + t * T, t + 1, row);
#pragma omp simd
    for (int64_t s = 0; s <= t; ++s) row[s] *= probs[t * T + s];
  }
  return dst;
}

// Query rows are processed in blocks of kRows; block [r0, r1) only meets keys [0, r1), so the
// products skip the masked upper triangle except within the diagonal blocks (about 5/8 of the
// full T x T work at T = 256, tending to 1/2 for long contexts).
constexpr int64_t kRows = 64;

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
    float* wbuf = drop ? scratch(T * T, 0) : nullptr;
    float* o = out + b * T * C + h * HS;
    for (int64_t r0 = 0; r0 < T; r0 += kRows) {
      const int64_t r1 = std::min(T, r0 + kRows), rows = r1 - r0;
      // scores[r0:r1, 0:r1] = scale * q[r0:r1] @ k[0:r1]^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, scale, q + r0 * C3, C3, k, C3, 0.0f,
                  a + r0 * T, T);
      for (int64_t t = r0; t < r1; ++t) {
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
      const float* w = dropped(a, wbuf, T, r0, r1, static_cast<uint64_t>(bh * T * T), mask, drop);
      if (drop)  // the diagonal block's upper part must be zero in the copy too
        for (int64_t t = r0; t < r1; ++t)
          for (int64_t s = t + 1; s < r1; ++s) wbuf[t * T + s] = 0.0f;
      // out[r0:r1] (columns of head h) = w[r0:r1, 0:r1] @ v[0:r1]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, 1.0f, w + r0 * T, T, v, C3, 0.0f,
                  o + r0 * C, C);
    }
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
    float* wbuf = drop ? scratch(T * T, 0) : nullptr;
    float* ds = scratch(T * T, 1);
    for (int64_t r0 = 0; r0 < T; r0 += kRows) {
      const int64_t r1 = std::min(T, r0 + kRows), rows = r1 - r0;
      const float* w = dropped(a, wbuf, T, r0, r1, base, mask, drop);
      if (drop)
        for (int64_t t = r0; t < r1; ++t)
          for (int64_t s = t + 1; s < r1; ++s) wbuf[t * T + s] = 0.0f;
      // dv[0:r1] += w[r0:r1, 0:r1]^T @ dy[r0:r1]
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, w + r0 * T, T, dy + r0 * C, C, 1.0f,
                  dv, C3);
      // dw[r0:r1, 0:r1] = dy[r0:r1] @ v[0:r1]^T, then through dropout and softmax (in place)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, 1.0f, dy + r0 * C, C, v, C3, 0.0f,
                  ds + r0 * T, T);
      for (int64_t t = r0; t < r1; ++t) {
        const float* arow = a + t * T;
        float* drow = ds + t * T;
        if (drop) {
          float* f = scratch(T, 2);
          mask.factors(base + t * T, t + 1, f);
#pragma omp simd
          for (int64_t s = 0; s <= t; ++s) drow[s] *= f[s];
        }
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t s = 0; s <= t; ++s) dot += arow[s] * drow[s];
#pragma omp simd
        for (int64_t s = 0; s <= t; ++s) drow[s] = arow[s] * (drow[s] - dot);
        for (int64_t s = t + 1; s < r1; ++s) drow[s] = 0.0f;
      }
      // dq[r0:r1] += scale * ds[r0:r1, 0:r1] @ k[0:r1];  dk[0:r1] += scale * ds[r0:r1, 0:r1]^T @ q[r0:r1]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, scale, ds + r0 * T, T, k, C3, 1.0f,
                  dq + r0 * C3, C3);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, scale, ds + r0 * T, T, q + r0 * C3, C3,
                  1.0f, dk, C3);
    }
  }
}

}  // namespace gptrain::cpu
