// Reference kernel: causal grouped-query attention. Scalar loops templated on the element type
// (see ref.h). Like every backend it keeps two statistics per query row (the softmax maximum and
// the reciprocal of its sum) and the backward recomputes the probabilities from them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/dropout_mask.h"
#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

namespace detail {

// Pointers to head h's query row t and kv-head row s within packed qkv (see AttentionParams).
template <class T>
struct QkvLayout {
  int64_t T_, NH, NKV, HS, W, group;
  QkvLayout(const AttentionParams& p) : T_(p.T), NH(p.NH), NKV(p.NKV), HS(p.HS), W(p.qkv_width()), group(p.NH / p.NKV) {}
  int64_t q(int64_t b, int64_t t, int64_t h) const { return (b * T_ + t) * W + h * HS; }
  int64_t k(int64_t b, int64_t s, int64_t h) const { return (b * T_ + s) * W + (NH + h / group) * HS; }
  int64_t v(int64_t b, int64_t s, int64_t h) const { return (b * T_ + s) * W + (NH + NKV + h / group) * HS; }
};

// Softmax probabilities of query row t of head h (entries 0..t) from the scores, recording or
// reusing (max, 1/sum).
template <class T>
void row_probabilities(std::vector<T>& prob, const T* qkv, const QkvLayout<T>& L, int64_t b, int64_t h, int64_t t,
                       T scale, T* st, bool record) {
  prob.assign(static_cast<size_t>(t + 1), T(0));
  T maxv = -INFINITY;
  for (int64_t s = 0; s <= t; ++s) {
    T dot = 0;
    for (int64_t d = 0; d < L.HS; ++d) dot += qkv[L.q(b, t, h) + d] * qkv[L.k(b, s, h) + d];
    prob[s] = dot * scale;
    maxv = std::max(maxv, prob[s]);
  }
  if (!record) maxv = st[0];
  T sum = 0;
  for (int64_t s = 0; s <= t; ++s) sum += (prob[s] = std::exp(prob[s] - maxv));
  const T inv = record ? T(1) / sum : st[1];
  for (int64_t s = 0; s <= t; ++s) prob[s] *= inv;
  if (record) {
    st[0] = maxv;
    st[1] = inv;
  }
}

}  // namespace detail

template <class T>
void attention_forward(T* out, T* stats, const T* qkv, const AttentionParams& p) {
  const detail::QkvLayout<T> L(p);
  const int64_t C = p.NH * p.HS, T_ = p.T;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  const DropoutMask mask(p.seed, p.dropout_p, p.dropout_offset);
  std::vector<T> prob;
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < T_; ++t) {
        T* st = stats + ((b * p.NH + h) * T_ + t) * 2;
        detail::row_probabilities(prob, qkv, L, b, h, t, scale, st, true);
        T* o = out + (b * T_ + t) * C + h * p.HS;
        for (int64_t d = 0; d < p.HS; ++d) o[d] = 0;
        const uint64_t row = static_cast<uint64_t>(((b * p.NH + h) * T_ + t) * T_);
        for (int64_t s = 0; s <= t; ++s) {
          const T w = p.dropout_p > 0 ? prob[s] * static_cast<T>(mask.factor(row + s)) : prob[s];
          for (int64_t d = 0; d < p.HS; ++d) o[d] += w * qkv[L.v(b, s, h) + d];
        }
      }
}

template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* stats, const AttentionParams& p) {
  const detail::QkvLayout<T> L(p);
  const int64_t C = p.NH * p.HS, T_ = p.T;
  const T scale = T(1) / std::sqrt(static_cast<T>(p.HS));
  const DropoutMask mask(p.seed, p.dropout_p, p.dropout_offset);
  if (p.dinp == InputGrad::Write)
    for (int64_t i = 0; i < p.B * T_ * L.W; ++i) dqkv[i] = T(0);
  std::vector<T> prob, datt(static_cast<size_t>(T_));
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.NH; ++h)
      for (int64_t t = 0; t < T_; ++t) {
        T st[2] = {stats[((b * p.NH + h) * T_ + t) * 2], stats[((b * p.NH + h) * T_ + t) * 2 + 1]};
        detail::row_probabilities(prob, qkv, L, b, h, t, scale, st, false);
        const T* dy = dout + (b * T_ + t) * C + h * p.HS;
        const uint64_t row = static_cast<uint64_t>(((b * p.NH + h) * T_ + t) * T_);
        // through out = dropout(prob) @ v
        for (int64_t s = 0; s <= t; ++s) {
          const T f = p.dropout_p > 0 ? static_cast<T>(mask.factor(row + s)) : T(1);
          T dot = 0;
          for (int64_t d = 0; d < p.HS; ++d) {
            dot += dy[d] * qkv[L.v(b, s, h) + d];
            dqkv[L.v(b, s, h) + d] += prob[s] * f * dy[d];
          }
          datt[s] = dot * f;
        }
        // through the softmax and the scaled scores
        T dot_att = 0;
        for (int64_t s = 0; s <= t; ++s) dot_att += prob[s] * datt[s];
        for (int64_t s = 0; s <= t; ++s) {
          const T dscore = prob[s] * (datt[s] - dot_att) * scale;
          for (int64_t d = 0; d < p.HS; ++d) {
            dqkv[L.q(b, t, h) + d] += dscore * qkv[L.k(b, s, h) + d];
            dqkv[L.k(b, s, h) + d] += dscore * qkv[L.q(b, t, h) + d];
          }
        }
      }
}

}  // namespace gptrain::ref
