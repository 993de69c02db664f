// LayerNorm over the last dimension (biased variance, eps inside the square root; bias optional).
#include <cmath>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, const LayerNormParams& p) {
  const int64_t C = p.C;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.N; ++r) {
    const float* x = inp + r * C;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += x[c];
    const float m = sum / static_cast<float>(C);
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < C; ++c) var += (x[c] - m) * (x[c] - m);
    const float s = 1.0f / std::sqrt(var / static_cast<float>(C) + p.eps);
    float* o = out + r * C;
    if (bias) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * s * weight[c];
    }
    mean[r] = m;
    rstd[r] = s;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd,
                        const LayerNormParams& p) {
  const int64_t C = p.C, N = p.N;
  if (dinp) {
    const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; ++r) {
      const float* x = inp + r * C;
      const float* dy = dout + r * C;
      const float m = mean[r], s = rstd[r];
      float dnorm_sum = 0.0f, dnorm_norm_sum = 0.0f;
#pragma omp simd reduction(+ : dnorm_sum, dnorm_norm_sum)
      for (int64_t c = 0; c < C; ++c) {
        const float dnorm = weight[c] * dy[c];
        dnorm_sum += dnorm;
        dnorm_norm_sum += dnorm * (x[c] - m) * s;
      }
      const float dnorm_mean = dnorm_sum / static_cast<float>(C);
      const float dnorm_norm_mean = dnorm_norm_sum / static_cast<float>(C);
      float* dx = dinp + r * C;
      if (write) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float norm = (x[c] - m) * s;
          dx[c] = (weight[c] * dy[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float norm = (x[c] - m) * s;
          dx[c] += (weight[c] * dy[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
      }
    }
  }
  if (dweight || dbias) {
    // Column blocks per thread, rows in order: deterministic for any thread count.
    constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
      float dw[kBlock] = {}, db[kBlock] = {};
      for (int64_t r = 0; r < N; ++r) {
        const float* x = inp + r * C;
        const float* dy = dout + r * C;
        const float m = mean[r], s = rstd[r];
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) {
          dw[c - c0] += (x[c] - m) * s * dy[c];
          db[c - c0] += dy[c];
        }
      }
      for (int64_t c = c0; c < c1; ++c) {
        if (dweight) dweight[c] += dw[c - c0];
        if (dbias) dbias[c] += db[c - c0];
      }
    }
  }
}

}  // namespace gptrain::cpu
