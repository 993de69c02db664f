// Reference kernel: causal multi-head attention. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/dropout_mask.h"
#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void attention_forward(T* out, T* att, const T* qkv, const AttentionParams& p) {
  const int64_t C = p.NH * p.HS, T_ = p.T;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  const DropoutMask mask(p.seed, p.dropout_p);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < T_; ++t) {
        const T* q = qkv + (b * T_ + t) * 3 * C + h * p.HS;
        T* a = att + ((b * p.NH + h) * T_ + t) * T_;
        T maxv = -INFINITY;
        for (int64_t s = 0; s <= t; ++s) {
          const T* k = qkv + (b * T_ + s) * 3 * C + C + h * p.HS;
          T dot = 0;
          for (int64_t d = 0; d < p.HS; ++d) dot += q[d] * k[d];
          a[s] = dot * scale;
          maxv = std::max(maxv, a[s]);
        }
        T sum = 0;
        for (int64_t s = 0; s <= t; ++s) {
          a[s] = std::exp(a[s] - maxv);
          sum += a[s];
        }
        for (int64_t s = 0; s < T_; ++s) a[s] = s <= t ? a[s] / sum : T(0);
        T* o = out + (b * T_ + t) * C + h * p.HS;
        for (int64_t d = 0; d < p.HS; ++d) o[d] = 0;
        const uint64_t row = static_cast<uint64_t>(((b * p.NH + h) * T_ + t) * T_);
        for (int64_t s = 0; s <= t; ++s) {
          const T w = p.dropout_p > 0 ? a[s] * static_cast<T>(mask.factor(row + s)) : a[s];
          const T* v = qkv + (b * T_ + s) * 3 * C + 2 * C + h * p.HS;
          for (int64_t d = 0; d < p.HS; ++d) o[d] += w * v[d];
        }
      }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* att, const AttentionParams& p) {
  const int64_t C = p.NH * p.HS, T_ = p.T;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  const DropoutMask mask(p.seed, p.dropout_p);
  std::vector<T> datt(T_);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < T_; ++t) {
        const T* a = att + ((b * p.NH + h) * T_ + t) * T_;
        const T* dy = dout + (b * T_ + t) * C + h * p.HS;
        const uint64_t row = static_cast<uint64_t>(((b * p.NH + h) * T_ + t) * T_);
        // through out = dropout(att) @ v
        for (int64_t s = 0; s <= t; ++s) {
          const T f = p.dropout_p > 0 ? static_cast<T>(mask.factor(row + s)) : T(1);
          const T* v = qkv + (b * T_ + s) * 3 * C + 2 * C + h * p.HS;
          T* dv = dqkv + (b * T_ + s) * 3 * C + 2 * C + h * p.HS;
          T dot = 0;
          for (int64_t d = 0; d < p.HS; ++d) {
            dot += dy[d] * v[d];
            dv[d] += a[s] * f * dy[d];
          }
          datt[s] = dot * f;
        }
        // through softmax
        T dot_att = 0;
        for (int64_t s = 0; s <= t; ++s) dot_att += a[s] * datt[s];
        const T* q = qkv + (b * T_ + t) * 3 * C + h * p.HS;
        T* dq = dqkv + (b * T_ + t) * 3 * C + h * p.HS;
        for (int64_t s = 0; s <= t; ++s) {
          const T dscore = a[s] * (datt[s] - dot_att) * scale;
          const T* k = qkv + (b * T_ + s) * 3 * C + C + h * p.HS;
          T* dk = dqkv + (b * T_ + s) * 3 * C + C + h * p.HS;
          for (int64_t d = 0; d < p.HS; ++d) {
            dq[d] += dscore * k[d];
            dk[d] += dscore * q[d];
          }
        }
      }
}

}  // namespace gptrain::ref
