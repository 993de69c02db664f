// The NCCL communicator on this machine's GPU at world size 1 (issue 16: exercised on a GPU at
// world size 1; more ranks with the CUDA backend): every collective on device buffers, padded
// and unpadded block counts. Skips when no GPU is visible (CI compiles it without one).
#include <gtest/gtest.h>
#include <cuda_runtime_api.h>

#include <vector>

#include "dist/communicator.h"

namespace gptrain::dist {
namespace {

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no GPU visible";
    if (detect_launch().size != 1) GTEST_SKIP() << "runs at world size 1";
  }
};

std::vector<float> round_trip(Communicator& c, const std::vector<float>& v, int op) {
  float* d = nullptr;
  EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&d), v.size() * sizeof(float)), cudaSuccess);
  cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice);
  if (op == 0) c.all_reduce_sum(d, v.size());
  if (op == 1) c.reduce_scatter_blocks(d, v.size(), v.size());
  if (op == 2) c.all_gather_blocks(d, v.size(), v.size() + 3);  // a block larger than the buffer
  if (op == 3) c.broadcast(d, v.size() * sizeof(float), 0);
  std::vector<float> out(v.size());
  cudaMemcpy(out.data(), d, v.size() * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d);
  return out;
}

TEST_F(Nccl, collectives_at_world_size_one_are_identities) {
  const auto c = make_nccl();
  EXPECT_STREQ(c->backend(), "nccl");
  EXPECT_EQ(c->size(), 1);
  const std::vector<float> v{1.5f, -2.0f, 3.25f, 7.0f, 0.5f};
  for (int op = 0; op < 4; ++op) EXPECT_EQ(round_trip(*c, v, op), v) << "collective " << op;
  EXPECT_EQ(c->all_reduce_max(42), 42);
  c->barrier();
}

}  // namespace
}  // namespace gptrain::dist
