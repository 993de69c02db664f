// GELU, tanh approximation, with a vectorized tanh (vec_math.h).
#include "kernels/cpu/cpu.h"
#include "kernels/cpu/vec_math.h"

namespace gptrain::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCoeff = 0.044715f;

#pragma omp declare simd
inline float gelu_grad(float x, float dy) {
  const float th = tanh_fast(kSqrt2OverPi * (x + kCoeff * x * x * x));
  const float dth = (1.0f - th * th) * kSqrt2OverPi * (1.0f + 3.0f * kCoeff * x * x);
  return dy * (0.5f * (1.0f + th) + 0.5f * x * dth);
}
}  // namespace

void gelu_forward(float* out, const float* inp, const GeluParams& p) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < p.n; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + tanh_fast(kSqrt2OverPi * (x + kCoeff * x * x * x)));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, const GeluParams& p) {
  if (p.dinp == InputGrad::Write) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < p.n; ++i) dinp[i] = gelu_grad(inp[i], dout[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < p.n; ++i) dinp[i] += gelu_grad(inp[i], dout[i]);
  }
}

}  // namespace gptrain::cpu
