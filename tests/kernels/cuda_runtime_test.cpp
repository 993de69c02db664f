// The CUDA runtime under the tensors (kernels/cuda/runtime.cpp): Tensor::upload, which puts a
// batch's ids on the GPU without waiting for the queued kernels. Each of many uploads into one
// device tensor, from one host buffer rewritten as soon as the call returns, must reach exactly
// the kernels queued after it and none before; a lost, torn or early upload changes the sum of
// the embedding rows gathered from it. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "kernels/cuda/cuda.h"
#include "kernels/ops.h"
#include "tensor/tensor.h"

namespace gptrain::test {
namespace {

TEST(CudaRuntime, uploads_reach_exactly_the_kernels_queued_after_them) {
  if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
  constexpr int64_t V = 97, C = 8, N = 4096, steps = 200;
  // wte row v is v in every column: an embedding gathers the ids themselves, as floats, exactly.
  std::vector<float> rows(V * C);
  for (int64_t v = 0; v < V; ++v) std::fill_n(rows.begin() + v * C, C, static_cast<float>(v));
  const Tensor wte = Tensor::from_vector({V, C}, rows).to(Device::CUDA);
  const Tensor ids = Tensor::empty({N}, DType::I32, Device::CUDA);
  const Tensor gathered = Tensor::empty({N, C}, DType::F32, Device::CUDA);
  const Tensor sum = Tensor::zeros({N, C}, DType::F32, Device::CUDA);

  std::vector<int32_t> host(N);
  std::vector<double> expected(N, 0.0);
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t i = 0; i < N; ++i) host[i] = static_cast<int32_t>((i * 31 + s * 17 + (s * i) % 13) % V);
    // The buffer is reused at once, and growing sizes every 50 steps reallocate the staging slots.
    const int64_t n = N - (3 - s / 50) * 1000;
    const Tensor part = ids.slice_rows(0, n);
    part.upload(host.data());
    for (int64_t i = 0; i < n; ++i) expected[i] += host[i];
    const Tensor rows_n = gathered.slice_rows(0, n), sum_n = sum.slice_rows(0, n);
    ops::embedding_forward(rows_n.reshape({1, n, C}), part, Tensor(), wte, Tensor());
    ops::residual_forward(sum_n, sum_n, rows_n);
    for (int32_t& id : host) id = (id + 1) % V;  // a transfer that read the buffer late gets other ids
  }
  const Tensor back = sum.host();
  const float* got = back.data<float>();
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c)  // sums below 2^24: float addition is exact
      ASSERT_EQ(got[i * C + c], static_cast<float>(expected[i])) << "row " << i << " column " << c;
}

}  // namespace
}  // namespace gptrain::test
