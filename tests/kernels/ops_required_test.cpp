// F12: every op front refuses an undefined mandatory operand with an error naming the op and the
// operand, before a kernel could dereference it (optional ones, a LayerNorm bias, stay optional).
#include <gtest/gtest.h>

#include <functional>
#include <string>

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

}  // namespace
}  // namespace gptrain
