// Reference kernel: matmul (linear). Scalar loops templated on the element type (see ref.h); every
// row is computed on its own, so the reference is batch invariant by construction.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, const MatmulParams& p) {
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.OC; ++o) {
      T acc = bias ? bias[o] : T(0);
      for (int64_t i = 0; i < p.IC; ++i) acc += inp[n * p.IC + i] * weight[o * p.IC + i];
      out[n * p.OC + o] = acc;
    }
}

template <class T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     const MatmulParams& p) {
  if (dinp && p.dinp == InputGrad::Write)
    for (int64_t i = 0; i < p.N * p.IC; ++i) dinp[i] = T(0);
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t o = 0; o < p.OC; ++o) {
      const T d = dout[n * p.OC + o];
      if (dbias) dbias[o] += d;
      for (int64_t i = 0; i < p.IC; ++i) {
        if (dinp) dinp[n * p.IC + i] += d * weight[o * p.IC + i];
        if (dweight) dweight[o * p.IC + i] += d * inp[n * p.IC + i];
      }
    }
}

}  // namespace gptrain::ref
