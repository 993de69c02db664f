// Every layer unit (Embedding, Linear, Norm, Attention, MLP) and the block, as the model composes
// them: (1) the unit's backward in double (F64 tensors run the reference kernels) against central
// differences of its forward, for the gradient of its input and of every parameter, with dropout
// on where the unit has it and the input gradient written over a garbage-filled buffer; (2) the
// same unit on the CPU backend in float32 against the unit in double, on awkward shapes (widths
// that are not multiples of the SIMD width, one row, grouped query heads, a head size other than
// width / heads, no biases).
//
// Error bound of (2), the model of tests/model/parity_test.cpp applied to one unit: a float32
// reduction of length K errs by at most gamma_K relative to the sum of absolute terms, and a
// unit of D reduction stages carries at most D such errors (Linear 1, Norm 2 (mean, variance),
// MLP 2, Attention 4 (qkv, q.k, p.v, proj)), so ||ours - ref|| <= gamma_K D ||ref||, and 2 D
// for gradients (the backward doubles the path); a stage with the vectorized exp or tanh
// (kernels/cpu/vec_math.h: 2 ulp, 2e-7 absolute on values of order one) adds 4e-7.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include <fmt/format.h>

#include "model/layers.h"
#include "model/transformer.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using V = std::vector<double>;

Tensor make(const Shape& shape, const V& values, DType t) {
  if (t == DType::F64) return Tensor::from_doubles(shape, values);
  return Tensor::from_vector(shape, std::vector<float>(values.begin(), values.end()));
}

// A buffer a write-mode gradient must overwrite.
Tensor garbage_tensor(const Shape& shape, DType t) {
  const int64_t n = shape_numel(shape);
  if (t == DType::F64) return Tensor::from_doubles(shape, garbage<double>(n));
  return Tensor::from_vector(shape, garbage<float>(n));
}

V randv(int64_t n, uint64_t seed, double scale = 1.0) {
  V v = to_double(random_floats(n, seed));
  for (double& x : v) x *= scale;
  return v;
}

// A unit's parameters, registered by `add` into a fresh set of dtype t, their values in order.
struct Params {
  ParameterSet P;
  Params(const std::function<void(ParameterSet&)>& add, DType t, const Inputs& values) {
    add(P);
    P.allocate(t);
    for (int i = 0; i < P.size(); ++i) {
      const V& v = values[1 + static_cast<size_t>(i)];
      EXPECT_EQ(static_cast<int64_t>(v.size()), P[i].value.numel()) << P[i].name;
      P[i].value.copy_from(make(P[i].value.shape(), v, t));
    }
    P.allocate_grads();
  }
};

