// Reference kernels: AdamW (in the element type's precision, PyTorch's formula) and the
// global-norm helpers of gradient clipping. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void adamw_step(T* param, const T* grad, T* m, T* v, const AdamWParams& p) {
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(p.beta2, static_cast<double>(p.step)));
  for (int64_t i = 0; i < p.n; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      // float32: the CPU and CUDA kernels' operations exactly, their three fused multiply-adds
      // written out (kernels/cpu/adamw.cpp), so no compiler's contraction can make it differ.
      const T g = grad[i];
      m[i] = std::fma(static_cast<T>(1.0 - p.beta1), g - m[i], m[i]);
      v[i] = std::fma(v[i], static_cast<T>(p.beta2), static_cast<T>(1.0 - p.beta2) * g * g);
      const T denom = std::sqrt(v[i]) / static_cast<T>(bc2_sqrt) + static_cast<T>(p.eps);
      param[i] = std::fma(param[i], static_cast<T>(1.0 - p.lr * p.weight_decay),
                          static_cast<T>(-p.lr / bc1) * m[i] / denom);
    } else {
      T x = param[i];
      x *= static_cast<T>(1.0 - p.lr * p.weight_decay);
      m[i] = m[i] + static_cast<T>(1.0 - p.beta1) * (grad[i] - m[i]);
      v[i] = v[i] * static_cast<T>(p.beta2) + static_cast<T>(1.0 - p.beta2) * grad[i] * grad[i];
      const T denom = std::sqrt(v[i]) / static_cast<T>(bc2_sqrt) + static_cast<T>(p.eps);
      param[i] = x + static_cast<T>(-p.lr / bc1) * m[i] / denom;
    }
  }
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return acc;
}

template <class T>
void scale(T* x, float factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= static_cast<T>(factor);
}

}  // namespace gptrain::ref
