// Reference kernel: dropout. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <cstdint>

#include "kernels/dropout_mask.h"
#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void dropout_forward(T* out, const T* inp, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p, p.offset);
  for (int64_t i = 0; i < p.n; ++i) out[i] = p.p > 0 ? inp[i] * static_cast<T>(mask.factor(i)) : inp[i];
}

template <class T>
void dropout_backward(T* dinp, const T* dout, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p, p.offset);
  for (int64_t i = 0; i < p.n; ++i) {
    const T g = p.p > 0 ? dout[i] * static_cast<T>(mask.factor(i)) : dout[i];
    dinp[i] = p.dinp == InputGrad::Write ? g : dinp[i] + g;
  }
}

}  // namespace gptrain::ref
