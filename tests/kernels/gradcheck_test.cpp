// Every op's backward (the reference kernels, in double) against central finite differences of
// its forward with a random cotangent. The CPU kernels are tied to these by backend_test.cpp.
#include <gtest/gtest.h>

#include "kernels/params.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;
using V = std::vector<double>;

V randd(int64_t n, uint64_t seed, double scale = 1.0) {
  V v = to_double(random_floats(n, seed));
  for (double& x : v) x *= scale;
  return v;
}

TEST(Gradcheck, embedding) {
  const EmbeddingParams p{2, 3, 5, 4, 6, 1};
  const std::vector<int32_t> tokens = {0, 3, 3, 1, 2, 0};
  gradcheck("embedding", {randd(4 * 5, 1), randd(6 * 5, 2)}, {0, 1},
            [&](const Inputs& x) {
              V out(2 * 3 * 5);
              ref::embedding_forward(out.data(), tokens.data(), x[0].data(), x[1].data(), p);
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(x[0].size()), V(x[1].size())};
              ref::embedding_backward(g[0].data(), g[1].data(), cot.data(), tokens.data(), p);
              return g;
            });
}

TEST(Gradcheck, dropout) {
  const DropoutParams p{50, 0.4f, 9};
  gradcheck("dropout", {randd(50, 1)}, {0},
            [&](const Inputs& x) {
              V out(50);
              ref::dropout_forward(out.data(), x[0].data(), p);
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(x[0].size())};
              ref::dropout_backward(g[0].data(), cot.data(), p);
              return g;
            });
}

TEST(Gradcheck, layernorm) {
  const LayerNormParams p{3, 7, 1e-5f};
  gradcheck("layernorm", {randd(21, 1, 3.0), randd(7, 2), randd(7, 3)}, {0, 1, 2},
            [&](const Inputs& x) {
              V out(21), mean(3), rstd(3);
              ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x[0].data(), x[1].data(), x[2].data(), p);
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              V out(21), mean(3), rstd(3);
              ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x[0].data(), x[1].data(), x[2].data(), p);
              Inputs g = {V(21), V(7), V(7)};
              ref::layernorm_backward(g[0].data(), g[1].data(), g[2].data(), cot.data(), x[0].data(), x[1].data(),
                                      mean.data(), rstd.data(), p);
              return g;
            });
}

TEST(Gradcheck, matmul) {
  for (bool bias : {true, false}) {
    const MatmulParams p{4, 5, 3};
    gradcheck(bias ? "matmul with bias" : "matmul without bias", {randd(20, 1), randd(15, 2), randd(3, 3)},
              bias ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0, 1},
              [&](const Inputs& x) {
                V out(12);
                ref::matmul_forward(out.data(), x[0].data(), x[1].data(), bias ? x[2].data() : nullptr, p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                Inputs g = {V(20), V(15), V(3)};
                ref::matmul_backward(g[0].data(), g[1].data(), bias ? g[2].data() : nullptr, cot.data(), x[0].data(),
                                     x[1].data(), p);
                return g;
              });
  }
}

TEST(Gradcheck, attention) {
  for (float drop : {0.0f, 0.3f}) {
    const AttentionParams p{2, 5, 2, 3, drop, 77};
    const int64_t C = 6, n = 2 * 5 * 3 * C;
    gradcheck(drop > 0 ? "attention with dropout" : "attention", {randd(n, 1, 1.5)}, {0},
              [&](const Inputs& x) {
                V out(2 * 5 * C), att(2 * 2 * 5 * 5);
                ref::attention_forward(out.data(), att.data(), x[0].data(), p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                V out(2 * 5 * C), att(2 * 2 * 5 * 5);
                ref::attention_forward(out.data(), att.data(), x[0].data(), p);
                Inputs g = {V(n)};
                ref::attention_backward(g[0].data(), cot.data(), x[0].data(), att.data(), p);
                return g;
              });
  }
}

TEST(Gradcheck, gelu) {
  gradcheck("gelu", {randd(40, 1, 4.0)}, {0},
            [&](const Inputs& x) {
              V out(40);
              ref::gelu_forward(out.data(), x[0].data(), GeluParams{40});
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(40)};
              ref::gelu_backward(g[0].data(), x[0].data(), cot.data(), GeluParams{40});
              return g;
            });
}

