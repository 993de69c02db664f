// Dropout with a counter-based mask (kernels/dropout_mask.h): nothing is stored for backward.
#include "kernels/cpu/cpu.h"
#include "kernels/dropout_mask.h"

namespace gptrain::cpu {

void dropout_forward(float* out, const float* inp, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.n; ++i) out[i] = inp[i] * mask.factor(static_cast<uint64_t>(i));
}

void dropout_backward(float* dinp, const float* dout, const DropoutParams& p) {
  const DropoutMask mask(p.seed, p.p);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < p.n; ++i) dinp[i] += dout[i] * mask.factor(static_cast<uint64_t>(i));
}

}  // namespace gptrain::cpu
