// The CUDA backend under the CPU backends' harness on the host stand-in (cuda_host_sim_backend_test:
// backend_test.cpp, llama_ops_test.cpp and lora_test.cpp built with GPTRAIN_TEST_CUDA, as
// cuda_backend_test is on a GPU): the stand-in's device memory is host memory, so the harness's
// host buffers go to the CUDA backend as they are, and every case, error bound and bitwise
// contract of the harness applies to the CUDA backend's own kernel sources.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {

std::vector<const kernels::Backend*> staged_cuda_backends() {
  kernels::cuda::init();
  return {&kernels::backend_for(Device::CUDA, DType::F32)};
}

}  // namespace gptrain::test

// The harness's backend cases; a --gtest_filter replaces the list.
int main(int argc, char** argv) {
  GTEST_FLAG_SET(filter, "Backend.*:Invariance.*:-Backend.registry");  // every op; the registry is the CPU's
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
