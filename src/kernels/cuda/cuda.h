// The CUDA backend (issue 20, in progress): what the rest of the program sees of it, without any
// CUDA header. init() registers the device's allocator, the f32 backend ("cuda") and the bf16
// mode's ("cuda-bf16": the widening backend over it, kernels/widening_backend.h) with the tensor
// and kernel registries when a GPU is visible; the ops then dispatch CUDA tensors to it
// (kernels/backend.h). Built only when nvcc is found (GPTRAIN_HAVE_CUDA; docs/DESIGN.md §1).
//
// Every op of the Backend interface is there in f32 (issue 20, first step), each run through the
// CPU backends' own cases and error bounds (tests/kernels/cuda_staged.cpp): embedding, dropout
// (the CPU's mask, element for element), LayerNorm, RMSNorm, Qwen3's query/key norms, rotary
// tables and rotation, matmul (cuBLASLt, fp32 compute; the batch-invariant and f16/bf16-weight
// products as own kernels), LoRA, causal grouped-query attention forward and backward without the
// T x T matrix and against KV caches, GELU, SwiGLU, residual, cross-entropy and its loss total,
// pooling, row gathers, AdamW, the gradient norm's sum of squares and scale. These kernels are
// correct first (one warp or thread per row or output, fixed summation orders); the bf16 mode has
// them on bf16 storage (bf16_backend.cpp), and attention at head sizes 64 and 128 on bf16 tensor
// cores (flash_attention.cu). The allocator caches
// blocks and uploads a batch's ids through pinned buffers and a copy stream without waiting for
// the queued kernels (Tensor::upload). Every job reaches it with --device cuda
// (cli/device_option.h).
// Nothing here has yet run on a GPU; the kernels and the Backend classes run on the CPU through
// the host stand-in of tests/kernels/cuda_host_sim (the harness's cases, the bf16 tests, the
// model's parity fixtures).
#pragma once

#include <string>

namespace gptrain::kernels::cuda {

// The number of visible CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();
// "NVIDIA H200, compute capability 9.0, 132 SMs, 139.8 GiB" of the current device, or why there
// is none.
std::string device_description();
// Makes GPU `device` (modulo the visible ones; a data-parallel rank passes its local rank) the
// process's and registers the allocator and the backends for Device::CUDA, once; false (and
// nothing registered) when no GPU is visible.
bool init(int device = 0);
// Waits for every kernel launched so far (timing; the ops themselves never need it).
void synchronize();
// The f32 mode's matrix products on TF32 tensor cores (cuBLASLt's CUBLAS_COMPUTE_32F_FAST_TF32:
// inputs rounded to 10-bit significands, float32 accumulation and output), PyTorch's
// allow_tf32; off (full float32, within float32's bounds of the reference) by default. --tf32.
void set_tf32(bool enabled);
bool tf32();

}  // namespace gptrain::kernels::cuda
