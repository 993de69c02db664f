// Every op's backward (the reference kernels, in double) against central finite differences of
// its forward with a random cotangent. The CPU kernels are tied to these by backend_test.cpp.
// A backward that takes an InputGrad mode is checked three ways: accumulating onto zeros,
// accumulating onto random values (the check is on the buffer minus them), and writing over
// garbage (which must leave nothing of it).
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

// How the input-activation gradient buffer starts.
struct Start {
  const char* name;
  InputGrad mode;
};
constexpr Start kStarts[] = {{"accumulating onto zeros", InputGrad::Accumulate},
                             {"accumulating onto random values", InputGrad::Accumulate},
                             {"writing over garbage", InputGrad::Write}};

V start_values(size_t start, size_t n) {
  if (start == 0) return V(n, 0.0);
  if (start == 1) return randd(static_cast<int64_t>(n), 31, 4.0);
  return garbage<double>(static_cast<int64_t>(n));  // NaN, 1e30, -inf, -1e30
}

// Gradient check of an op whose backward takes an InputGrad mode for input `act`:
// backward(x, cot, mode, g) runs the backward with g[act] prefilled as each start says and the
// other (parameter) gradients zero. Then, for one cotangent, the gradients written over garbage
// must equal those accumulated onto zeros exactly: the reference adds or writes the same terms in
// the same order, and a NaN left behind compares unequal.
using ModeBackward = std::function<void(const Inputs&, const V&, InputGrad, Inputs&)>;
void gradcheck_modes(const std::string& what, const Inputs& inputs, const std::vector<size_t>& check, size_t act,
                     const std::function<V(const Inputs&)>& forward, const ModeBackward& backward) {
  auto run = [&](size_t start, const Inputs& x, const V& cot) {
    Inputs g;
    for (const V& in : x) g.push_back(V(in.size(), 0.0));
    const V init = start_values(start, x[act].size());
    g[act] = init;
    backward(x, cot, kStarts[start].mode, g);
    if (start == 1)
      for (size_t i = 0; i < init.size(); ++i) g[act][i] -= init[i];
    return g;
  };
  for (size_t start = 0; start < std::size(kStarts); ++start)
    gradcheck(what + ", " + kStarts[start].name, inputs, check, forward,
              [&](const Inputs& x, const V& cot) { return run(start, x, cot); });
  const V cot = to_double(random_floats(static_cast<int64_t>(forward(inputs).size()), 99));
  const Inputs accumulated = run(0, inputs, cot), written = run(2, inputs, cot);
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(written[i], accumulated[i]) << what << ": gradient " << i << " written vs accumulated onto zeros";
}

TEST(Gradcheck, embedding) {
  const EmbeddingParams p{2, 3, 5, 4, 6, 1};
  const std::vector<int32_t> tokens = {0, 3, 3, 1, 2, 0};
  gradcheck("embedding", {randd(4 * 5, 1), randd(6 * 5, 2)}, {0, 1},
            [&](const Inputs& x) {
              V out(2 * 3 * 5);
              ref::embedding_forward(out.data(), tokens.data(), nullptr, x[0].data(), x[1].data(), p);
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(x[0].size()), V(x[1].size())};
              ref::embedding_backward(g[0].data(), g[1].data(), cot.data(), tokens.data(), nullptr, p);
              return g;
            });
  // An explicit position per row (out of order, repeated: several sequences decoded at once).
  const std::vector<int32_t> positions = {5, 0, 2, 2, 4, 1};
  const EmbeddingParams pp{2, 3, 5, 4, 6, 0};
  gradcheck("embedding with positions", {randd(4 * 5, 1), randd(6 * 5, 2)}, {0, 1},
            [&](const Inputs& x) {
              V out(2 * 3 * 5);
              ref::embedding_forward(out.data(), tokens.data(), positions.data(), x[0].data(), x[1].data(), pp);
              return out;
            },
            [&](const Inputs& x, const V& cot) {
              Inputs g = {V(x[0].size()), V(x[1].size())};
              ref::embedding_backward(g[0].data(), g[1].data(), cot.data(), tokens.data(), positions.data(), pp);
              return g;
            });
  // No position table (n_positions = 0, wpe null): the token embedding alone, with or without a
  // positions array (which then goes unread).
  const EmbeddingParams pn{2, 3, 5, 4, 0, 0};
  for (const int32_t* pos : {static_cast<const int32_t*>(nullptr), positions.data()})
    gradcheck(pos ? "embedding without wpe, with positions" : "embedding without wpe", {randd(4 * 5, 1)}, {0},
              [&](const Inputs& x) {
                V out(2 * 3 * 5);
                ref::embedding_forward(out.data(), tokens.data(), pos, x[0].data(), static_cast<const double*>(nullptr),
                                       pn);
                return out;
              },
              [&](const Inputs& x, const V& cot) {
                Inputs g = {V(x[0].size())};
                ref::embedding_backward(g[0].data(), static_cast<double*>(nullptr), cot.data(), tokens.data(), pos, pn);
                return g;
              });
}

