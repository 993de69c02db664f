// AdamW step and the global-norm helpers used by gradient clipping.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void adamw_step(float* param, const float* grad, float* m, float* v, const AdamWParams& p) {
  // Scalars are formed in double and rounded to float once, as PyTorch does with Python floats.
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(p.beta2, static_cast<double>(p.step)));
  const float decay = static_cast<float>(1.0 - p.lr * p.weight_decay);
  const float one_minus_beta1 = static_cast<float>(1.0 - p.beta1);
  const float beta2 = static_cast<float>(p.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - p.beta2);
  const float bc2 = static_cast<float>(bc2_sqrt);
  const float eps = static_cast<float>(p.eps);
  const float neg_step_size = static_cast<float>(-p.lr / bc1);
  // PyTorch's order of operations with three fused multiply-adds written out (ref/adamw.h's, and
  // the CUDA kernel's): m + (1-b1)(g - m), v b2 + ((1-b2) g) g and x decay + step m / denom. They
  // are what GCC's contraction made of the plain formula here; written out, no compiler or flag
  // can choose differently, so the CPU, the reference and the GPU agree bit for bit.
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < p.n; ++i) {
    const float g = grad[i];
    const float mi = std::fma(one_minus_beta1, g - m[i], m[i]);
    const float vi = std::fma(v[i], beta2, one_minus_beta2 * g * g);
    const float denom = std::sqrt(vi) / bc2 + eps;
    m[i] = mi;
    v[i] = vi;
    param[i] = std::fma(param[i], decay, neg_step_size * mi / denom);
  }
}

double sum_squares(const float* x, int64_t n) {
  // Fixed-size chunks summed in chunk order: the result does not depend on the thread count or
  // on the order in which an OpenMP reduction would combine partial sums.
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = c * kChunk; i < end; ++i) acc += static_cast<double>(x[i]) * x[i];
    partial[static_cast<size_t>(c)] = acc;
  }
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

void scale(float* x, float factor, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

}  // namespace gptrain::cpu
