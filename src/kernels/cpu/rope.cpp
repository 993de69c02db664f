// Rotary position embedding on packed qkv (rotate-half layout) and its tables.
#include <cmath>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void rope_table(float* cos_out, float* sin_out, const float* inv_freq, const int32_t* positions,
                const RopeTableParams& p) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    const float pos = static_cast<float>(positions ? positions[n] : p.pos_offset + n % p.T);
    for (int64_t i = 0; i < p.half; ++i) {
      // The angle rounded to float once, as transformers forms it (inv_freq @ position in f32);
      // its cosine and sine correctly rounded from double.
      const float angle = inv_freq[i] * pos;
      cos_out[n * p.half + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin_out[n * p.half + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

namespace {
template <bool kBackward>
void rotate(float* qkv, const float* cos_t, const float* sin_t, const RopeParams& p) {
  const int64_t W = p.qkv_width(), half = p.HS / 2, heads = p.NH + p.NKV;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    const float* c = cos_t + n * half;
    const float* s = sin_t + n * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* x1 = qkv + n * W + h * p.HS;
      float* x2 = x1 + half;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i];
        if constexpr (kBackward) {
          x1[i] = a * c[i] + b * s[i];
          x2[i] = b * c[i] - a * s[i];
        } else {
          x1[i] = a * c[i] - b * s[i];
          x2[i] = b * c[i] + a * s[i];
        }
      }
    }
  }
}
}  // namespace

void rope_forward(float* qkv, const float* cos_t, const float* sin_t, const RopeParams& p) {
  rotate<false>(qkv, cos_t, sin_t, p);
}

void rope_backward(float* dqkv, const float* cos_t, const float* sin_t, const RopeParams& p) {
  rotate<true>(dqkv, cos_t, sin_t, p);
}

}  // namespace gptrain::cpu
