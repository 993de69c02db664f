// Softmax cross-entropy over the vocabulary, fused: forward keeps only the log-sum-exp per row,
// backward turns the logits into their gradient in one pass (dlogits may alias logits).
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"

namespace gptrain::cpu {

void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                           const CrossEntropyParams& p) {
  const int64_t V = p.V;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.N; ++r) {
    const float* x = logits + r * V;
    float maxv = -INFINITY;
#pragma omp simd reduction(max : maxv)
    for (int64_t v = 0; v < V; ++v) maxv = x[v] > maxv ? x[v] : maxv;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t v = 0; v < V; ++v) sum += exp_fast(x[v] - maxv);
    lse[r] = maxv + std::log(sum);
    losses[r] = targets[r] == p.ignore_index ? 0.0f : lse[r] - x[targets[r]];
  }
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, const float* dloss, const CrossEntropyParams& p) {
  const int64_t V = p.V;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < p.N; ++r) {
    const float* x = logits + r * V;
    float* dx = dlogits + r * V;
    if (targets[r] == p.ignore_index) {
#pragma omp simd
      for (int64_t v = 0; v < V; ++v) dx[v] = 0.0f;
      continue;
    }
    const float l = lse[r], d = dloss ? dloss[r] : p.dloss_scale;
#pragma omp simd
    for (int64_t v = 0; v < V; ++v) dx[v] = exp_fast(x[v] - l) * d;
    dx[targets[r]] -= d;
  }
}

LossTotal loss_total(const float* losses, const int32_t* targets, const CrossEntropyParams& p) {
  // In row order, in double: the mean does not depend on the thread count. No losses: the count alone.
  LossTotal t{0.0, 0};
  for (int64_t r = 0; r < p.N; ++r)
    if (targets[r] != p.ignore_index) {
      if (losses) t.sum += losses[r];
      ++t.counted;
    }
  return t;
}

}  // namespace gptrain::cpu
