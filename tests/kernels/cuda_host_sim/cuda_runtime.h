// A host stand-in for the CUDA runtime, just enough to run the CUDA backend's own kernels on the CPU
// (cuda_host_sim_test.cpp and the harnesses built over it): a block's CUDA threads are fibers on
// one OS thread, run one at a time up to their next barrier (__syncthreads, __syncwarp, a warp's
// shuffle, which goes through memory) in an order shuffled afresh for every block and every phase,
// so a read of another thread's write that no barrier orders sees it only by chance (and device
// memory starts as 0xFF bytes: NaN); a launch runs its blocks one after another (so a kernel's
// static __shared__ arrays are function statics), device memory is host memory. A barrier that
// some of its threads have left by returning fails the run, as it would hang or break on a GPU.
// Not a model of the GPU's timing or memory system: it checks the kernels' indexing, tiling,
// synchronisation points and arithmetic where no GPU is at hand.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <ucontext.h>
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
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda host sim: %s\n", what);
  std::abort();
}

// Switching between fibers: on x86-64 by saving the callee-saved registers and the stack pointer
// (no system call, so the thousands of barriers of a launch stay cheap); under a sanitizer or on
// another architecture by ucontext, which the sanitizers know.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define GPTRAIN_SIM_FAST_SWITCH 1
extern "C" void gptrain_sim_switch(void** save_sp, void* load_sp);  // sim_runtime.cpp

struct Context {
  void* sp = nullptr;
};
inline void switch_context(Context& from, Context& to) { gptrain_sim_switch(&from.sp, to.sp); }
// A fresh context that runs entry() on [stack, stack + bytes) when first switched to.
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack + bytes)) & ~uintptr_t(15));
  top[-1] = 0;                                         // entry's return address: it never returns
  top[-2] = reinterpret_cast<uint64_t>(entry);         // popped by the switch's ret
  for (int r = 3; r <= 8; ++r) top[-r] = 0;            // rbp rbx r12 r13 r14 r15
  top[-9] = 0x1F80ull | (uint64_t{0x037F} << 32);      // MXCSR and the x87 control word, the defaults
  c.sp = top - 9;
}
#else
struct Context {
  ucontext_t u;
};
inline void switch_context(Context& from, Context& to) { swapcontext(&from.u, &to.u); }
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.u);
  c.u.uc_stack.ss_sp = stack;
  c.u.uc_stack.ss_size = bytes;
  c.u.uc_link = nullptr;
  makecontext(&c.u, entry, 0);
}
#endif

// One block's threads as fibers: where each is (running, at a barrier, done), its context and stack.
struct Block {
  enum State { kReady, kAtWarpBarrier, kAtBlockBarrier, kDone };
  struct Fiber {
    Context context;
    char* stack;
    State state = kReady;
  };
  std::vector<Fiber> fibers;
  Context scheduler;
  void (*body)(const void*) = nullptr;  // the kernel call every fiber runs
  const void* body_arg = nullptr;
  std::vector<float> shuffle;  // one slot a thread
  unsigned char* smem;         // the dynamic shared memory (extern __shared__ in the kernel)
  int current = 0;
};
inline dim3 thread_index, block_index, block_dim, grid_dim;
inline Block* block;

// The running fiber stops at a barrier of kind `state` until the scheduler releases it.
inline void wait_at(Block::State state) {
  Block& b = *block;
  b.fibers[static_cast<size_t>(b.current)].state = state;
  switch_context(b.fibers[static_cast<size_t>(b.current)].context, b.scheduler);
}
// A fiber's life: the kernel, then back to the scheduler for good.
[[noreturn]] inline void fiber_main() {
  block->body(block->body_arg);
  Block& b = *block;
  b.fibers[static_cast<size_t>(b.current)].state = Block::kDone;
  switch_context(b.fibers[static_cast<size_t>(b.current)].context, b.scheduler);
  fail("a finished fiber resumed");
}
}  // namespace sim

#define threadIdx (::sim::thread_index)
#define blockIdx (::sim::block_index)
#define blockDim (::sim::block_dim)
#define gridDim (::sim::grid_dim)

inline void __syncthreads() { sim::wait_at(sim::Block::kAtBlockBarrier); }
inline void __syncwarp(unsigned = 0xffffffffu) { sim::wait_at(sim::Block::kAtWarpBarrier); }
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

