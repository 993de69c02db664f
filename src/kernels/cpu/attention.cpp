// Causal grouped-query attention without a stored T x T matrix. One task per (batch, key/value
// head), which runs its query heads in order; inside a head query rows go in blocks of kRows, and
// block [r0, r1) only meets keys [0, r1), so the products skip
// the masked upper triangle except within the diagonal blocks (about 5/8 of the full T x T work at
// T = 256, tending to 1/2 for long contexts). The forward keeps two floats per row, the softmax's
// maximum and the reciprocal of its sum; the backward recomputes that block's scores with the same
// sgemm call and rebuilds the probabilities bit for bit, so the gradients equal those computed from
// a stored matrix while training keeps B x NH x T x 2 floats per layer instead of B x NH x T x T
// (1.2 GB for gpt2-small at B = 2, T = 1024). The products run as single-threaded sgemm calls on
// the strided q/k/v columns of qkv (OpenBLAS stays on one thread inside an OpenMP parallel region),
// the softmax and dropout as vectorized row loops.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/dropout_mask.h"

namespace gptrain::cpu {

namespace {

constexpr int64_t kRows = 64;

// Per-thread scratch of at least n floats, reused across calls.
float* scratch(int64_t n, int slot) {
  thread_local std::vector<float> buffers[4];
  if (static_cast<int64_t>(buffers[slot].size()) < n) buffers[slot].resize(n);
  return buffers[slot].data();
}

// Probabilities of query rows [r0, r1) of one (b, h) against keys [0, r1) into P (row t at
// P + (t - r0) * ld, zero above the diagonal), with (max, 1/sum) per row written to `record`; or,
// when record is null, read from `stats`, which rebuilds the recording call's result bit for bit.
void block_probs(float* P, int64_t ld, const float* q, const float* k, int64_t W, int64_t HS, float scale,
                 int64_t r0, int64_t r1, float* record, const float* stats) {
  const int64_t rows = r1 - r0;
  // scores[r0:r1, 0:r1] = scale * q[r0:r1] @ k[0:r1]^T (rows of q and k are W floats apart)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, scale, q + r0 * W, W, k, W, 0.0f, P, ld);
  for (int64_t t = r0; t < r1; ++t) {
    float* row = P + (t - r0) * ld;
    float maxv, inv;
    if (record) {
      maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
      for (int64_t s = 0; s <= t; ++s) maxv = row[s] > maxv ? row[s] : maxv;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t s = 0; s <= t; ++s) {
        row[s] = exp_fast(row[s] - maxv);
        sum += row[s];
      }
      inv = 1.0f / sum;
      record[2 * t] = maxv;
      record[2 * t + 1] = inv;
    } else {
      maxv = stats[2 * t];
      inv = stats[2 * t + 1];
#pragma omp simd
      for (int64_t s = 0; s <= t; ++s) row[s] = exp_fast(row[s] - maxv);
    }
#pragma omp simd
    for (int64_t s = 0; s <= t; ++s) row[s] *= inv;
    for (int64_t s = t + 1; s < r1; ++s) row[s] = 0.0f;
  }
}

// W = P * dropout mask for rows [r0, r1) (mask element (t, s) at base + t * T + s, as if the
// matrix were T x T); returns P itself when there is no dropout.
const float* dropped(const float* P, float* W, int64_t ld, int64_t T, int64_t r0, int64_t r1, uint64_t base,
                     const DropoutMask& mask, bool active) {
  if (!active) return P;
  for (int64_t t = r0; t < r1; ++t) {
    float* row = W + (t - r0) * ld;
    mask.factors(base + t * T, t + 1, row);
#pragma omp simd
    for (int64_t s = 0; s <= t; ++s) row[s] *= P[(t - r0) * ld + s];
    for (int64_t s = t + 1; s < r1; ++s) row[s] = 0.0f;
  }
  return W;
}

}  // namespace

