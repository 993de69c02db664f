// F12: every op front refuses an undefined mandatory operand with an error naming the op and the
// operand, before a kernel could dereference it (optional ones, a LayerNorm bias, stay optional).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "tensor/tensor.h"
#include "util/error.h"

namespace gptrain {
namespace {

void expect_required(const std::function<void()>& call, const std::string& message) {
  try {
    call();
    ADD_FAILURE() << "no error; expected '" << message << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
  }
}

TEST(Ops, undefined_required_operands_are_errors) {
  const int64_t N = 4, C = 8;
  const Tensor none, x = Tensor::zeros({N, C}), out = Tensor::zeros({N, C}), w = Tensor::zeros({C}),
                     row = Tensor::zeros({N});
  expect_required([&] { ops::layernorm_forward(out, none, row, x, w, none); }, "layernorm_forward: mean is required");
  expect_required([&] { ops::layernorm_forward(out, row, row, x, none, w); }, "layernorm_forward: weight is required");
  expect_required([&] { ops::layernorm_backward(x, w, w, out, x, w, row, none); },
                  "layernorm_backward: rstd is required");
  expect_required([&] { ops::rmsnorm_forward(out, row, x, none, 1e-5f); }, "rmsnorm_forward: weight is required");
  expect_required([&] { ops::matmul_forward(out, x, none, none); }, "matmul_forward: weight is required");
  expect_required([&] { ops::matmul_backward(x, none, none, none, x, Tensor::zeros({C, C})); },
                  "matmul_backward: dout is required");
  expect_required([&] { ops::gelu_forward(out, none); }, "gelu_forward: inp is required");
  expect_required([&] { ops::residual_forward(out, x, none); }, "residual_forward: b is required");
  const ops::AttentionShape shape{2, 2, 2};
  expect_required([&] { ops::attention_forward(Tensor::zeros({1, N, 4}), none, Tensor::zeros({1, N, 12}), shape); },
                  "attention_forward: stats is required");
  const Tensor logits = Tensor::zeros({N, C});
  expect_required([&] { ops::cross_entropy_forward(row, row, logits, none); },
                  "cross_entropy_forward: targets is required");
  expect_required([&] { ops::embedding_forward(out, none, none, Tensor::zeros({C, C}), none); },
                  "embedding_forward: tokens is required");
  // A LayerNorm without bias (optional) runs.
  ops::layernorm_forward(out, row, row, x, Tensor::from_vector({C}, std::vector<float>(C, 1.0f)), none);
}

// Statistics are stats_dtype of the operands' type (float32 beside half storage, their own type
// otherwise), on their device: anything else is refused naming the op and the types.
TEST(Ops, statistics_of_another_type_are_refused) {
  const int64_t N = 4, C = 8;
  const Tensor x = Tensor::zeros({N, C}), out = Tensor::zeros({N, C}), w = Tensor::zeros({C}),
               row64 = Tensor::zeros({N}, DType::F64), row = Tensor::zeros({N});
  expect_required([&] { ops::layernorm_forward(out, row64, row, x, w, Tensor()); },
                  "layernorm_forward: a statistics operand on cpu f64 beside operands on cpu f32; statistics are f32");
  const Tensor logits = Tensor::zeros({N, C}), targets = Tensor::from_ids({N}, std::vector<int32_t>(N, 1));
  expect_required([&] { ops::cross_entropy_forward(row64, row, logits, targets); },
                  "cross_entropy_forward: a statistics operand on cpu f64");
  EXPECT_EQ(stats_dtype(DType::BF16), DType::F32);
  EXPECT_EQ(stats_dtype(DType::F16), DType::F32);
  EXPECT_EQ(stats_dtype(DType::F32), DType::F32);
  EXPECT_EQ(stats_dtype(DType::F64), DType::F64);
  ops::layernorm_forward(out, row, row, x, w, Tensor());  // the types that belong together
}

}  // namespace
}  // namespace gptrain
