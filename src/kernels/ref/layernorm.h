// Reference kernel: layernorm (bias optional). Scalar loops templated on the element type (see ref.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       const LayerNormParams& p) {
  for (int64_t r = 0; r < p.N; ++r) {
    const T* x = inp + r * p.C;
    T m = 0;
    for (int64_t c = 0; c < p.C; ++c) m += x[c];
    m /= static_cast<T>(p.C);
    T var = 0;
    for (int64_t c = 0; c < p.C; ++c) var += (x[c] - m) * (x[c] - m);
    var /= static_cast<T>(p.C);
    const T s = T(1) / std::sqrt(var + static_cast<T>(p.eps));
    for (int64_t c = 0; c < p.C; ++c) out[r * p.C + c] = (x[c] - m) * s * weight[c] + (bias ? bias[c] : T(0));
    mean[r] = m;
    rstd[r] = s;
  }
}

template <class T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, const LayerNormParams& p) {
  for (int64_t r = 0; r < p.N; ++r) {
    const T* x = inp + r * p.C;
    const T* dy = dout + r * p.C;
    T dnorm_mean = 0, dnorm_norm_mean = 0;
    for (int64_t c = 0; c < p.C; ++c) {
      const T norm = (x[c] - mean[r]) * rstd[r];
      const T dnorm = weight[c] * dy[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * norm;
      if (dbias) dbias[c] += dy[c];
      if (dweight) dweight[c] += norm * dy[c];
    }
    dnorm_mean /= static_cast<T>(p.C);
    dnorm_norm_mean /= static_cast<T>(p.C);
    if (!dinp) continue;
    for (int64_t c = 0; c < p.C; ++c) {
      const T norm = (x[c] - mean[r]) * rstd[r];
      const T dnorm = weight[c] * dy[c];
      const T g = (dnorm - dnorm_mean - norm * dnorm_norm_mean) * rstd[r];
      dinp[r * p.C + c] = p.dinp == InputGrad::Write ? g : dinp[r * p.C + c] + g;
    }
  }
}

}  // namespace gptrain::ref
