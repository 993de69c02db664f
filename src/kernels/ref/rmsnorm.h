// Reference kernels: RMSNorm, Qwen3's per-head query/key norms, SwiGLU. Scalar loops templated on
// the element type (see ref.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

namespace detail {

// One row of C at x (out at y): rstd, then y = x * rstd * w.
template <class T>
T rms_row_forward(T* y, const T* x, const T* w, int64_t C, float eps) {
  T ms = 0;
  for (int64_t c = 0; c < C; ++c) ms += x[c] * x[c];
  ms /= static_cast<T>(C);
  const T s = T(1) / std::sqrt(ms + static_cast<T>(eps));
  for (int64_t c = 0; c < C; ++c) y[c] = x[c] * s * w[c];
  return s;
}

// dx = s (w dy - x s^2 mean(w dy x)); dw += x s dy. dx may be dy (in place): the row's dot product
// is taken before any dx is written.
template <class T>
void rms_row_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, T s, int64_t C, bool write) {
  T dot = 0;
  for (int64_t c = 0; c < C; ++c) dot += w[c] * dy[c] * x[c];
  dot /= static_cast<T>(C);
  if (dw)
    for (int64_t c = 0; c < C; ++c) dw[c] += x[c] * s * dy[c];
  if (dx)
    for (int64_t c = 0; c < C; ++c) {
      const T g = s * (w[c] * dy[c] - x[c] * s * s * dot);
      dx[c] = write ? g : dx[c] + g;
    }
}

}  // namespace detail

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* inp, const T* weight, const RmsNormParams& p) {
  for (int64_t r = 0; r < p.N; ++r) rstd[r] = detail::rms_row_forward(out + r * p.C, inp + r * p.C, weight, p.C, p.eps);
}

template <class T>
void rmsnorm_backward(T* dinp, T* dweight, const T* dout, const T* inp, const T* weight, const T* rstd,
                      const RmsNormParams& p) {
  for (int64_t r = 0; r < p.N; ++r)
    detail::rms_row_backward(dinp ? dinp + r * p.C : nullptr, dweight, dout + r * p.C, inp + r * p.C, weight, rstd[r],
                             p.C, p.dinp == InputGrad::Write);
}

template <class T>
void qk_norm_forward(T* out, T* rstd, const T* inp, const T* q_weight, const T* k_weight, const QkNormParams& p) {
  const int64_t W = p.qkv_width(), heads = p.NH + p.NKV;
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t h = 0; h < heads; ++h)
      rstd[n * heads + h] = detail::rms_row_forward(out + n * W + h * p.HS, inp + n * W + h * p.HS,
                                                    h < p.NH ? q_weight : k_weight, p.HS, p.eps);
    for (int64_t c = heads * p.HS; c < W; ++c) out[n * W + c] = inp[n * W + c];
  }
}

template <class T>
void qk_norm_backward(T* dinp, T* dq_weight, T* dk_weight, const T* dout, const T* inp, const T* q_weight,
                      const T* k_weight, const T* rstd, const QkNormParams& p) {
  const int64_t W = p.qkv_width(), heads = p.NH + p.NKV;
  const bool write = p.dinp == InputGrad::Write;
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t h = 0; h < heads; ++h)
      detail::rms_row_backward(dinp ? dinp + n * W + h * p.HS : nullptr, h < p.NH ? dq_weight : dk_weight,
                               dout + n * W + h * p.HS, inp + n * W + h * p.HS, h < p.NH ? q_weight : k_weight,
                               rstd[n * heads + h], p.HS, write);
    if (dinp)
      for (int64_t c = heads * p.HS; c < W; ++c) dinp[n * W + c] = write ? dout[n * W + c] : dinp[n * W + c] + dout[n * W + c];
  }
}

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <class T>
void swiglu_forward(T* out, const T* inp, const SwigluParams& p) {
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t m = 0; m < p.M; ++m) {
      const T g = inp[n * 2 * p.M + m], u = inp[n * 2 * p.M + p.M + m];
      out[n * p.M + m] = g * sigmoid(g) * u;
    }
}

template <class T>
void swiglu_backward(T* dinp, const T* inp, const T* dout, const SwigluParams& p) {
  const bool write = p.dinp == InputGrad::Write;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t m = 0; m < p.M; ++m) {
      const T g = inp[n * 2 * p.M + m], u = inp[n * 2 * p.M + p.M + m], d = dout[n * p.M + m];
      const T s = sigmoid(g);
      const T dg = d * u * s * (T(1) + g * (T(1) - s)), du = d * g * s;
      T* pg = dinp + n * 2 * p.M + m;
      T* pu = pg + p.M;
      *pg = write ? dg : *pg + dg;
      *pu = write ? du : *pu + du;
    }
}

}  // namespace gptrain::ref