// ||ours - ref|| <= rel ||ref|| + floor; floor covers a result that cancels to (near) zero, whose
// rounding error scales with the cancelling terms rather than with the result.
void expect_close(const std::string& what, const V& ours, const V& ref, double rel, double floor = 0) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    diff += (ours[i] - ref[i]) * (ours[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  EXPECT_LE(std::sqrt(diff), rel * std::sqrt(norm) + floor)
      << what << ": relative error " << std::sqrt(diff / std::max(norm, 1e-300)) << ", bound " << rel << " (+ " << floor
      << ")";
}

// A unit under test. run(P, t, x, cot, dx): the forward on inputs[0] (returns the output); with
// a cotangent also the backward, the input gradient into *dx (written over garbage).
struct UnitCase {
  std::string name;
  std::function<void(ParameterSet&)> add;
  Inputs inputs;  // [0]: the activation (empty: none, e.g. token ids), then the parameters in order
  std::function<V(ParameterSet&, DType, const Inputs&, const V*, V*)> run;
  int stages;      // D of the error model
  int approx = 0;  // stages with exp or tanh
  int64_t K;       // the longest reduction
  // Given the cotangent: the size of the terms the input gradient's sum cancels (0: none).
  std::function<double(const V& cot)> dx_floor;
};

void check_unit(const UnitCase& u) {
  SCOPED_TRACE(u.name);
  // (1) the backward in double against central differences
  std::vector<size_t> all;
  for (size_t i = 0; i < u.inputs.size(); ++i) all.push_back(i);
  gradcheck(
      u.name, u.inputs, all,
      [&](const Inputs& x) {
        Params p(u.add, DType::F64, x);
        return u.run(p.P, DType::F64, x, nullptr, nullptr);
      },
      [&](const Inputs& x, const V& cot) {
        Params p(u.add, DType::F64, x);
        Inputs g(x.size());
        u.run(p.P, DType::F64, x, &cot, &g[0]);
        for (int i = 0; i < p.P.size(); ++i) g[1 + static_cast<size_t>(i)] = p.P[i].grad.to_doubles();
        return g;
      });
  // (2) the CPU backend in float against the reference in double, on the same float values
  Inputs r = u.inputs;
  for (V& v : r)
    for (double& x : v) x = static_cast<float>(x);
  Params pd(u.add, DType::F64, r), pf(u.add, DType::F32, r);
  const V probe = u.run(pd.P, DType::F64, r, nullptr, nullptr);
  V cot = randv(static_cast<int64_t>(probe.size()), 5);
  for (double& c : cot) c = static_cast<float>(c);
  Params gd(u.add, DType::F64, r), gf(u.add, DType::F32, r);
  V dx_d, dx_f;
  const V yd = u.run(gd.P, DType::F64, r, &cot, &dx_d);
  const V yf = u.run(gf.P, DType::F32, r, &cot, &dx_f);
  const double eps = gamma(u.K) * u.stages + 4e-7 * u.approx;
  expect_close("output", yf, yd, eps);
  if (!r[0].empty()) expect_close("input gradient", dx_f, dx_d, 2 * eps, u.dx_floor ? 2 * eps * u.dx_floor(cot) : 0);
  for (int i = 0; i < gd.P.size(); ++i)
    expect_close("gradient of " + gd.P[i].name, gf.P[i].grad.to_doubles(), gd.P[i].grad.to_doubles(), 2 * eps);
}

TEST(Layers, linear) {
  struct Shape3 { int64_t N, IC, OC; bool bias; };
  for (const Shape3& s : {Shape3{1, 1, 1, true}, Shape3{5, 13, 7, true}, Shape3{3, 33, 10, false}, Shape3{1, 17, 9, true}}) {
    auto unit = std::make_shared<Linear>();
    UnitCase u;
    u.name = fmt::format("Linear {}x{} -> {} (bias {})", s.N, s.IC, s.OC, s.bias);
    u.add = [=](ParameterSet& P) { *unit = Linear::add(P, "l", s.IC, s.OC, s.bias, {0, 3}, {}); };
    u.inputs = {randv(s.N * s.IC, 1), randv(s.OC * s.IC, 2, 0.5)};
    if (s.bias) u.inputs.push_back(randv(s.OC, 3));
    u.run = [=](ParameterSet& P, DType t, const Inputs& x, const V* cot, V* dx) {
      const Tensor in = make({s.N, s.IC}, x[0], t), y = Tensor::zeros({s.N, s.OC}, t);
      unit->forward(P, y, in, Pass{});
      if (cot) {
        const Tensor d = garbage_tensor({s.N, s.IC}, t);
        unit->backward(P, d, make({s.N, s.OC}, *cot, t), in, InputGrad::Write, Pass{});
        *dx = d.to_doubles();
      }
      return y.to_doubles();
    };
    u.stages = 1;
    u.K = std::max(s.IC, s.N) + 1;
    check_unit(u);
  }
}

// A Linear with a LoRA adapter over two of its output parts (a gap between them, as query and
// value of a fused q|k|v), with and without LoRA dropout: the gradients of the input, the weight,
// the bias, A and B. Error model: the base product and the adapter's two chained products add
// up to 3 reduction stages.
TEST(Layers, linear_with_adapter) {
  struct Shape4 { int64_t N, IC, OC, R; bool bias; float dropout; };
  for (const Shape4& s : {Shape4{5, 13, 12, 3, true, 0.0f}, Shape4{4, 9, 12, 2, false, 0.3f}, Shape4{1, 6, 12, 1, true, 0.5f}}) {
    auto unit = std::make_shared<Linear>();
    AdapterPlan plan;
    LinearAdapter a;
    a.rank = s.R;
    a.scaling = 1.5f;
    a.parts = {"query", "value"};
    a.segments = {{0, 4}, {8, 4}};
    plan.linears["l"] = a;
    plan.dropout = s.dropout;
    UnitCase u;
    u.name = fmt::format("Linear {}x{} -> {} with a rank-{} adapter (bias {}, LoRA dropout {})", s.N, s.IC, s.OC, s.R,
                         s.bias, s.dropout);
    u.add = [=](ParameterSet& P) { *unit = Linear::add(P, "l", s.IC, s.OC, s.bias, {0, 3}, plan); };
    u.inputs = {randv(s.N * s.IC, 1), randv(s.OC * s.IC, 2, 0.5)};
    if (s.bias) u.inputs.push_back(randv(s.OC, 3));
    u.inputs.push_back(randv(2 * s.R * s.IC, 4, 0.5));  // A [2R, IC]
    u.inputs.push_back(randv(8 * s.R, 5, 0.5));         // B [8, R]
    u.run = [=](ParameterSet& P, DType t, const Inputs& x, const V* cot, V* dx) {
      Pass pass;
      pass.kind = Pass::Kind::Train;
      pass.lora_dropout = s.dropout;
      pass.dropout_seed = 77;
      pass.lora_x = Tensor::zeros({s.N * s.IC}, t);
      pass.lora_dx = Tensor::zeros({s.N * s.IC}, t);
      const Tensor in = make({s.N, s.IC}, x[0], t), y = Tensor::zeros({s.N, s.OC}, t);
      unit->forward(P, y, in, pass);
      if (cot) {
        const Tensor d = garbage_tensor({s.N, s.IC}, t);
        unit->backward(P, d, make({s.N, s.OC}, *cot, t), in, InputGrad::Write, pass);
        *dx = d.to_doubles();
      }
      return y.to_doubles();
    };
    u.stages = 3;
    u.K = std::max({s.IC, s.N, s.OC}) + 1;
    check_unit(u);
  }
}

TEST(Layers, norm) {
  for (int kind = 0; kind < 3; ++kind)  // LayerNorm with bias, without, RMSNorm
    for (int64_t C : {1, 7, 67}) {
      const int64_t N = 4;
      const bool bias = kind == 0, rms = kind == 2;
      ModelConfig c;
      c.emb_dim = C;
      c.norm_bias = bias;
      if (rms) {
        c.norm = NormKind::RMSNorm;
        c.norm_eps = 1e-6f;
      }
      auto unit = std::make_shared<Norm>();
      UnitCase u;
      u.name = fmt::format("{} C {} (bias {})", rms ? "RMSNorm" : "LayerNorm", C, bias);
      u.add = [=](ParameterSet& P) { *unit = Norm::add(P, "n", c, 0); };
      V x = randv(N * C, 1, 3.0);
      for (double& v : x) v += 0.5;  // a nonzero mean, as in a residual stream
      u.inputs = {x, randv(C, 2)};
      if (bias) u.inputs.push_back(randv(C, 3));
      u.run = [=](ParameterSet& P, DType t, const Inputs& in, const V* cot, V* dx) {
        const Tensor xt = make({N, C}, in[0], t);
        NormActs a{Tensor::zeros({N, C}, t), rms ? Tensor() : Tensor::zeros({N}, t), Tensor::zeros({N}, t)};
        unit->forward(P, a, xt);
        if (cot) {
          const Tensor d = garbage_tensor({N, C}, t);
          unit->backward(P, d, make({N, C}, *cot, t), xt, a, InputGrad::Write);
          *dx = d.to_doubles();
        }
        return a.out.to_doubles();
      };
      u.stages = 2;
      // A norm's output is x / sigma: its rounding error relative to |x - mean| rstd |w|, with the
      // C-term mean and variance, is gamma(2C + 8) as in Backend.layernorm.
      u.K = 2 * C + 8;
      // dx = rstd (w dy - mean(w dy) - norm mean(w dy norm)) cancels (exactly, when C = 1): its
      // error scales with the three terms, each at most rstd |w dy| in size.
      u.dx_floor = [=](const V& cot) {
        double sq = 0;
        for (int64_t r = 0; r < N; ++r) {
          double m = 0, var = 0;
          for (int64_t k = 0; k < C; ++k) m += rms ? 0 : x[r * C + k] / C;
          for (int64_t k = 0; k < C; ++k) var += (x[r * C + k] - m) * (x[r * C + k] - m) / C;
          const double rstd = 1 / std::sqrt(var + c.norm_eps);
          for (int64_t k = 0; k < C; ++k) sq += std::pow(3 * rstd * u.inputs[1][k] * cot[r * C + k], 2);
        }
        return std::sqrt(sq);
      };
      check_unit(u);
    }
}

TEST(Layers, embedding) {
  struct Case { int64_t B, T, C, V, P; };
  for (const Case& e : {Case{1, 1, 1, 1, 1}, Case{2, 5, 9, 7, 6}, Case{3, 4, 17, 5, 0}}) {
    auto unit = std::make_shared<Embedding>();
    UnitCase u;
    u.name = fmt::format("Embedding B {} T {} C {} V {} positions {}", e.B, e.T, e.C, e.V, e.P);
    u.add = [=](ParameterSet& P) {
      unit->dim = e.C;
      unit->tok = P.add("tok", {e.V, e.C}, ParamKind::Embedding, kEmbeddingLayer);
      unit->pos = e.P ? P.add("pos", {e.P, e.C}, ParamKind::Embedding, kEmbeddingLayer) : -1;
    };
    u.inputs = {V{}, randv(e.V * e.C, 1)};
    if (e.P) u.inputs.push_back(randv(e.P * e.C, 2));
    std::vector<int32_t> ids(static_cast<size_t>(e.B * e.T));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 5 + 2) % e.V);
    u.run = [=](ParameterSet& P, DType t, const Inputs&, const V* cot, V*) {
      const Tensor tokens = Tensor::from_ids({e.B * e.T}, ids), out = Tensor::zeros({e.B, e.T, e.C}, t);
      unit->forward(P, out, tokens, Tensor(), e.P ? e.P - e.T : 0);
      if (cot) unit->backward(P, make({e.B, e.T, e.C}, *cot, t), tokens, Tensor(), e.P ? e.P - e.T : 0);
      return out.to_doubles();
    };
    u.stages = 1;
    u.K = e.B * e.T + 1;
    check_unit(u);
  }
}

