// Reference kernel: GELU (tanh approximation). Scalar loops templated on the element type (see ref.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void gelu_forward(T* out, const T* inp, const GeluParams& p) {
  const T k = std::sqrt(T(2) / T(M_PI));
  for (int64_t i = 0; i < p.n; ++i) {
    const T x = inp[i];
    out[i] = T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
  }
}

template <class T>
void gelu_backward(T* dinp, const T* inp, const T* dout, const GeluParams& p) {
  const T k = std::sqrt(T(2) / T(M_PI));
  for (int64_t i = 0; i < p.n; ++i) {
    const T x = inp[i];
    const T th = std::tanh(k * (x + T(0.044715) * x * x * x));
    const T dth = (T(1) - th * th) * k * (T(1) + T(3) * T(0.044715) * x * x);
    const T g = dout[i] * (T(0.5) * (T(1) + th) + T(0.5) * x * dth);
    dinp[i] = p.dinp == InputGrad::Write ? g : dinp[i] + g;
  }
}

}  // namespace gptrain::ref