TEST(Gradcheck, dropout) {
  const DropoutParams p{50, 0.4f, 9};
  gradcheck_modes("dropout", {randd(50, 1)}, {0}, 0,
                  [&](const Inputs& x) {
                    V out(50);
                    ref::dropout_forward(out.data(), x[0].data(), p);
                    return out;
                  },
                  [&](const Inputs&, const V& cot, InputGrad mode, Inputs& g) {
                    DropoutParams q = p;
                    q.dinp = mode;
                    ref::dropout_backward(g[0].data(), cot.data(), q);
                  });
}

TEST(Gradcheck, layernorm) {
  const LayerNormParams p{3, 7, 1e-5f};
  for (bool bias : {true, false}) {
    Inputs in = {randd(21, 1, 3.0), randd(7, 2)};
    if (bias) in.push_back(randd(7, 3));
    auto bias_of = [&](const Inputs& x) { return bias ? x[2].data() : nullptr; };
    gradcheck_modes(bias ? "layernorm" : "layernorm without bias", in,
                    bias ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0, 1}, 0,
                    [&](const Inputs& x) {
                      V out(21), mean(3), rstd(3);
                      ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x[0].data(), x[1].data(), bias_of(x),
                                             p);
                      return out;
                    },
                    [&](const Inputs& x, const V& cot, InputGrad mode, Inputs& g) {
                      V out(21), mean(3), rstd(3);
                      ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x[0].data(), x[1].data(), bias_of(x),
                                             p);
                      LayerNormParams q = p;
                      q.dinp = mode;
                      ref::layernorm_backward(g[0].data(), g[1].data(), bias ? g[2].data() : nullptr, cot.data(),
                                              x[0].data(), x[1].data(), mean.data(), rstd.data(), q);
                    });
  }
}

TEST(Gradcheck, matmul) {
  for (bool bias : {true, false}) {
    const MatmulParams p{4, 5, 3};
    gradcheck_modes(bias ? "matmul with bias" : "matmul without bias", {randd(20, 1), randd(15, 2), randd(3, 3)},
                    bias ? std::vector<size_t>{0, 1, 2} : std::vector<size_t>{0, 1}, 0,
                    [&](const Inputs& x) {
                      V out(12);
                      ref::matmul_forward(out.data(), x[0].data(), x[1].data(), bias ? x[2].data() : nullptr, p);
                      return out;
                    },
                    [&](const Inputs& x, const V& cot, InputGrad mode, Inputs& g) {
                      MatmulParams q = p;
                      q.dinp = mode;
                      ref::matmul_backward(g[0].data(), g[1].data(), bias ? g[2].data() : nullptr, cot.data(),
                                           x[0].data(), x[1].data(), q);
                    });
  }
}

TEST(Gradcheck, attention) {
  // Multi-head (NKV = NH), then grouped-query attention (NKV < NH), with head sizes that are just
  // a parameter (no relation to a model width), each with and without dropout.
  struct Case { int64_t B, T, NH, NKV, HS; };
  for (const Case& c : {Case{2, 5, 2, 2, 3}, Case{2, 5, 4, 2, 3}, Case{2, 5, 3, 1, 2}, Case{1, 6, 4, 1, 5}})
    for (float drop : {0.0f, 0.3f}) {
      const AttentionParams p{c.B, c.T, c.NH, c.NKV, c.HS, drop, 77};
      const int64_t n = c.B * c.T * p.qkv_width(), n_out = c.B * c.T * c.NH * c.HS, n_stats = c.B * c.NH * c.T * 2;
      const std::string name = "attention NH " + std::to_string(c.NH) + " NKV " + std::to_string(c.NKV) + " HS " +
                               std::to_string(c.HS) + (drop > 0 ? " with dropout" : "");
      gradcheck_modes(name, {randd(n, 1, 1.5)}, {0}, 0,
                      [&](const Inputs& x) {
                        V out(n_out), stats(n_stats);
                        ref::attention_forward(out.data(), stats.data(), x[0].data(), p);
                        return out;
                      },
                      [&](const Inputs& x, const V& cot, InputGrad mode, Inputs& g) {
                        V out(n_out), stats(n_stats);
                        ref::attention_forward(out.data(), stats.data(), x[0].data(), p);
                        AttentionParams q = p;
                        q.dinp = mode;
                        ref::attention_backward(g[0].data(), cot.data(), x[0].data(), stats.data(), q);
                      });
    }
}