struct AttentionCase {
  int64_t B, T, C, NH, NKV, HS;
  bool qkv_bias, out_bias;
  float dropout;
  bool rope = false, qk_norm = false;
};

TEST(Layers, attention) {
  for (const AttentionCase& a : {AttentionCase{1, 1, 4, 1, 1, 4, true, true, 0.0f},
                                 AttentionCase{2, 5, 12, 3, 3, 4, false, true, 0.0f},
                                 AttentionCase{1, 7, 10, 4, 2, 3, true, false, 0.25f},    // GQA, HS != C / NH
                                 AttentionCase{2, 6, 9, 3, 1, 5, false, false, 0.1f},     // one kv head
                                 AttentionCase{2, 5, 12, 4, 2, 4, false, false, 0.0f, true},      // Llama: rope
                                 AttentionCase{1, 7, 10, 4, 2, 6, true, false, 0.2f, true, true},  // Qwen3
                                 AttentionCase{2, 3, 6, 2, 2, 4, false, true, 0.0f, false, true}}) {
    auto unit = std::make_shared<Attention>();
    UnitCase u;
    u.name = fmt::format("Attention B {} T {} C {} heads {}/{} of {} dropout {} rope {} qk_norm {}", a.B, a.T, a.C,
                         a.NH, a.NKV, a.HS, a.dropout, a.rope, a.qk_norm);
    const int64_t W = (a.NH + 2 * a.NKV) * a.HS, Q = a.NH * a.HS, N = a.B * a.T;
    ModelConfig c;
    c.emb_dim = a.C;
    c.n_heads = a.NH;
    c.n_kv_heads = a.NKV;
    c.head_dim = a.HS;
    c.qkv_bias = a.qkv_bias;
    c.out_bias = a.out_bias;
    c.qk_norm = a.qk_norm;
    c.norm_eps = 1e-6f;
    c.positions = a.rope ? PositionKind::Rotary : PositionKind::Learned;
    u.add = [=](ParameterSet& P) { *unit = Attention::add(P, "attn", c, 0, {}); };
    u.inputs = {randv(N * a.C, 1), randv(W * a.C, 2, 0.7)};
    if (a.qkv_bias) u.inputs.push_back(randv(W, 3, 0.3));
    if (a.qk_norm) {
      u.inputs.push_back(randv(a.HS, 6, 1.0));
      u.inputs.push_back(randv(a.HS, 7, 1.0));
    }
    u.inputs.push_back(randv(a.C * Q, 4, 0.5));
    if (a.out_bias) u.inputs.push_back(randv(a.C, 5, 0.3));
    // rotary tables of positions 0..T-1 in every sequence (theta 100: angles of several radians)
    V cos_v(static_cast<size_t>(N * a.HS / 2)), sin_v(cos_v.size());
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < a.HS / 2; ++i) {
        const double angle = static_cast<double>(n % a.T) * std::pow(100.0, -2.0 * i / a.HS);
        cos_v[n * a.HS / 2 + i] = static_cast<float>(std::cos(angle));
        sin_v[n * a.HS / 2 + i] = static_cast<float>(std::sin(angle));
      }
    u.run = [=](ParameterSet& P, DType t, const Inputs& x, const V* cot, V* dx) {
      const Tensor in = make({a.B, a.T, a.C}, x[0], t);
      AttentionActs acts;
      if (a.qk_norm) {
        acts.qkv_raw = Tensor::zeros({a.B, a.T, W}, t);
        acts.qk_rstd = Tensor::zeros({a.B, a.T, a.NH + a.NKV}, t);
      }
      acts.qkv = Tensor::zeros({a.B, a.T, W}, t);
      acts.stats = Tensor::zeros({a.B, a.NH, a.T, 2}, t);
      acts.y = Tensor::zeros({a.B, a.T, Q}, t);
      acts.proj = Tensor::zeros({a.B, a.T, a.C}, t);
      Pass pass;
      pass.kind = Pass::Kind::Train;
      pass.dropout_p = a.dropout;
      pass.dropout_seed = 31;
      if (a.rope) {
        pass.rope_cos = make({N, a.HS / 2}, cos_v, t);
        pass.rope_sin = make({N, a.HS / 2}, sin_v, t);
      }
      unit->forward(P, acts, in, pass, 0);
      if (cot) {
        BlockGrads g;
        g.dy = Tensor::zeros({a.B, a.T, Q}, t);
        g.dqkv = Tensor::zeros({a.B, a.T, W}, t);
        const Tensor d = garbage_tensor({a.B, a.T, a.C}, t);
        unit->backward(P, d, make({a.B, a.T, a.C}, *cot, t), in, acts, g, pass, 0);
        *dx = d.to_doubles();
      }
      return acts.proj.to_doubles();
    };
    // the query/key norms add their two stages (sum of squares, normalisation) before q.k
    u.stages = a.qk_norm ? 6 : 4;
    u.approx = 1;
    u.K = std::max({a.C, a.T, Q, N, a.HS}) + 2 + (a.rope ? 3 : 0);
    check_unit(u);
  }
}

