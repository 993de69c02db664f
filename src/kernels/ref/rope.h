// Reference kernels: rotary position embedding (rotate-half layout) and its tables. Scalar loops
// templated on the element type (see ref.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void rope_table(T* cos_out, T* sin_out, const T* inv_freq, const int32_t* positions, const RopeTableParams& p) {
  for (int64_t n = 0; n < p.N; ++n) {
    const T pos = static_cast<T>(positions ? positions[n] : p.pos_offset + n % p.T);
    for (int64_t i = 0; i < p.half; ++i) {
      const T angle = inv_freq[i] * pos;
      cos_out[n * p.half + i] = std::cos(angle);
      sin_out[n * p.half + i] = std::sin(angle);
    }
  }
}

// sign +1: forward rotation; -1: its transpose (backward).
template <class T>
void rope_rotate(T* qkv, const T* cos_t, const T* sin_t, const RopeParams& p, int sign) {
  const int64_t W = p.qkv_width(), half = p.HS / 2;
  for (int64_t n = 0; n < p.N; ++n)
    for (int64_t h = 0; h < p.NH + p.NKV; ++h) {
      T* x = qkv + n * W + h * p.HS;
      for (int64_t i = 0; i < half; ++i) {
        const T c = cos_t[n * half + i], s = sign * sin_t[n * half + i];
        const T x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
      }
    }
}

template <class T>
void rope_forward(T* qkv, const T* cos_t, const T* sin_t, const RopeParams& p) {
  rope_rotate(qkv, cos_t, sin_t, p, +1);
}

template <class T>
void rope_backward(T* dqkv, const T* cos_t, const T* sin_t, const RopeParams& p) {
  rope_rotate(dqkv, cos_t, sin_t, p, -1);
}

}  // namespace gptrain::ref
