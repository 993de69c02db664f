// The bf16 conversions of the CUDA bf16 backend (kernels/cuda/bf16_backend.cpp): widening, rounding
// to nearest and the weight copy's stochastic rounding, bit for bit the host's (tensor/dtype.h:
// float_to_bf16, float_to_bf16_stochastic; the random bits are StochasticRounding's constexpr
// counter draws, run here), so a GPU run rounds exactly as the cpu-bf16 reference does.
#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/stochastic_rounding.h"

namespace gptrain::kernels::cuda {

namespace {

__global__ void widen_kernel(float* dst, const uint16_t* src, int64_t n) {
  GPTRAIN_CUDA_FOR(i, n) dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

__global__ void round_kernel(uint16_t* dst, const float* src, int64_t n) {
  GPTRAIN_CUDA_FOR(i, n) dst[i] = to_bf16_nearest(src[i]);
}

__global__ void round_stochastic_kernel(uint16_t* dst, const float* src, int64_t n, StochasticRounding rounding) {
  GPTRAIN_CUDA_FOR(i, n) dst[i] = to_bf16_stochastic(src[i], rounding.bits(static_cast<uint64_t>(i)));
}

}  // namespace

void widen_bf16(float* dst, const uint16_t* src, int64_t n) {
  if (n == 0) return;
  widen_kernel<<<blocks_for(n), kThreads>>>(dst, src, n);
  check_launch("widen_bf16");
}

void round_bf16(uint16_t* dst, const float* src, int64_t n) {
  if (n == 0) return;
  round_kernel<<<blocks_for(n), kThreads>>>(dst, src, n);
  check_launch("round_bf16");
}

void round_bf16_stochastic(uint16_t* dst, const float* src, int64_t n, const StochasticRounding& rounding) {
  if (n == 0) return;
  round_stochastic_kernel<<<blocks_for(n), kThreads>>>(dst, src, n, rounding);
  check_launch("round_bf16_stochastic");
}

}  // namespace gptrain::kernels::cuda
