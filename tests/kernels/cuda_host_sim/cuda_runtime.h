// A host stand-in for the CUDA runtime, just enough to run the CUDA backend's own kernels on the CPU
// (cuda_host_sim_test.cpp): a block's CUDA threads are std::threads, __syncthreads and __syncwarp
// are barriers, a warp's shuffles go through memory, a launch runs its blocks one after another
// (so a kernel's static __shared__ arrays are function statics), device memory is host memory.
// Not a model of the GPU's timing or memory system: it checks the kernels' indexing, tiling,
// synchronisation points and arithmetic where no GPU is at hand.
#pragma once

#include <barrier>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // one block at a time: a function static is the block's
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 {
  uint32_t x, y, z, w;
};
inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }

namespace sim {
struct Block {
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<float> shuffle;  // one slot a thread
  unsigned char* smem;         // the dynamic shared memory (extern __shared__ in the kernel)
};
inline thread_local dim3 thread_index, block_index, block_dim, grid_dim;
inline thread_local Block* block;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda host sim: %s\n", what);
  std::abort();
}
}  // namespace sim

#define threadIdx (::sim::thread_index)
#define blockIdx (::sim::block_index)
#define blockDim (::sim::block_dim)
#define gridDim (::sim::grid_dim)

inline void __syncthreads() { sim::block->all->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { sim::block->warps[threadIdx.x / 32]->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int offset) {
  float* slots = sim::block->shuffle.data() + threadIdx.x / 32 * 32;
  const unsigned lane = threadIdx.x % 32;
  slots[lane] = v;
  __syncwarp();
  const float r = slots[lane ^ static_cast<unsigned>(offset)];
  __syncwarp();
  return r;
}
// CUDA's device min and max.
template <class A, class B>
auto min(A a, B b) -> decltype(a + b) { return a < b ? a : b; }
template <class A, class B>
auto max(A a, B b) -> decltype(a + b) { return a < b ? b : a; }
inline float __uint_as_float(uint32_t u) { return std::bit_cast<float>(u); }
// The rounded-as-written arithmetic (no contraction on the host either: its compiler has no FMA
// to contract to unless asked).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline uint32_t __float_as_uint(float f) { return std::bit_cast<uint32_t>(f); }

using cudaError_t = int;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
inline int cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return 0;
}
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
template <class F>
int cudaFuncSetAttribute(F, cudaFuncAttribute, int bytes) {
  if (bytes > 227 * 1024) sim::fail("more dynamic shared memory than sm_90 allows a block");
  return 0;
}

namespace sim {
struct Config {
  dim3 grid;
  int threads;
  size_t smem_bytes;
};
inline Config config(dim3 grid, dim3 threads, size_t smem_bytes = 0) {
  if (threads.y != 1 || threads.z != 1) fail("blocks of one dimension");
  return {grid, static_cast<int>(threads.x), smem_bytes};
}
// kernel<<<grid, threads, smem_bytes>>>(args...): the blocks in order, each on `threads` threads,
// its shared memory filled with 0xFF bytes (NaN as floats and as bf16) so a read before a write shows.
template <class Kernel, class... Args>
void run(Kernel kernel, dim3 grid, int threads, size_t smem_bytes, Args... args) {
  if (threads % 32 != 0) fail("a block of whole warps");
  Block b;
  b.all = std::make_unique<std::barrier<>>(threads);
  for (int w = 0; w < threads / 32; ++w) b.warps.push_back(std::make_unique<std::barrier<>>(32));
  b.shuffle.resize(static_cast<size_t>(threads));
  std::vector<unsigned char> memory(smem_bytes + 128);
  b.smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(memory.data()) + 127) / 128 * 128);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      thread_index = dim3(static_cast<unsigned>(t));
      block_dim = dim3(static_cast<unsigned>(threads));
      grid_dim = grid;
      block = &b;
      for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
          for (unsigned x = 0; x < grid.x; ++x) {
            if (t == 0) std::memset(b.smem, 0xFF, smem_bytes);
            b.all->arrive_and_wait();
            block_index = dim3(x, y, z);
            kernel(args...);
            b.all->arrive_and_wait();
          }
    });
  for (std::thread& t : pool) t.join();
}
template <class Kernel>
struct Launch {
  Kernel kernel;
  template <class... Args>
  void operator()(Config c, Args... args) const {
    run(kernel, c.grid, c.threads, c.smem_bytes, args...);
  }
};
template <class Kernel>
Launch<Kernel> launch(Kernel kernel) {
  return {kernel};
}
}  // namespace sim