TEST(Layers, mlp) {
  struct Case { int64_t N, C, M; bool bias, swiglu; };
  for (const Case& m : {Case{1, 1, 4, true, false}, Case{3, 9, 36, true, false}, Case{4, 10, 23, false, false},
                        Case{1, 3, 2, false, true}, Case{3, 9, 21, false, true}, Case{2, 8, 16, true, true}}) {
    auto unit = std::make_shared<Mlp>();
    UnitCase u;
    u.name = fmt::format("MLP N {} C {} width {} (bias {}, {})", m.N, m.C, m.M, m.bias, m.swiglu ? "SwiGLU" : "GELU");
    ModelConfig c;
    c.emb_dim = m.C;
    c.mlp_dim = m.M;
    c.mlp_bias = m.bias;
    c.mlp = m.swiglu ? MlpKind::SwiGLU : MlpKind::GeluTanh;
    const int64_t H = m.swiglu ? 2 * m.M : m.M;  // the fc output: SwiGLU's gate | up
    u.add = [=](ParameterSet& P) { *unit = Mlp::add(P, "mlp", c, 0, {}); };
    u.inputs = {randv(m.N * m.C, 1, 1.5), randv(H * m.C, 2)};
    if (m.bias) u.inputs.push_back(randv(H, 3, 0.5));
    u.inputs.push_back(randv(m.C * m.M, 4, 0.5));
    if (m.bias) u.inputs.push_back(randv(m.C, 5, 0.5));
    u.run = [=](ParameterSet& P, DType t, const Inputs& x, const V* cot, V* dx) {
      const Tensor in = make({m.N, m.C}, x[0], t);
      MlpActs acts{Tensor::zeros({m.N, H}, t), Tensor::zeros({m.N, m.M}, t), Tensor::zeros({m.N, m.C}, t)};
      unit->forward(P, acts, in, Pass{});
      if (cot) {
        BlockGrads g;
        g.dhidden = Tensor::zeros({m.N, H}, t);
        if (m.swiglu) g.dact = Tensor::zeros({m.N, m.M}, t);
        const Tensor d = garbage_tensor({m.N, m.C}, t);
        unit->backward(P, d, make({m.N, m.C}, *cot, t), in, acts, g, Pass{});
        *dx = d.to_doubles();
      }
      return acts.proj.to_doubles();
    };
    u.stages = 2;
    u.approx = 1;
    u.K = std::max({m.C, m.M, m.N}) + 2;
    check_unit(u);
  }
}

