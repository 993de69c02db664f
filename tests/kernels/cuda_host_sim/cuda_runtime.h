// A host stand-in for the CUDA runtime, just enough to run flash_attention.cu's kernels on the CPU
// (flash_attention_host_sim_test.cpp): a block's CUDA threads are std::threads, __syncthreads and
// __syncwarp are barriers, a warp's shuffles go through memory, and a launch runs its blocks one
// after another. Not a model of the GPU's timing or memory system: it checks the kernels' indexing,
// tiling, synchronisation points and arithmetic where no GPU is at hand.
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
#define __shared__
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
inline float __uint_as_float(uint32_t u) { return std::bit_cast<float>(u); }
inline uint32_t __float_as_uint(float f) { return std::bit_cast<uint32_t>(f); }

using cudaError_t = int;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
template <class F>
int cudaFuncSetAttribute(F, cudaFuncAttribute, int bytes) {
  if (bytes > 227 * 1024) sim::fail("more dynamic shared memory than sm_90 allows a block");
  return 0;
}

namespace sim {
// kernel<<<grid, threads, smem_bytes>>>(args...): the blocks in order, each on `threads` threads,
// its shared memory filled with 0xFF bytes (NaN as floats and as bf16) so a read before a write shows.
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, int threads, size_t smem_bytes, Args... args) {
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
}  // namespace sim
