// Residual connection: out = a + b.
#include "kernels/cpu/cpu.h"

namespace gptrain::cpu {

void residual_forward(float* out, const float* a, const float* b, const ResidualParams& p) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < p.n; ++i) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, const ResidualParams& p) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < p.n; ++i) {
    if (da) da[i] += dout[i];
    if (db) db[i] += dout[i];
  }
}

}  // namespace gptrain::cpu
