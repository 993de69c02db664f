// SwiGLU: silu(gate) * up over the fused gate | up rows, with a vectorized exp (vec_math.h).
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"

namespace gptrain::cpu {

void swiglu_forward(float* out, const float* inp, const SwigluParams& p) {
  const int64_t M = p.M;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    const float* g = inp + n * 2 * M;
    const float* u = g + M;
    float* o = out + n * M;
#pragma omp simd
    for (int64_t m = 0; m < M; ++m) {
      const float s = 1.0f / (1.0f + exp_fast(-g[m]));
      o[m] = g[m] * s * u[m];
    }
  }
}

void swiglu_backward(float* dinp, const float* inp, const float* dout, const SwigluParams& p) {
  const int64_t M = p.M;
  const bool write = p.dinp == InputGrad::Write;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < p.N; ++n) {
    const float* g = inp + n * 2 * M;
    const float* u = g + M;
    const float* d = dout + n * M;
    float* dg = dinp + n * 2 * M;
    float* du = dg + M;
#pragma omp simd
    for (int64_t m = 0; m < M; ++m) {
      const float s = 1.0f / (1.0f + exp_fast(-g[m]));
      const float grad_g = d[m] * u[m] * s * (1.0f + g[m] * (1.0f - s)), grad_u = d[m] * g[m] * s;
      dg[m] = write ? grad_g : dg[m] + grad_g;
      du[m] = write ? grad_u : du[m] + grad_u;
    }
  }
}

}  // namespace gptrain::cpu