// The whole model in double: the block, the embeddings, the final norm, the head and the loss,
// composed as training composes them (dropout on), against central differences of the loss.
struct ModelCase {
  std::string name;
  ModelConfig config;
};

std::vector<ModelCase> model_cases() {
  ModelConfig base;
  base.vocab_size = 11;
  base.context_length = 6;
  base.emb_dim = 8;
  base.n_heads = 2;
  base.n_layers = 2;
  base.drop_rate = 0.3f;
  std::vector<ModelCase> cases;
  ModelConfig c = base;
  c.qkv_bias = true;
  cases.push_back({"gpt2 with qkv bias", c});
  c = base;
  c.tie_weights = true;
  cases.push_back({"tied head", c});
  c = base;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 3;
  c.mlp_dim = 13;
  c.norm_bias = c.out_bias = c.mlp_bias = false;
  cases.push_back({"grouped-query heads of 3, no biases", c});
  c = base;
  c.head = HeadType::Classifier;
  c.n_classes = 3;
  c.pooling = Pooling::Mean;
  cases.push_back({"classifier, mean pooling", c});
  ModelConfig llama = base;  // Llama 3: RMSNorm, SwiGLU, rotary with llama3 scaling, GQA, tied
  llama.family = "llama";
  llama.n_heads = 4;
  llama.n_kv_heads = 2;
  llama.mlp_dim = 12;
  llama.norm = NormKind::RMSNorm;
  llama.norm_bias = llama.qkv_bias = llama.out_bias = llama.mlp_bias = false;
  llama.mlp = MlpKind::SwiGLU;
  llama.positions = PositionKind::Rotary;
  llama.rope = RopeConfig{500000.0, "llama3", 32.0, 1.0, 4.0, 4};
  llama.tie_weights = true;
  cases.push_back({"llama", llama});
  ModelConfig qwen = llama;  // Qwen3: query/key norms, head size != width / heads, no rope scaling
  qwen.family = "qwen3";
  qwen.head_dim = 6;
  qwen.qk_norm = true;
  qwen.norm_eps = 1e-6f;
  qwen.rope = RopeConfig{1000000.0, "", 1.0, 1.0, 4.0, 0};
  qwen.tie_weights = false;
  cases.push_back({"qwen3", qwen});
  ModelConfig qwen_cls = qwen;
  qwen_cls.head = HeadType::Classifier;
  qwen_cls.n_classes = 3;
  cases.push_back({"qwen3 classifier", qwen_cls});
  return cases;
}

