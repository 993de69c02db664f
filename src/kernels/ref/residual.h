// Reference kernel: residual. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void residual_forward(T* out, const T* a, const T* b, const ResidualParams& p) {
  for (int64_t i = 0; i < p.n; ++i) out[i] = a[i] + b[i];
}

template <class T>
void residual_backward(T* da, T* db, const T* dout, const ResidualParams& p) {
  for (int64_t i = 0; i < p.n; ++i) {
    if (da) da[i] += dout[i];
    if (db) db[i] += dout[i];
  }
}

}  // namespace gptrain::ref
