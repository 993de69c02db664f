// The tensor-core attention of cuda-bf16 (kernels/cuda/flash_attention.cu) on the GPU within the
// bounds derived in flash_attention_bounds.h: the query heads grouped, the last tile partial,
// dropout on and off, the input gradient written and accumulated; cuda-bf16 runs it for these
// shapes, and only for them. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda.h"
#include "kernels/cuda/launch.h"
#include "tensor/tensor.h"
#include "tests/kernels/flash_attention_bounds.h"

namespace gptrain::test {
namespace {

class CudaFlashAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
  }
};

Tensor on_gpu(const std::vector<uint16_t>& bits) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bits.size())}, DType::BF16);
  std::memcpy(t.raw(), bits.data(), bits.size() * sizeof(uint16_t));
  return t.to(Device::CUDA);
}
template <class T>
void to_host(std::vector<T>& dst, const Tensor& t) {
  const Tensor h = t.host();
  ASSERT_EQ(h.nbytes(), dst.size() * sizeof(T));
  std::memcpy(dst.data(), h.raw(), h.nbytes());
}

// Through cuda-bf16, as the models run it; the forward also through the flash kernel directly,
// which must give the same bits (the backend chose it).
flash::FlashAttentionRun through_the_backend(const kernels::AttentionParams& p) {
  const kernels::Backend& native = kernels::backend_for(Device::CUDA, DType::BF16);
  return {[&native, p](const std::vector<uint16_t>& qkv, std::vector<uint16_t>& out, std::vector<float>& stats) {
            const Tensor q = on_gpu(qkv), o = on_gpu(out), o2 = on_gpu(out);
            const Tensor st = Tensor::zeros({static_cast<int64_t>(stats.size())}, DType::F32, Device::CUDA),
                         st2 = Tensor::zeros({static_cast<int64_t>(stats.size())}, DType::F32, Device::CUDA);
            ASSERT_TRUE(kernels::cuda::flash_attention_supported(p, q.raw(), nullptr));
            native.attention_forward(o.raw(), st.raw(), q.raw(), p);
            kernels::cuda::flash_attention_forward(o2.device_data<uint16_t>(), st2.device_data<float>(),
                                                   q.device_data<uint16_t>(), p);
            to_host(out, o);
            to_host(stats, st);
            std::vector<uint16_t> direct(out.size());
            to_host(direct, o2);
            EXPECT_EQ(out, direct) << "cuda-bf16 did not run the flash forward";
          },
          [&native, p](const std::vector<uint16_t>& qkv, const std::vector<uint16_t>& dout,
                       const std::vector<float>& stats, std::vector<uint16_t>& dqkv) {
            const Tensor q = on_gpu(qkv), g = on_gpu(dout), d = on_gpu(dqkv);
            const Tensor st =
                Tensor::from_vector({static_cast<int64_t>(stats.size())}, stats).to(Device::CUDA);
            ASSERT_TRUE(kernels::cuda::flash_attention_supported(p, q.raw(), g.raw()));
            native.attention_backward(d.raw(), g.raw(), q.raw(), st.raw(), p);
            to_host(dqkv, d);
          }};
}

TEST_F(CudaFlashAttention, forward_and_backward_are_within_the_derived_bounds_of_exact_arithmetic) {
  for (const kernels::AttentionParams& p : flash::bound_cases())
    flash::expect_flash_attention_within_bounds(p, through_the_backend(p));
}

// Other head sizes and misaligned tensors take the warp kernels (bit-equal to the widened op,
// cuda_bf16_test).
TEST_F(CudaFlashAttention, takes_only_the_shapes_it_is_built_for) {
  const Tensor t = Tensor::zeros({1024}, DType::BF16, Device::CUDA);
  const auto* base = static_cast<const unsigned char*>(t.raw());
  EXPECT_TRUE(kernels::cuda::flash_attention_supported({1, 8, 2, 2, 64}, base, base));
  EXPECT_TRUE(kernels::cuda::flash_attention_supported({1, 8, 2, 1, 128}, base, nullptr));
  EXPECT_FALSE(kernels::cuda::flash_attention_supported({1, 8, 2, 2, 32}, base, base));
  EXPECT_FALSE(kernels::cuda::flash_attention_supported({1, 8, 2, 2, 96}, base, base));
  EXPECT_FALSE(kernels::cuda::flash_attention_supported({1, 8, 2, 2, 64}, base + 2, base));
  EXPECT_FALSE(kernels::cuda::flash_attention_supported({1, 8, 2, 2, 64}, base, base + 8));
}

}  // namespace
}  // namespace gptrain::test
