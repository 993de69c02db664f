// CUDA error codes into gptrain::Error (runtime.cpp), for code that cannot include util/error.h
// (nvcc and fmt do not mix) or should not see CUDA's types.
#pragma once

namespace gptrain::kernels::cuda {

// Fails with "<what>: <CUDA's name and text of the error>" when `status` (a cudaError_t) is not
// cudaSuccess.
void check_cuda(int status, const char* what);
// The last launch's error, and (in debug builds) the kernel's own, after synchronising.
void check_launch(const char* kernel);

}  // namespace gptrain::kernels::cuda
