// flash_attention.cu's kernels, the source itself, run on the CPU by the host stand-in of the CUDA
// runtime and WMMA in this folder, within the same derived bounds as on the GPU
// (flash_attention_bounds.h; tests/kernels/cuda_flash_attention_test.cpp runs them there). The
// stand-in sums each 16-term product in k order, one of the orders a tensor core may take, so this
// checks the kernels' tiling, indexing, masks, synchronisation points and arithmetic on every
// build, GPU or not; what only the GPU shows (its accumulation, its memory model) stays with the
// GPU test.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/launch.h"
#include "tests/kernels/flash_attention_bounds.h"

namespace gptrain::kernels::cuda {
// check.h's, as no-ops: the stand-in has no CUDA errors to report (it aborts, saying why, where
// the GPU would refuse a launch).
void check_cuda(int, const char*) {}
void check_launch(const char*) {}
}  // namespace gptrain::kernels::cuda

namespace gptrain::test {
namespace {

TEST(FlashAttentionHostSim, forward_and_backward_are_within_the_derived_bounds_of_exact_arithmetic) {
  for (const kernels::AttentionParams& p : flash::bound_cases()) {
    const flash::FlashAttentionRun run{
        [p](const std::vector<uint16_t>& qkv, std::vector<uint16_t>& out, std::vector<float>& stats) {
          ASSERT_TRUE(kernels::cuda::flash_attention_supported(p, qkv.data(), nullptr));
          kernels::cuda::flash_attention_forward(out.data(), stats.data(), qkv.data(), p);
        },
        [p](const std::vector<uint16_t>& qkv, const std::vector<uint16_t>& dout, const std::vector<float>& stats,
            std::vector<uint16_t>& dqkv) {
          std::vector<float> dsum(static_cast<size_t>(p.B * p.NH * p.T));
          kernels::cuda::flash_attention_backward(dqkv.data(), dsum.data(), dout.data(), qkv.data(), stats.data(), p);
        }};
    flash::expect_flash_attention_within_bounds(p, run);
  }
}

}  // namespace
}  // namespace gptrain::test