TEST(Gradcheck, gelu) {
  gradcheck_modes("gelu", {randd(40, 1, 4.0)}, {0}, 0,
                  [&](const Inputs& x) {
                    V out(40);
                    ref::gelu_forward(out.data(), x[0].data(), GeluParams{40});
                    return out;
                  },
                  [&](const Inputs& x, const V& cot, InputGrad mode, Inputs& g) {
                    ref::gelu_backward(g[0].data(), x[0].data(), cot.data(), GeluParams{40, mode});
                  });
}

TEST(Gradcheck, residual) {
  gradcheck("residual", {randd(9, 1), randd(9, 2)}, {0, 1},
            [&](const Inputs& x) {
              V out(9);
              ref::residual_forward(out.data(), x[0].data(), x[1].data(), ResidualParams{9});
              return out;
            },
            [&](const Inputs&, const V& cot) {
              Inputs g = {V(9), V(9)};
              ref::residual_backward(g[0].data(), g[1].data(), cot.data(), ResidualParams{9});
              return g;
            });
}

TEST(Gradcheck, cross_entropy) {
  // The output is the per-row loss vector, so the cotangent plays the role of dloss per row.
  // dlogits is written, not accumulated: it starts from zeros, then from garbage.
  const CrossEntropyParams p{4, 6, -100};
  const std::vector<int32_t> targets = {2, -100, 5, 0};
  for (bool garbage_start : {false, true})
    gradcheck(garbage_start ? "cross_entropy over garbage" : "cross_entropy", {randd(24, 1, 3.0)}, {0},
              [&](const Inputs& x) {
                V losses(4), lse(4);
                ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
                return losses;
              },
              [&](const Inputs& x, const V& cot) {
                V losses(4), lse(4);
                ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
                Inputs g = {garbage_start ? garbage<double>(24) : V(24)};
                ref::cross_entropy_backward(g[0].data(), x[0].data(), lse.data(), targets.data(), cot.data(), p);
                return g;
              });
  // Without a dloss array every row is scaled by dloss_scale: the gradient of the summed loss
  // times its (single) cotangent, which is a float value, so dloss_scale carries it exactly.
  gradcheck("cross_entropy with dloss_scale", {randd(24, 1, 3.0)}, {0},
            [&](const Inputs& x) {
              V losses(4), lse(4);
              ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
              return V{losses[0] + losses[1] + losses[2] + losses[3]};
            },
            [&](const Inputs& x, const V& cot) {
              V losses(4), lse(4);
              ref::cross_entropy_forward(losses.data(), lse.data(), x[0].data(), targets.data(), p);
              CrossEntropyParams q = p;
              q.dloss_scale = static_cast<float>(cot[0]);
              EXPECT_EQ(static_cast<double>(q.dloss_scale), cot[0]);
              Inputs g = {garbage<double>(24)};
              ref::cross_entropy_backward(g[0].data(), x[0].data(), lse.data(), targets.data(),
                                          static_cast<const double*>(nullptr), q);
              return g;
            });
}

TEST(Gradcheck, pool) {
  for (PoolMode mode : {PoolMode::Last, PoolMode::First, PoolMode::Mean}) {
    const PoolParams p{2, 4, 3, mode};
    gradcheck_modes("pool", {randd(24, 1)}, {0}, 0,
                    [&](const Inputs& x) {
                      V out(6);
                      ref::pool_forward(out.data(), x[0].data(), p);
                      return out;
                    },
                    [&](const Inputs&, const V& cot, InputGrad m, Inputs& g) {
                      PoolParams q = p;
                      q.dinp = m;
                      ref::pool_backward(g[0].data(), cot.data(), q);
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
    if (!forward_only.count(op)) {
      EXPECT_TRUE(grad.count(op)) << "op " << op << " has no gradient check (Gradcheck." << op << ")";
    }
  }
}

}  // namespace
}  // namespace gptrain::test
