// RMSNorm over rows (Llama's and Qwen3's block norms) and over the heads of packed qkv (Qwen3's
// query/key norms). Rows in parallel; the weight gradient in column blocks with rows in order, so
// it does not depend on the thread count.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

namespace {

inline float rms_row_forward(float* y, const float* x, const float* w, int64_t C, float eps) {
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
  const float s = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] = x[c] * s * w[c];
  return s;
}

// dx = s (w dy - x s^2 mean(w dy x)); dx may be dy itself (the dot product comes first).
inline void rms_row_dinp(float* dx, const float* dy, const float* x, const float* w, float s, int64_t C, bool write) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t c = 0; c < C; ++c) dot += w[c] * dy[c] * x[c];
  const float k = s * s * dot / static_cast<float>(C);
  if (write) {
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dx[c] = s * (w[c] * dy[c] - x[c] * k);
  } else {
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) dx[c] += s * (w[c] * dy[c] - x[c] * k);
  }
}

// dw[c] += sum over rows r of x[r,c] rstd[r] dy[r,c], in column blocks with rows in order.
void rms_weight_grad(float* dw, const float* dout, const float* inp, const float* rstd, int64_t rows, int64_t C) {
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
    float acc[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = inp + r * C;
      const float* dy = dout + r * C;
      const float s = rstd[r];
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += x[c] * s * dy[c];
    }
    for (int64_t c = c0; c < c1; ++c) dw[c] += acc[c - c0];
  }
}

}  // namespace

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, const RmsNormParams& p) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.N; ++r) rstd[r] = rms_row_forward(out + r * p.C, inp + r * p.C, weight, p.C, p.eps);
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, const RmsNormParams& p) {
  const int64_t C = p.C;
  // The weight gradient first: backward may run in place (dinp == dout).
  if (dweight) rms_weight_grad(dweight, dout, inp, rstd, p.N, C);
  if (dinp) {
    const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < p.N; ++r) rms_row_dinp(dinp + r * C, dout + r * C, inp + r * C, weight, rstd[r], C, write);
  }
}

void qk_norm_forward(float* out, float* rstd, const float* inp, const float* q_weight, const float* k_weight,
                     const QkNormParams& p) {
  const int64_t W = p.qkv_width(), heads = p.NH + p.NKV, HS = p.HS;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t h = 0; h < heads; ++h)
      rstd[n * heads + h] = rms_row_forward(out + n * W + h * HS, inp + n * W + h * HS, h < p.NH ? q_weight : k_weight,
                                            HS, p.eps);
    if (out != inp)
      std::memcpy(out + n * W + heads * HS, inp + n * W + heads * HS, sizeof(float) * static_cast<size_t>(W - heads * HS));
  }
}

void qk_norm_backward(float* dinp, float* dq_weight, float* dk_weight, const float* dout, const float* inp,
                      const float* q_weight, const float* k_weight, const float* rstd, const QkNormParams& p) {
  const int64_t W = p.qkv_width(), heads = p.NH + p.NKV, HS = p.HS, NH = p.NH;
  // Query heads are h < NH of each token, key heads NH <= h < NH + NKV; rstd[n, h] in that order.
  const auto head_weight_grad = [&](float* dw, int64_t first, int64_t count) {
    constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < HS; c0 += kBlock) {
      const int64_t c1 = c0 + kBlock < HS ? c0 + kBlock : HS;
      float acc[kBlock] = {};
      for (int64_t n = 0; n < p.N; ++n)
        for (int64_t h = first; h < first + count; ++h) {
          const int64_t off = n * W + h * HS;
          const float s = rstd[n * heads + h];
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) acc[c - c0] += inp[off + c] * s * dout[off + c];
        }
      for (int64_t c = c0; c < c1; ++c) dw[c] += acc[c - c0];
    }
  };
  if (dq_weight) head_weight_grad(dq_weight, 0, NH);
  if (dk_weight) head_weight_grad(dk_weight, NH, p.NKV);
  if (dinp) {
    const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < p.N; ++n) {
      for (int64_t h = 0; h < heads; ++h)
        rms_row_dinp(dinp + n * W + h * HS, dout + n * W + h * HS, inp + n * W + h * HS, h < NH ? q_weight : k_weight,
                     rstd[n * heads + h], HS, write);
      float* dv = dinp + n * W + heads * HS;
      const float* gv = dout + n * W + heads * HS;
      if (write) {
        if (dv != gv) std::memcpy(dv, gv, sizeof(float) * static_cast<size_t>(W - heads * HS));
      } else {
#pragma omp simd
        for (int64_t c = 0; c < W - heads * HS; ++c) dv[c] += gv[c];
      }
    }
  }
}

}  // namespace gptrain::cpu