void attention_forward(float* out, float* stats, const float* qkv, const AttentionParams& p) {
  const int64_t T = p.T, NH = p.NH, NKV = p.NKV, HS = p.HS, C = NH * HS, W = p.qkv_width(), group = NH / NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const DropoutMask mask(p.seed, p.dropout_p, p.dropout_offset);
  const bool drop = p.dropout_p > 0.0f;
  // One task per (batch, key/value head): its query heads in order.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bg = 0; bg < p.B * NKV; ++bg) {
    const int64_t b = bg / NKV, g = bg % NKV;
    const float* k = qkv + b * T * W + (NH + g) * HS;
    const float* v = qkv + b * T * W + (NH + NKV + g) * HS;
    float* P = scratch(kRows * T, 0);
    float* Wd = drop ? scratch(kRows * T, 1) : nullptr;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const int64_t bh = b * NH + h;
      const float* q = qkv + b * T * W + h * HS;
      float* st = stats + bh * T * 2;
      float* o = out + b * T * C + h * HS;
      for (int64_t r0 = 0; r0 < T; r0 += kRows) {
        const int64_t r1 = std::min(T, r0 + kRows), rows = r1 - r0;
        block_probs(P, T, q, k, W, HS, scale, r0, r1, st, nullptr);
        const float* w = dropped(P, Wd, T, T, r0, r1, static_cast<uint64_t>(bh * T * T), mask, drop);
        // out[r0:r1] (columns of head h) = w[r0:r1, 0:r1] @ v[0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, 1.0f, w, T, v, W, 0.0f, o + r0 * C, C);
      }
    }
  }
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* stats,
                        const AttentionParams& p) {
  const int64_t T = p.T, NH = p.NH, NKV = p.NKV, HS = p.HS, C = NH * HS, W = p.qkv_width(), group = NH / NKV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const DropoutMask mask(p.seed, p.dropout_p, p.dropout_offset);
  const bool drop = p.dropout_p > 0.0f;
  // One task per (batch, key/value head): it owns dk and dv of that head and dq of its query
  // heads, which it accumulates in head order (deterministic for any thread count).
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bg = 0; bg < p.B * NKV; ++bg) {
    const int64_t b = bg / NKV, g = bg % NKV;
    const float* k = qkv + b * T * W + (NH + g) * HS;
    const float* v = qkv + b * T * W + (NH + NKV + g) * HS;
    float* dk = dqkv + b * T * W + (NH + g) * HS;
    float* dv = dqkv + b * T * W + (NH + NKV + g) * HS;
    if (p.dinp == InputGrad::Write)
      for (int64_t t = 0; t < T; ++t) {
        std::memset(dk + t * W, 0, sizeof(float) * static_cast<size_t>(HS));
        std::memset(dv + t * W, 0, sizeof(float) * static_cast<size_t>(HS));
        std::memset(dqkv + b * T * W + t * W + g * group * HS, 0, sizeof(float) * static_cast<size_t>(group * HS));
      }
    float* P = scratch(kRows * T, 0);
    float* Wd = drop ? scratch(kRows * T, 1) : nullptr;
    float* ds = scratch(kRows * T, 2);
    float* f = drop ? scratch(T, 3) : nullptr;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      const int64_t bh = b * NH + h;
      const float* q = qkv + b * T * W + h * HS;
      float* dq = dqkv + b * T * W + h * HS;
      const float* dy = dout + b * T * C + h * HS;
      const float* st = stats + bh * T * 2;
      const uint64_t base = static_cast<uint64_t>(bh * T * T);
      for (int64_t r0 = 0; r0 < T; r0 += kRows) {
        const int64_t r1 = std::min(T, r0 + kRows), rows = r1 - r0;
        block_probs(P, T, q, k, W, HS, scale, r0, r1, nullptr, st);
        const float* w = dropped(P, Wd, T, T, r0, r1, base, mask, drop);
        // dv[0:r1] += w[r0:r1, 0:r1]^T @ dy[r0:r1]
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, 1.0f, w, T, dy + r0 * C, C, 1.0f, dv, W);
        // dw[r0:r1, 0:r1] = dy[r0:r1] @ v[0:r1]^T, then through dropout and softmax (in place)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, r1, HS, 1.0f, dy + r0 * C, C, v, W, 0.0f, ds, T);
        for (int64_t t = r0; t < r1; ++t) {
          const float* prow = P + (t - r0) * T;
          float* drow = ds + (t - r0) * T;
          if (drop) {
            mask.factors(base + t * T, t + 1, f);
#pragma omp simd
            for (int64_t s = 0; s <= t; ++s) drow[s] *= f[s];
          }
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t s = 0; s <= t; ++s) dot += prow[s] * drow[s];
#pragma omp simd
          for (int64_t s = 0; s <= t; ++s) drow[s] = prow[s] * (drow[s] - dot);
          for (int64_t s = t + 1; s < r1; ++s) drow[s] = 0.0f;
        }
        // dq[r0:r1] += scale * ds[r0:r1, 0:r1] @ k[0:r1];  dk[0:r1] += scale * ds[r0:r1, 0:r1]^T @ q[r0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, r1, scale, ds, T, k, W, 1.0f, dq + r0 * W, W);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, HS, rows, scale, ds, T, q + r0 * W, W, 1.0f, dk, W);
      }
    }
  }
}

}  // namespace gptrain::cpu
