// The host stand-in's runtime.cpp: one "device" whose memory is host memory (64-byte aligned,
// filled with 0xFF on allocation so a kernel reading what nobody wrote shows NaN), the CUDA
// backends (backend.cpp, bf16_backend.cpp, compiled here over the stand-in's headers) registered
// for Device::CUDA, and check.h's error checks.
#include <cuda_runtime.h>  // the stand-in's (cuda_host_sim/)

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/cuda.h"
#include "tensor/tensor.h"
#include "util/error.h"

#ifdef GPTRAIN_SIM_FAST_SWITCH
// cuda_runtime.h's fiber switch: pushes the callee-saved registers, MXCSR and the x87 control word
// on the current stack, saves its pointer, loads the other's and pops the same from it.
asm(R"(
.text
.globl gptrain_sim_switch
.type gptrain_sim_switch,@function
gptrain_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size gptrain_sim_switch, .-gptrain_sim_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

namespace gptrain::kernels::cuda {

void register_device(Allocator* allocator);  // bf16_backend.cpp, as runtime.cpp's init() calls it

namespace {

class HostDeviceAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    const size_t rounded = (bytes + 63) / 64 * 64 + 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0xFF, rounded);
    return p;
  }
  void deallocate(void* p) override { std::free(p); }
  void zero(void* p, size_t bytes) override { std::memset(p, 0, bytes); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override { std::memmove(dst, src, bytes); }
};

}  // namespace

void check_cuda(int status, const char* what) {
  if (status != 0) fail("{}: error {} (the host stand-in for CUDA)", what, status);
}
void check_launch(const char*) {}

int device_count() { return 1; }
std::string device_description() { return "the host stand-in for a CUDA device (tests/kernels/cuda_host_sim)"; }
void synchronize() {}

bool init(int) {
  static const bool ready = [] {
    static HostDeviceAllocator allocator;
    register_device(&allocator);
    return true;
  }();
  return ready;
}

}  // namespace gptrain::kernels::cuda