TEST(Transformer, gradient_in_double_equals_central_differences) {
  for (const ModelCase& mc : model_cases()) {
    SCOPED_TRACE(mc.name);
    Transformer m(mc.config, 17, DType::F64);
    const int64_t B = 2, T = 5;
    const bool cls = mc.config.head == HeadType::Classifier;
    const std::vector<int32_t> x = {1, 5, 2, 9, 10, 0, 3, 3, 7, 4};
    std::vector<int32_t> y = cls ? std::vector<int32_t>{2, 0} : std::vector<int32_t>{5, 2, -100, 10, 0, 3, 3, 7, 4, 8};
    const ForwardOptions train{true, 1234};
    m.zero_grads();
    m.forward_loss(x, y, B, T, train);
    m.backward();
    const double h = 1e-6;
    int checked = 0;
    for (Parameter& p : m.params().all()) {
      const std::vector<double> g = p.grad.to_doubles();
      double scale = 1e-3;
      for (double v : g) scale = std::max(scale, std::fabs(v));
      double* w = p.value.data<double>();
      const int64_t n = p.value.numel(), stride = std::max<int64_t>(1, n / 40);  // about 40 entries each
      int bad = 0;
      for (int64_t i = 0; i < n; i += stride) {
        const double saved = w[i];
        w[i] = saved + h;
        const double lp = m.forward_loss(x, y, B, T, train);
        w[i] = saved - h;
        const double lm = m.forward_loss(x, y, B, T, train);
        w[i] = saved;
        // central difference error O(h^2) + O(1e-16 |L| / h): far below 1e-6 of the scale
        if (!(std::fabs((lp - lm) / (2 * h) - g[static_cast<size_t>(i)]) <= 1e-6 * scale)) ++bad;
        ++checked;
      }
      EXPECT_EQ(bad, 0) << p.name;
    }
    EXPECT_GT(checked, 100);
  }
}

