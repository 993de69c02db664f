// The CUDA runtime under the tensors and the process-wide settings of the CUDA backend
// (kernels/cuda/cuda.h). Tensor::upload puts a batch's ids on the GPU without waiting for the
// queued kernels: each of many uploads into one device tensor, from one host buffer rewritten as
// soon as the call returns, must reach exactly the kernels queued after it and none before (a
// lost, torn or early upload changes the sum of the embedding rows gathered from it). set_tf32:
// a float32 product on TF32 tensor cores is within its derived bound, and off again is within
// float32's. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda.h"
#include "kernels/ops.h"
#include "tensor/tensor.h"
#include "tests/kernels/harness.h"

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

// out[N,OC] = x w^T + b. Full float32: within e = gamma(IC + 1) (sum |x w| + |b|) of exact
// arithmetic. TF32 rounds x and w to 10-bit significands first (relative error at most u = 2^-10
// each, by truncation or to nearest), so each product moves by at most (2u + u^2) |x w|, and the
// float32 sum of the rounded products adds gamma(IC + 1) times their absolute sum, at most
// (1 + 2u + u^2) sum |x w| + |b|.
TEST(CudaRuntime, tf32_products_are_within_their_bound_and_off_by_default) {
  if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
  ASSERT_FALSE(kernels::cuda::tf32()) << "TF32 must be asked for (--tf32)";
  const int64_t N = 37, IC = 300, OC = 29;
  const std::vector<float> xv = random_floats(N * IC, 1), wv = random_floats(OC * IC, 2), bv = random_floats(OC, 3);
  std::vector<double> want(N * OC), f32_bound(N * OC), tf32_bound(N * OC);
  const double u = 0x1.0p-10, g = gamma(IC + 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) {
      double y = bv[o], abs = 0.0;
      for (int64_t i = 0; i < IC; ++i) {
        y += static_cast<double>(xv[n * IC + i]) * wv[o * IC + i];
        abs += std::fabs(static_cast<double>(xv[n * IC + i]) * wv[o * IC + i]);
      }
      want[n * OC + o] = y;
      f32_bound[n * OC + o] = g * (abs + std::fabs(bv[o]));
      tf32_bound[n * OC + o] = (2 * u + u * u) * abs + g * ((1 + 2 * u + u * u) * abs + std::fabs(bv[o]));
    }
  const Tensor x = Tensor::from_vector({N, IC}, xv).to(Device::CUDA),
               w = Tensor::from_vector({OC, IC}, wv).to(Device::CUDA);
  const Tensor b = Tensor::from_vector({OC}, bv).to(Device::CUDA);
  const auto product = [&] {
    const Tensor out = Tensor::empty({N, OC}, DType::F32, Device::CUDA);
    ops::matmul_forward(out, x, w, b);
    return out.to_vector();
  };
  const std::vector<float> full = product();
  expect_within("float32 product", full, want, f32_bound);
  kernels::cuda::set_tf32(true);
  const std::vector<float> tf32 = product();
  kernels::cuda::set_tf32(false);
  expect_within("TF32 product", tf32, want, tf32_bound);
  EXPECT_NE(std::memcmp(full.data(), tf32.data(), full.size() * sizeof(float)), 0)
      << "the TF32 product equals the float32 one bit for bit: cuBLASLt did not use TF32 tensor cores";
  expect_within("float32 product after TF32 is off again", product(), want, f32_bound);
}

}  // namespace
}  // namespace gptrain::test
