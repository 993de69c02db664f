// The CUDA runtime side of the backend: errors, the device query, the device allocator (a cache of
// freed blocks by size, so a training step's tensors reuse memory instead of calling cudaMalloc
// and cudaFree each time) and the registration of allocator and backend.
#include <cuda_runtime.h>

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <mutex>

#include "kernels/backend.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cuda.h"
#include "util/error.h"

namespace gptrain::kernels::cuda {

// Device::CUDA's allocator and both backends, "cuda" and "cuda-bf16" (bf16_backend.cpp).
void register_device(Allocator* allocator);

void check_cuda(int status, const char* what) {
  const auto e = static_cast<cudaError_t>(status);
  if (e != cudaSuccess) fail("{}: CUDA error {} ({})", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

void check_launch(const char* kernel) {
  check_cuda(cudaGetLastError(), kernel);
#ifndef NDEBUG
  check_cuda(cudaDeviceSynchronize(), kernel);
#endif
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string device_description() {
  if (device_count() == 0) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    (void)cudaGetLastError();
    return fmt::format("no CUDA device ({})", e == cudaSuccess ? "none visible" : cudaGetErrorString(e));
  }
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  return fmt::format("{}, compute capability {}.{}, {} SMs, {:.1f} GiB", prop.name, prop.major, prop.minor,
                     prop.multiProcessorCount, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
}

namespace {

// Allocator::upload: host bytes go into a page-locked buffer, a copy stream of its own (not
// synchronized with the default stream, where every kernel runs) moves them into a device staging
// buffer while the queued kernels run, and the default stream copies them into place once its
// earlier work is done, in its order. Two slots alternate, so one upload is in flight while the
// next is staged; events keep each slot's buffers from being overwritten before they are read.
class Uploads {
 public:
  ~Uploads() {  // at exit the driver may be gone already: nothing is checked
    for (Slot& s : slots_) {
      cudaFreeHost(s.pinned);
      cudaFree(s.staging);
      if (s.copied) cudaEventDestroy(s.copied);
      if (s.consumed) cudaEventDestroy(s.consumed);
    }
    if (stream_) cudaStreamDestroy(stream_);
  }

  void upload(void* dst, const void* src, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stream_) {
      check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      for (Slot& s : slots_) {
        check_cuda(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming), "cudaEventCreateWithFlags");
        check_cuda(cudaEventCreateWithFlags(&s.consumed, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      }
    }
    Slot& s = slots_[next_];
    next_ ^= 1;
    check_cuda(cudaEventSynchronize(s.copied), "cudaEventSynchronize");  // its last transfer has read `pinned`
    if (bytes > s.capacity) {
      check_cuda(cudaEventSynchronize(s.consumed), "cudaEventSynchronize");  // and `staging` was copied out
      cudaFreeHost(s.pinned);
      cudaFree(s.staging);
      s.pinned = nullptr;
      s.staging = nullptr;
      s.capacity = 0;
      check_cuda(cudaHostAlloc(&s.pinned, bytes, cudaHostAllocDefault), "cudaHostAlloc");
      check_cuda(cudaMalloc(&s.staging, bytes), "cudaMalloc");
      s.capacity = bytes;
    }
    std::memcpy(s.pinned, src, bytes);
    check_cuda(cudaStreamWaitEvent(stream_, s.consumed, 0), "cudaStreamWaitEvent");
    check_cuda(cudaMemcpyAsync(s.staging, s.pinned, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(s.copied, stream_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(cudaStreamLegacy, s.copied, 0), "cudaStreamWaitEvent");
    check_cuda(cudaMemcpyAsync(dst, s.staging, bytes, cudaMemcpyDeviceToDevice, cudaStreamLegacy), "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(s.consumed, cudaStreamLegacy), "cudaEventRecord");
  }

 private:
  struct Slot {
    void* pinned = nullptr;
    void* staging = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr, consumed = nullptr;
  };
  std::mutex mutex_;
  cudaStream_t stream_ = nullptr;
  Slot slots_[2];
  int next_ = 0;
};

// Blocks are rounded up to 512 bytes (cudaMalloc aligns to 256 at least) and kept by size when
// freed; an allocation that fails frees the whole cache and tries once more.
class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    const size_t size = round_up(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(size);
    if (it != free_.end()) {
      void* p = it->second;
      free_.erase(it);
      used_[p] = size;
      return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cache();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      fail("out of GPU memory allocating {:.1f} MiB ({:.1f} MiB free of {:.1f} MiB): {}",
           static_cast<double>(size) / (1 << 20), static_cast<double>(free_bytes) / (1 << 20),
           static_cast<double>(total) / (1 << 20), cudaGetErrorString(e));
    }
    used_[p] = size;
    return p;
  }

  void deallocate(void* p) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = used_.find(p);
    if (it == used_.end()) return;  // not ours: a bug elsewhere, but never a double free here
    free_.emplace(it->second, p);
    used_.erase(it);
  }

  void zero(void* p, size_t bytes) override { check_cuda(cudaMemset(p, 0, bytes), "cudaMemset"); }

  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    // Unified addressing: the runtime tells host from device memory by the pointers.
    check_cuda(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
  }

  void upload(void* dst, Device, const void* src, size_t bytes) override { uploads_.upload(dst, src, bytes); }

 private:
  static size_t round_up(size_t bytes) { return std::max<size_t>(512, (bytes + 511) / 512 * 512); }
  void release_cache() {
    for (auto& [size, p] : free_) cudaFree(p);
    free_.clear();
  }

  Uploads uploads_;
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  std::map<void*, size_t> used_;
};

}  // namespace

void synchronize() { check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

bool init(int device) {
  static const bool ready = [device] {
    const int n = device_count();
    if (n == 0) return false;
    check_cuda(cudaSetDevice(device % n), "cudaSetDevice");  // before any allocation: every buffer on it
    static CudaAllocator allocator;
    register_device(&allocator);
    return true;
  }();
  return ready;
}

}  // namespace gptrain::kernels::cuda
