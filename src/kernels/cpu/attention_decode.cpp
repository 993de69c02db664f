// Attention of new positions against a KV cache: one task per (batch, head, new position); the
// dot products and the weighted sum are vectorized over the head size. Memory-bound for one new
// token, so no BLAS.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"

namespace gptrain::cpu {

void attention_decode_forward(float* out, const float* qkv, const float* k_cache, const float* v_cache,
                              const AttentionDecodeParams& p) {
  const int64_t C = p.NH * p.HS, HS = p.HS;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
#pragma omp parallel
  {
    std::vector<float> w(static_cast<size_t>(p.past + p.Tn));
#pragma omp for schedule(static) collapse(3)
    for (int64_t b = 0; b < p.B; ++b)
      for (int64_t h = 0; h < p.NH; ++h)
        for (int64_t t = 0; t < p.Tn; ++t) {
          const int64_t last = p.past + t;
          const float* q = qkv + (b * p.Tn + t) * 3 * C + h * HS;
          float maxv = -INFINITY;
          for (int64_t s = 0; s <= last; ++s) {
            const float* k = k_cache + (b * p.max_T + s) * C + h * HS;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < HS; ++d) dot += q[d] * k[d];
            w[s] = dot * scale;
            maxv = w[s] > maxv ? w[s] : maxv;
          }
          float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
          for (int64_t s = 0; s <= last; ++s) {
            w[s] = exp_fast(w[s] - maxv);
            sum += w[s];
          }
          const float inv = 1.0f / sum;
          float* o = out + (b * p.Tn + t) * C + h * HS;
          for (int64_t d = 0; d < HS; ++d) o[d] = 0.0f;
          for (int64_t s = 0; s <= last; ++s) {
            const float ws = w[s] * inv;
            const float* v = v_cache + (b * p.max_T + s) * C + h * HS;
#pragma omp simd
            for (int64_t d = 0; d < HS; ++d) o[d] += ws * v[d];
          }
        }
  }
}

}  // namespace gptrain::cpu
