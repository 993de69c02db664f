// Reference kernel: attention of new positions against KV caches (see AttentionDecodeParams).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void attention_decode_forward(T* out, const T* qkv, const DecodeSeq* seqs, const AttentionDecodeParams& p) {
  const int64_t W = p.qkv_width(), C = p.NH * p.HS, KV = p.NKV * p.HS, group = p.NH / p.NKV;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  for (int64_t i = 0; i < p.n_seqs; ++i) {
    const DecodeSeq& sq = seqs[i];
    T* kc = static_cast<T*>(sq.k_cache);
    T* vc = static_cast<T*>(sq.v_cache);
    for (int64_t t = 0; t < sq.rows; ++t) {  // append
      const T* row = qkv + (sq.first_row + t) * W;
      for (int64_t j = 0; j < KV; ++j) {
        kc[(sq.past + t) * KV + j] = row[C + j];
        vc[(sq.past + t) * KV + j] = row[C + KV + j];
      }
    }
    std::vector<T> w(static_cast<size_t>(sq.past + sq.rows));
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < sq.rows; ++t) {
        const int64_t last = sq.past + t;
        const T* q = qkv + (sq.first_row + t) * W + h * p.HS;
        const int64_t kv = (h / group) * p.HS;
        T maxv = -INFINITY;
        for (int64_t s = 0; s <= last; ++s) {
          T dot = 0;
          for (int64_t d = 0; d < p.HS; ++d) dot += q[d] * kc[s * KV + kv + d];
          w[s] = dot * scale;
          maxv = std::max(maxv, w[s]);
        }
        T sum = 0;
        for (int64_t s = 0; s <= last; ++s) sum += (w[s] = std::exp(w[s] - maxv));
        T* o = out + (sq.first_row + t) * C + h * p.HS;
        for (int64_t d = 0; d < p.HS; ++d) o[d] = 0;
        for (int64_t s = 0; s <= last; ++s)
          for (int64_t d = 0; d < p.HS; ++d) o[d] += w[s] / sum * vc[s * KV + kv + d];
      }
  }
}

}  // namespace gptrain::ref
