// Dropout with a counter-based mask (kernels/dropout_mask.h): nothing is stored for backward.
#include <algorithm>

#include "kernels/cpu/cpu.h"
#include "kernels/dropout_mask.h"

namespace gptrain::cpu {

namespace {
constexpr int64_t kChunk = 4096;  // multipliers are generated a chunk at a time, on the stack
}

void dropout_forward(float* out, const float* inp, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p, p.offset);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.n; c += kChunk) {
    const int64_t n = std::min(kChunk, p.n - c);
    float f[kChunk];
    mask.factors(static_cast<uint64_t>(c), n, f);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[c + i] = inp[c + i] * f[i];
  }
}

void dropout_backward(float* dinp, const float* dout, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p, p.offset);
  const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < p.n; c += kChunk) {
    const int64_t n = std::min(kChunk, p.n - c);
    float f[kChunk];
    mask.factors(static_cast<uint64_t>(c), n, f);
    if (write) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dinp[c + i] = dout[c + i] * f[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) dinp[c + i] += dout[c + i] * f[i];
    }
  }
}

}  // namespace gptrain::cpu