// The float model on the CPU against the same model in double (the same float weights): logits,
// loss and every gradient within the parity error model (D = 6L + 3 stages, 2D for gradients).
TEST(Transformer, float_model_on_the_cpu_equals_the_double_model) {
  for (const ModelCase& mc : model_cases()) {
    SCOPED_TRACE(mc.name);
    Transformer f(mc.config, 5, DType::F32), d(mc.config, 5, DType::F64);
    for (int i = 0; i < f.params().size(); ++i) d.params()[i].value.copy_from(f.params()[i].value.to(DType::F64));
    const int64_t B = 2, T = 6;
    const bool cls = mc.config.head == HeadType::Classifier;
    std::vector<int32_t> x(12), y(cls ? 2 : 12);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int32_t>((i * 7 + 1) % 11);
    for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int32_t>((i * 3 + 2) % (cls ? 3 : 11));
    const ForwardOptions train{true, 99};
    const double lf = f.forward_loss(x, y, B, T, train), ld = d.forward_loss(x, y, B, T, train);
    const ModelConfig& c = mc.config;
    const int64_t K = std::max<int64_t>({c.mlp_width(), c.qkv_width(), T, B * T, c.vocab_size}) + 2;
    const double D = 6.0 * c.n_layers + 3;
    // exp in every softmax, tanh in every GELU (exp in SwiGLU), exp in the loss: 2L + 1
    // approximated stages; a model with query/key norms has two more stages per layer, rotary
    // positions three roundings per rotation
    const double D_all = D + (c.qk_norm ? 2.0 * c.n_layers : 0.0);
    const double eps = gamma(K + (c.positions == PositionKind::Rotary ? 3 : 0)) * D_all + 4e-7 * (2.0 * c.n_layers + 1);
    expect_close("logits", f.logits().to_doubles(), d.logits().to_doubles(), eps);
    EXPECT_LE(std::fabs(lf - ld), eps * std::fabs(ld));
    f.backward();
    d.backward();
    for (int i = 0; i < f.params().size(); ++i)
      expect_close("gradient of " + f.params()[i].name, f.params()[i].grad.to_doubles(),
                   d.params()[i].grad.to_doubles(), 2 * eps);
  }
}

// Decoding runs the same block: in double, the logits of a prefill then one row at a time equal
// the evaluation pass over the whole sequence to the last bits of double precision.
TEST(Transformer, decoding_and_evaluation_compute_the_same_function) {
  for (const ModelCase& mc : model_cases()) {
    if (mc.config.head == HeadType::Classifier) continue;
    SCOPED_TRACE(mc.name);
    const Transformer m(mc.config, 3, DType::F64);
    const std::vector<int32_t> ids = {4, 1, 9, 9, 2, 7};
    KVCache cache = m.make_kv_cache(6);
    DecodeWorkspace dws;
    BatchWorkspace bws;
    int64_t past = 0;
    for (size_t n = 2; n <= ids.size(); ++n) {
      DecodeBatch b;
      const size_t from = n == 2 ? 0 : n - 1;
      b.tokens.assign(ids.begin() + static_cast<long>(from), ids.begin() + static_cast<long>(n));
      for (size_t p = from; p < n; ++p) b.positions.push_back(static_cast<int32_t>(p));
      b.slots = {DecodeSlot{&cache, past, static_cast<int64_t>(n - from)}};
      b.batch_invariant = n > 2;
      const std::vector<double> dec = m.decode(dws, b).to_doubles();
      past = b.slots[0].past;
      const std::vector<double> full =
          m.forward(bws, std::span(ids).subspan(0, n), 1, static_cast<int64_t>(n), ForwardOptions{false, 0, true})
              .to_doubles();
      ASSERT_EQ(dec.size(), full.size());
      for (size_t i = 0; i < dec.size(); ++i) ASSERT_NEAR(dec[i], full[i], 1e-12 * (1 + std::fabs(full[i])));
    }
  }
}

}  // namespace
}  // namespace gptrain::test
