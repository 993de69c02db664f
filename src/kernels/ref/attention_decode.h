// Reference kernel: attention of new positions against a KV cache (see AttentionDecodeParams).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void attention_decode_forward(T* out, const T* qkv, const T* k_cache, const T* v_cache,
                              const AttentionDecodeParams& p) {
  const int64_t C = p.NH * p.HS;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  std::vector<T> w(static_cast<size_t>(p.past + p.Tn));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < p.Tn; ++t) {
        const int64_t last = p.past + t;
        const T* q = qkv + (b * p.Tn + t) * 3 * C + h * p.HS;
        T maxv = -INFINITY;
        for (int64_t s = 0; s <= last; ++s) {
          const T* k = k_cache + (b * p.max_T + s) * C + h * p.HS;
          T dot = 0;
          for (int64_t d = 0; d < p.HS; ++d) dot += q[d] * k[d];
          w[s] = dot * scale;
          maxv = std::max(maxv, w[s]);
        }
        T sum = 0;
        for (int64_t s = 0; s <= last; ++s) sum += (w[s] = std::exp(w[s] - maxv));
        T* o = out + (b * p.Tn + t) * C + h * p.HS;
        for (int64_t d = 0; d < p.HS; ++d) o[d] = 0;
        for (int64_t s = 0; s <= last; ++s) {
          const T* v = v_cache + (b * p.max_T + s) * C + h * p.HS;
          for (int64_t d = 0; d < p.HS; ++d) o[d] += w[s] / sum * v[d];
        }
      }
}

}  // namespace gptrain::ref
