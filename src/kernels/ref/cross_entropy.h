// Reference kernel: softmax cross-entropy. Scalar loops templated on the element type (see ref.h).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/params.h"

namespace gptrain::ref {

using namespace gptrain::kernels;

template <class T>
void cross_entropy_forward(T* losses, T* lse, const T* logits, const int32_t* targets,
                           const CrossEntropyParams& p) {
  for (int64_t r = 0; r < p.N; ++r) {
    const T* x = logits + r * p.V;
    T maxv = -INFINITY;
    for (int64_t v = 0; v < p.V; ++v) maxv = std::max(maxv, x[v]);
    T sum = 0;
    for (int64_t v = 0; v < p.V; ++v) sum += std::exp(x[v] - maxv);
    lse[r] = maxv + std::log(sum);
    losses[r] = targets[r] == p.ignore_index ? T(0) : lse[r] - x[targets[r]];
  }
}

// dloss: one scale per row, or null for p.dloss_scale on every row.
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                            const T* dloss, const CrossEntropyParams& p) {
  for (int64_t r = 0; r < p.N; ++r) {
    const bool ignored = targets[r] == p.ignore_index;
    const T d = dloss ? dloss[r] : static_cast<T>(p.dloss_scale);
    for (int64_t v = 0; v < p.V; ++v) {
      const T prob = std::exp(logits[r * p.V + v] - lse[r]);
      dlogits[r * p.V + v] = ignored ? T(0) : (prob - (v == targets[r] ? T(1) : T(0))) * d;
    }
  }
}

template <class T>
LossTotal loss_total(const T* losses, const int32_t* targets, const CrossEntropyParams& p) {
  LossTotal t{0.0, 0};
  for (int64_t r = 0; r < p.N; ++r)
    if (targets[r] != p.ignore_index) {
      if (losses) t.sum += static_cast<double>(losses[r]);
      ++t.counted;
    }
  return t;
}

}  // namespace gptrain::ref