TEST(Gradcheck, residual) {
  gradcheck("residual", {randd(9, 1), randd(9, 2)}, {0, 1},
            [&](const Inputs& x) {
              V out(9);
              ref::residual_forward(out.data(), x[0].data(), x[1].data(), ResidualParams{9});
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(9), V(9)};
              ref::residual_backward(g[0].data(), g[1].data(), cot.data(), ResidualParams{9});
              return g;
            });
}

TEST(Gradcheck, cross_entropy) {
  // The output is the per-row loss vector, so the cotangent plays the role of dloss per row.
  const CrossEntropyParams p{4, 6, -100};
  const std::vector<int32_t> targets = {2, -100, 5, 0};
  gradcheck("cross_entropy", {randd(24, 1, 3.0)}, {0},
            [&](const Inputs& x) {
              V losses(4), lse(4);
              ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
              return losses;
            },
            [&](const Inputs& x, const V& cot) {
              V losses(4), lse(4);
              ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
              Inputs g = {V(24)};
              ref::cross_entropy_backward(g[0].data(), x[0].data(), lse.data(), targets.data(), cot.data(), p);
              return g;
            });
}

TEST(Gradcheck, pool) {
  for (PoolMode mode : {PoolMode::Last, PoolMode::First, PoolMode::Mean}) {
    const PoolParams p{2, 4, 3, mode};
    gradcheck("pool", {randd(24, 1)}, {0},
              [&](const Inputs& x) {
                V out(6);
                ref::pool_forward(out.data(), x[0].data(), p);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                Inputs g = {V(24)};
                ref::pool_backward(g[0].data(), cot.data(), p);
                return g;
              });
  }
}

// AdamW has no backward; its check is the update itself: one step from m = v = 0 moves every
// parameter by exactly lr * g / (|g| + eps') after decoupled decay (the textbook identity), and
// the reference agrees with that closed form in double.
TEST(Gradcheck, adamw) {
  const int64_t n = 17;
  V param = randd(n, 1), grad = randd(n, 2), m(n, 0.0), v(n, 0.0);
  const V before = param;
  const AdamWParams p{n, 1e-2, 0.9, 0.999, 1e-8, 0.1, 1};
  ref::adamw_step(param.data(), grad.data(), m.data(), v.data(), p);
  for (int64_t i = 0; i < n; ++i) {
    // step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps)
    const double expected = before[i] * (1 - 1e-2 * 0.1) - 1e-2 * grad[i] / (std::fabs(grad[i]) + 1e-8);
    EXPECT_NEAR(param[i], expected, 1e-15);
  }
}

// Every op of the interface has a backend case and a gradient check (ggml's coverage report).
TEST(Coverage, every_op_is_tested) {
  std::set<std::string> backend, grad;
  const auto* unit = ::testing::UnitTest::GetInstance();
  for (int i = 0; i < unit->total_test_suite_count(); ++i) {
    const auto* suite = unit->GetTestSuite(i);
    for (int j = 0; j < suite->total_test_count(); ++j) {
      const std::string name = suite->GetTestInfo(j)->name();
      if (std::string(suite->name()) == "Backend") backend.insert(name);
      if (std::string(suite->name()) == "Gradcheck") grad.insert(name);
    }
  }
  const std::set<std::string> forward_only(std::begin(kForwardOnlyOps), std::end(kForwardOnlyOps));
  for (const char* op : kOpNames) {
    EXPECT_TRUE(backend.count(op)) << "op " << op << " has no backend-vs-reference test (Backend." << op << ")";
    if (!forward_only.count(op))
      EXPECT_TRUE(grad.count(op)) << "op " << op << " has no gradient check (Gradcheck." << op << ")";
  }
}

}  // namespace
}  // namespace gptrain::test
