// Shared by the .cu files of the CUDA backend: launch sizes and the fixed-shape reductions
// (a warp's tree in lane order; a block's warps in order), so every sum has one order.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/dropout_mask.h"

namespace gptrain::kernels::cuda {

inline constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(b, 1, 65535LL * 16));
}

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// A block's reduction (each warp's tree, then the warps' results in order), given to every thread;
// `shared` holds one float per warp.
template <class WarpReduce>
__device__ float block_reduce(float v, float* shared, float identity, WarpReduce warp_reduce) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_reduce(v);
  __syncthreads();  // a previous reduction's readers are done with `shared`
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  return warp_reduce(lane < blockDim.x / 32 ? shared[lane] : identity);
}
__device__ inline float block_sum(float v, float* shared) {
  return block_reduce(v, shared, 0.0f, [](float x) { return warp_sum(x); });
}
__device__ inline float block_max(float v, float* shared) {
  return block_reduce(v, shared, -INFINITY, [](float x) { return warp_max(x); });
}

// The storage types of the kernels that come in float32 and bf16 (bf16 as its bits): arithmetic is
// float32 either way; a bf16 load is exact, a bf16 store rounds to nearest, ties to even, NaN kept
// quiet (tensor/dtype.h's float_to_bf16, bit for bit), so a kernel instantiated for bf16 computes
// what the float32 one computes on the widened values, rounded once where it stores.
__device__ inline uint16_t to_bf16_nearest(float f) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
// Stochastic rounding with 16 random bits (tensor/dtype.h's float_to_bf16_stochastic, bit for bit).
__device__ inline uint16_t to_bf16_stochastic(float f, uint16_t random) {
  const uint32_t bits = __float_as_uint(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  if ((bits & 0x7fffffffu) == 0x7f800000u) return static_cast<uint16_t>(bits >> 16);              // infinity
  return static_cast<uint16_t>((bits + random) >> 16);
}
__device__ inline float load(const float* p) { return *p; }
__device__ inline float load(const uint16_t* p) { return __uint_as_float(static_cast<uint32_t>(*p) << 16); }
__device__ inline void store(float* p, float v) { *p = v; }
__device__ inline void store(uint16_t* p, float v) { *p = to_bf16_nearest(v); }

// A warp holds a head row in kMaxHeadLanes registers a lane.
inline constexpr int kMaxHeadLanes = static_cast<int>(kMaxHeadSize / 32);

// The warp's dot product of two head rows.
template <class A, class B>
__device__ inline float head_dot(const A* a, const B* b, int64_t HS) {
  float d = 0.0f;
  for (int64_t i = threadIdx.x % 32; i < HS; i += 32) d += load(a + i) * load(b + i);
  return warp_sum(d);
}

// The CPU's mask (kernels/dropout_mask.h), element for element: its generator's key, threshold and
// scale are formed on the host; the counter draws are CounterRng's constexpr code, run here
// (--expt-relaxed-constexpr), so a GPU run drops exactly what a CPU run with the seed drops.
struct DeviceMask {
  CounterRng rng;
  uint32_t threshold;
  float scale;
  uint64_t offset;
  bool active;  // p > 0: otherwise a copy
};

inline DeviceMask device_mask(const DropoutParams& p) {
  const DropoutMask m(p.seed, p.p, p.offset);
  return DeviceMask{m.rng, m.threshold, m.scale, m.offset, p.p > 0};
}

__device__ inline float mask_factor(const DeviceMask& m, uint64_t i) {
  i += m.offset;
  const uint32_t bits = static_cast<uint32_t>(m.rng.bits(i >> 2) >> ((i & 3) * 16)) & 0xFFFFu;
  return bits >= m.threshold ? m.scale : 0.0f;
}

// Attention's dropout on its probabilities: element (b, h, t, s) is ((b NH + h) T + t) T + s.
inline DeviceMask attention_mask(const AttentionParams& p) {
  DropoutParams d{0, p.dropout_p, p.seed};
  d.offset = p.dropout_offset;
  return device_mask(d);
}

// Grid-stride loop over [0, n).
#define GPTRAIN_CUDA_FOR(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace gptrain::kernels::cuda