// Device memory is host memory.
using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
using cudaStream_t = void*;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
inline int cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memmove(dst, src, bytes);
  return 0;
}
inline int cudaMemset2D(void* dst, size_t pitch, int value, size_t width, size_t height) {
  for (size_t r = 0; r < height; ++r) std::memset(static_cast<unsigned char*>(dst) + r * pitch, value, width);
  return 0;
}
inline int cudaMalloc(void** p, size_t bytes) {
  *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  return *p ? 0 : 2;
}
inline int cudaFree(void* p) {
  std::free(p);
  return 0;
}
enum cudaDataType_t { CUDA_R_32F, CUDA_R_16BF };
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

// kernel<<<grid, threads, smem_bytes>>>(args...): the blocks in order, each block's threads as
// fibers run to their barriers in a shuffled order, its shared memory filled with 0xFF bytes.
template <class Kernel, class... Args>
void run(Kernel kernel, dim3 grid, int threads, size_t smem_bytes, Args... args) {
  if (threads % 32 != 0) fail("a block of whole warps");
  constexpr size_t kStack = 256 * 1024;
  static std::vector<std::unique_ptr<char[]>> stacks;  // kept from launch to launch
  while (stacks.size() < static_cast<size_t>(threads)) stacks.emplace_back(new char[kStack]);
  Block b;
  b.fibers.resize(static_cast<size_t>(threads));
  for (size_t t = 0; t < b.fibers.size(); ++t) b.fibers[t].stack = stacks[t].get();
  b.shuffle.resize(static_cast<size_t>(threads));
  std::vector<unsigned char> memory(smem_bytes + 128);
  b.smem = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(memory.data()) + 127) / 128 * 128);
  Block* const outer = block;
  block = &b;
  block_dim = dim3(static_cast<unsigned>(threads));
  grid_dim = grid;
  std::mt19937 random(12345);
  std::vector<int> order(static_cast<size_t>(threads));
  const auto body = [&] { kernel(args...); };
  b.body = [](const void* call) { (*static_cast<const decltype(body)*>(call))(); };
  b.body_arg = &body;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        block_index = dim3(x, y, z);
        std::memset(b.smem, 0xFF, smem_bytes);
        for (int t = 0; t < threads; ++t) {
          Block::Fiber& f = b.fibers[static_cast<size_t>(t)];
          f.state = Block::kReady;
          make_context(f.context, f.stack, kStack, &fiber_main);
          order[static_cast<size_t>(t)] = t;
        }
        for (;;) {
          std::shuffle(order.begin(), order.end(), random);
          for (const int t : order) {
            if (b.fibers[static_cast<size_t>(t)].state != Block::kReady) continue;
            b.current = t;
            thread_index = dim3(static_cast<unsigned>(t));
            switch_context(b.scheduler, b.fibers[static_cast<size_t>(t)].context);
          }
          // Every fiber is at a barrier or done: release the barriers that are complete.
          int done = 0, at_block = 0;
          bool released = false;
          for (int w = 0; w < threads / 32; ++w) {
            int at_warp = 0, warp_done = 0;
            for (int l = 0; l < 32; ++l) {
              const Block::State s = b.fibers[static_cast<size_t>(w * 32 + l)].state;
              at_warp += s == Block::kAtWarpBarrier;
              warp_done += s == Block::kDone;
            }
            if (at_warp > 0 && warp_done > 0) fail("a warp barrier or shuffle that some of the warp's lanes have left");
            if (at_warp == 32) {
              for (int l = 0; l < 32; ++l) b.fibers[static_cast<size_t>(w * 32 + l)].state = Block::kReady;
              released = true;
            }
          }
          for (const Block::Fiber& f : b.fibers) {
            done += f.state == Block::kDone;
            at_block += f.state == Block::kAtBlockBarrier;
          }
          if (done == threads) break;
          if (released) continue;
          if (at_block > 0 && done > 0) fail("__syncthreads with threads of the block that have returned");
          if (at_block + done != threads) fail("threads waiting at different barriers (a deadlock on a GPU)");
          for (Block::Fiber& f : b.fibers) f.state = Block::kReady;
        }
      }
  block = outer;
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
