// Reference kernels: sequence pooling for classifier heads (see PoolParams) and row gathering.
#pragma once

#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void pool_forward(T* out, const T* inp, const PoolParams& p) {
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t c = 0; c < p.C; ++c) {
      const T* x = inp + b * p.T * p.C + c;
      T v = 0;
      if (p.mode == PoolMode::Last) v = x[(p.T - 1) * p.C];
      if (p.mode == PoolMode::First) v = x[0];
      if (p.mode == PoolMode::Mean) {
        for (int64_t t = 0; t < p.T; ++t) v += x[t * p.C];
        v /= static_cast<T>(p.T);
      }
      out[b * p.C + c] = v;
    }
}

template <class T>
void pool_backward(T* dinp, const T* dout, const PoolParams& p) {
  if (p.dinp == InputGrad::Write)
    for (int64_t i = 0; i < p.B * p.T * p.C; ++i) dinp[i] = T(0);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t c = 0; c < p.C; ++c) {
      T* dx = dinp + b * p.T * p.C + c;
      const T d = dout[b * p.C + c];
      if (p.mode == PoolMode::Last) dx[(p.T - 1) * p.C] += d;
      if (p.mode == PoolMode::First) dx[0] += d;
      if (p.mode == PoolMode::Mean)
        for (int64_t t = 0; t < p.T; ++t) dx[t * p.C] += d / static_cast<T>(p.T);
    }
}

template <class T>
void gather_rows_forward(T* out, const T* inp, const int32_t* rows, const GatherRowsParams& p) {
  for (int64_t r = 0; r < p.R; ++r)
    for (int64_t c = 0; c < p.C; ++c) out[r * p.C + c] = inp[static_cast<int64_t>(rows[r]) * p.C + c];
}

}  // namespace gptrain::ref
