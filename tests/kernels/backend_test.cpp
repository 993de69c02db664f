// Every CPU kernel against the scalar reference kernel run in double, on awkward shapes (1, odd,
// sizes that are not multiples of the SIMD width). Each bound is derived from float32 rounding:
// gamma(n) * (the same computation on absolute values) for sums of n products, plus the documented
// error of the vectorized exp/tanh where they are used.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;

std::vector<float> randf(int64_t n, uint64_t seed) { return random_floats(n, seed); }

TEST(Backend, embedding) {
  struct Case { int64_t B, T, C, V, P, offset; };
  for (const Case& c : {Case{1, 1, 1, 1, 1, 0}, Case{2, 7, 13, 11, 9, 2}, Case{3, 5, 33, 4, 5, 0}}) {
    const EmbeddingParams p{c.B, c.T, c.C, c.V, c.P, c.offset};
    std::vector<int32_t> tokens(static_cast<size_t>(c.B * c.T));
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7 + 3) % c.V);
    auto wte = randf(c.V * c.C, 1), wpe = randf(c.P * c.C, 2), dout = randf(c.B * c.T * c.C, 3);
    std::vector<float> out(dout.size());
    cpu::embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), p);
    std::vector<double> want(out.size());
    auto wte_d = to_double(wte), wpe_d = to_double(wpe);
    ref::embedding_forward(want.data(), tokens.data(), wte_d.data(), wpe_d.data(), p);
    expect_within("embedding forward", out, want, gamma(1) * 2);  // one rounded add of values <= 1
    // backward accumulates into existing gradients: start both from the same nonzero values
    auto dwte = randf(c.V * c.C, 4), dwpe = randf(c.P * c.C, 5);
    auto dwte_d = to_double(dwte), dwpe_d = to_double(dwpe), dout_d = to_double(dout);
    cpu::embedding_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), p);
    ref::embedding_backward(dwte_d.data(), dwpe_d.data(), dout_d.data(), tokens.data(), p);
    // each row sums at most B*T terms of magnitude <= 1 onto a value <= 1
    expect_within("embedding dwte", dwte, dwte_d, gamma(c.B * c.T + 1) * (c.B * c.T + 1));
    expect_within("embedding dwpe", dwpe, dwpe_d, gamma(c.B * c.T + 1) * (c.B * c.T + 1));
  }
}

TEST(Backend, dropout) {
  for (int64_t n : {1, 7, 1001}) {
    const DropoutParams p{n, 0.3f, 42};
    auto x = randf(n, 1), dout = randf(n, 2), dinp = randf(n, 3);
    std::vector<float> out(static_cast<size_t>(n));
    std::vector<double> want(out.size());
    auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp);
    cpu::dropout_forward(out.data(), x.data(), p);
    ref::dropout_forward(want.data(), x_d.data(), p);
    expect_within("dropout forward", out, want, gamma(2) * 2);  // x * (1/(1-p)) rounded once or twice
    cpu::dropout_backward(dinp.data(), dout.data(), p);
    ref::dropout_backward(dinp_d.data(), dout_d.data(), p);
    expect_within("dropout backward", dinp, dinp_d, gamma(3) * 3);
  }
  // The mask keeps a fraction 1 - p: binomial with n = 1e6 has sd sqrt(p(1-p)/n) = 4.6e-4 at p = 0.3.
  const int64_t n = 1000000;
  std::vector<float> ones(n, 1.0f), out(n);
  cpu::dropout_forward(out.data(), ones.data(), DropoutParams{n, 0.3f, 7});
  const int64_t kept = std::count_if(out.begin(), out.end(), [](float v) { return v != 0.0f; });
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 6 * 4.6e-4);
  for (float v : out) ASSERT_TRUE(v == 0.0f || v == 1.0f / 0.7f);
}

TEST(Backend, layernorm) {
  struct Case { int64_t N, C; };
  for (const Case& c : {Case{1, 1}, Case{1, 2}, Case{5, 7}, Case{9, 67}, Case{3, 768}}) {
    const LayerNormParams p{c.N, c.C, 1e-5f};
    auto x = randf(c.N * c.C, 1), w = randf(c.C, 2), b = randf(c.C, 3), dout = randf(c.N * c.C, 4);
    for (float& v : x) v = v * 3 + 0.5f;  // a nonzero mean, as in a residual stream
    std::vector<float> out(x.size()), mean(c.N), rstd(c.N);
    std::vector<double> out_d(x.size()), mean_d(c.N), rstd_d(c.N);
    auto x_d = to_double(x), w_d = to_double(w), b_d = to_double(b), dout_d = to_double(dout);
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), p);
    ref::layernorm_forward(out_d.data(), mean_d.data(), rstd_d.data(), x_d.data(), w_d.data(), b_d.data(), p);
    // normalised values are O(rstd * |x - mean|); mean and variance are C-term sums, so each output
    // carries a relative error of about gamma(2C + 8) on |norm * w| plus the rounding of + b.
    std::vector<double> bound(out_d.size());
    for (int64_t r = 0; r < c.N; ++r)
      for (int64_t k = 0; k < c.C; ++k) {
        const double norm = (x_d[r * c.C + k] - mean_d[r]) * rstd_d[r];
        bound[r * c.C + k] = gamma(2 * c.C + 8) * (std::fabs(norm * w_d[k]) + std::fabs(b_d[k]) +
                                                   std::fabs(w_d[k]) * (1 + std::sqrt(double(c.C))));
      }
    expect_within("layernorm forward", out, out_d, bound);
    // backward against the reference run on the reference's own statistics
    auto dinp = randf(x.size(), 5), dw = randf(c.C, 6), db = randf(c.C, 7);
    auto dinp_d = to_double(dinp), dw_d = to_double(dw), db_d = to_double(db);
    cpu::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(),
                            rstd.data(), p);
    ref::layernorm_backward(dinp_d.data(), dw_d.data(), db_d.data(), dout_d.data(), x_d.data(), w_d.data(),
                            mean_d.data(), rstd_d.data(), p);
    double rmax = 0;
    for (double r : rstd_d) rmax = std::max(rmax, r);
    // dinp: rstd * (three terms of size <= |w dy| * sqrt(C)), reductions over C: gamma(3C + 16).
    expect_within("layernorm dinp", dinp, dinp_d, gamma(3 * c.C + 16) * rmax * 4 * (1 + std::sqrt(double(c.C))) * 2);
    expect_within("layernorm dweight", dw, dw_d, gamma(c.N + 8) * (c.N * 2 * rmax * 4 + 1));
    expect_within("layernorm dbias", db, db_d, gamma(c.N + 1) * (c.N + 1));
  }
}

TEST(Backend, matmul) {
  struct Case { int64_t N, IC, OC; bool bias; };
  for (const Case& c : {Case{1, 1, 1, true}, Case{1, 1, 1, false}, Case{7, 13, 17, true}, Case{33, 65, 31, false},
                        Case{5, 129, 9, true}, Case{1, 129, 67, true}, Case{1, 300, 5, false}}) {  // N 1: gemv
    const MatmulParams p{c.N, c.IC, c.OC};
    auto x = randf(c.N * c.IC, 1), w = randf(c.OC * c.IC, 2), b = randf(c.OC, 3), dout = randf(c.N * c.OC, 4);
    auto x_d = to_double(x), w_d = to_double(w), b_d = to_double(b), dout_d = to_double(dout);
    std::vector<float> out(c.N * c.OC);
    std::vector<double> out_d(out.size()), mag(out.size());
    cpu::matmul_forward(out.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, p);
    ref::matmul_forward(out_d.data(), x_d.data(), w_d.data(), c.bias ? b_d.data() : nullptr, p);
    // Forward error bound: gamma(IC + 1) * (|x| @ |w|^T + |b|), the same product on absolute values.
    const auto ax = abs_of(x_d), aw = abs_of(w_d), ab = abs_of(b_d);
    ref::matmul_forward(mag.data(), ax.data(), aw.data(), c.bias ? ab.data() : nullptr, p);
    for (double& m : mag) m *= gamma(c.IC + 1);
    expect_within("matmul forward", out, out_d, mag);
    // Backward, accumulating into nonzero gradients.
    auto dx = randf(x.size(), 5), dw = randf(w.size(), 6), db = randf(b.size(), 7);
    auto dx_d = to_double(dx), dw_d = to_double(dw), db_d = to_double(db);
    cpu::matmul_backward(dx.data(), dw.data(), c.bias ? db.data() : nullptr, dout.data(), x.data(), w.data(), p);
    ref::matmul_backward(dx_d.data(), dw_d.data(), c.bias ? db_d.data() : nullptr, dout_d.data(), x_d.data(),
                         w_d.data(), p);
    const double bound_dx = gamma(c.OC + 2) * (c.OC + 1), bound_dw = gamma(c.N + 2) * (c.N + 1);
    expect_within("matmul dinp", dx, dx_d, bound_dx);
    expect_within("matmul dweight", dw, dw_d, bound_dw);
    expect_within("matmul dbias", db, db_d, gamma(c.N + 1) * (c.N + 1));
    // Null gradients are skipped: only dweight requested leaves dinp untouched.
    auto dx2 = dx;
    cpu::matmul_backward(nullptr, dw.data(), nullptr, dout.data(), x.data(), w.data(), p);
    EXPECT_EQ(dx2, dx);
  }
}

TEST(Backend, attention) {
  struct Case { int64_t B, T, NH, HS; float p; };
  for (const Case& c : {Case{1, 1, 1, 1, 0.0f}, Case{2, 5, 3, 7, 0.0f}, Case{1, 17, 2, 9, 0.25f},
                        Case{2, 33, 4, 16, 0.1f}, Case{1, 150, 2, 8, 0.1f}, Case{1, 130, 1, 4, 0.0f}}) {
    const AttentionParams p{c.B, c.T, c.NH, c.HS, c.p, 1234};
    const int64_t C = c.NH * c.HS;
    auto qkv = randf(c.B * c.T * 3 * C, 1), dout = randf(c.B * c.T * C, 2);
    for (float& v : qkv) v *= 2;
    auto qkv_d = to_double(qkv), dout_d = to_double(dout);
    std::vector<float> out(c.B * c.T * C), stats(c.B * c.NH * c.T * 2);
    std::vector<double> out_d(out.size()), att_d(c.B * c.NH * c.T * c.T);
    cpu::attention_forward(out.data(), stats.data(), qkv.data(), p);
    ref::attention_forward(out_d.data(), att_d.data(), qkv_d.data(), p);
    // Scores: HS-term dot products of values <= 2, error <= gamma(HS+1) * 4 HS * scale =: e_s.
    // Probabilities: relative error <= 2 e_s (shift) + 2 ulp (exp) + gamma(T + 2) (sum, divide).
    // Outputs: sums of T terms |p v| <= 2 with that relative error plus gamma(T + 1).
    const double e_s = gamma(c.HS + 1) * 4 * c.HS / std::sqrt(double(c.HS));
    const double rel_p = 2 * e_s + 4 * kU32 + gamma(c.T + 2);
    const double scale_drop = c.p > 0 ? 1.0 / (1.0 - c.p) : 1.0;
    // The row statistics (max, 1/sum) rebuild the probabilities: exp(score - max) * (1/sum) with
    // exact scores differs from the exact softmax only by the error of 1/sum (within rel_p).
    std::vector<float> rebuilt(att_d.size(), 0.0f);
    const double sc = 1.0 / std::sqrt(double(c.HS));
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.NH; ++h)
        for (int64_t t = 0; t < c.T; ++t) {
          const float* st = stats.data() + ((b * c.NH + h) * c.T + t) * 2;
          for (int64_t s2 = 0; s2 <= t; ++s2) {
            double dot = 0;
            for (int64_t i = 0; i < c.HS; ++i)
              dot += qkv_d[(b * c.T + t) * 3 * C + h * c.HS + i] * qkv_d[(b * c.T + s2) * 3 * C + C + h * c.HS + i];
            rebuilt[((b * c.NH + h) * c.T + t) * c.T + s2] = static_cast<float>(std::exp(dot * sc - st[0]) * st[1]);
          }
        }
    expect_within("attention probabilities from the row statistics", rebuilt, att_d, rel_p + kU32);
    expect_within("attention forward", out, out_d, (rel_p + gamma(c.T + 1)) * 2 * scale_drop * 1.01);
    // backward: ours recomputes its probabilities from qkv and its row statistics (relative error
    // rel_p against the reference's exact ones, which the reference backward uses), into nonzero
    // gradients
    auto dqkv = randf(qkv.size(), 3);
    auto dqkv_d = to_double(dqkv);
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), stats.data(), p);
    ref::attention_backward(dqkv_d.data(), dout_d.data(), qkv_d.data(), att_d.data(), p);
    // dv: T-term sums of |p dy| <= 1 (x dropout scale); dscores: HS-term products (<= 2 HS) times p;
    // dq, dk: T-term sums of |dscore| * 2 * scale. A common bound: (gamma(T + HS + 4) + rel_p) * 8 HS T.
    expect_within("attention dqkv", dqkv, dqkv_d,
                  (gamma(c.T + c.HS + 4) + rel_p) * 8 * c.HS * c.T * scale_drop + 4 * kU32);
  }
}

TEST(Backend, attention_decode) {
  // A KV-cache step must compute exactly what full causal attention computes for those rows:
  // the reference decode against the reference full attention (double), then the CPU decode
  // against the reference decode.
  struct Case { int64_t B, past, Tn, NH, HS; };
  for (const Case& c : {Case{1, 0, 1, 1, 1}, Case{2, 0, 5, 3, 7}, Case{1, 9, 1, 2, 9}, Case{2, 30, 3, 4, 16}}) {
    const int64_t T = c.past + c.Tn, C = c.NH * c.HS, max_T = T + 2;
    auto qkv = randf(c.B * T * 3 * C, 1);
    auto qkv_d = to_double(qkv);
    std::vector<double> full(c.B * T * C), att(c.B * c.NH * T * T);
    ref::attention_forward(full.data(), att.data(), qkv_d.data(), AttentionParams{c.B, T, c.NH, c.HS, 0.0f, 0});
    // caches hold k, v of all T positions; the new rows' qkv are the last Tn positions
    std::vector<double> kc(c.B * max_T * C), vc(kc.size()), qn(c.B * c.Tn * 3 * C);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < C; ++k) {
          kc[(b * max_T + t) * C + k] = qkv_d[(b * T + t) * 3 * C + C + k];
          vc[(b * max_T + t) * C + k] = qkv_d[(b * T + t) * 3 * C + 2 * C + k];
          if (t >= c.past)
            for (int64_t part = 0; part < 3; ++part)
              qn[(b * c.Tn + t - c.past) * 3 * C + part * C + k] = qkv_d[(b * T + t) * 3 * C + part * C + k];
        }
    const AttentionDecodeParams p{c.B, c.Tn, c.NH, c.HS, c.past, max_T};
    std::vector<double> dec(c.B * c.Tn * C);
    ref::attention_decode_forward(dec.data(), qn.data(), kc.data(), vc.data(), p);
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t t = 0; t < c.Tn; ++t)
        for (int64_t k = 0; k < C; ++k)
          ASSERT_NEAR(dec[(b * c.Tn + t) * C + k], full[(b * T + c.past + t) * C + k], 1e-12);
    std::vector<float> qn_f(qn.begin(), qn.end()), kc_f(kc.begin(), kc.end()), vc_f(vc.begin(), vc.end());
    std::vector<float> out(dec.size());
    cpu::attention_decode_forward(out.data(), qn_f.data(), kc_f.data(), vc_f.data(), p);
    // as in Backend.attention: score error e_s, probabilities rel_p, outputs sums of T terms <= 1
    const double e_s = gamma(c.HS + 1) * c.HS / std::sqrt(double(c.HS));
    const double rel_p = 2 * e_s + 4 * kU32 + gamma(T + 2);
    expect_within("attention_decode forward", out, dec, (rel_p + gamma(T + 1)) * 1.01);
  }
}

TEST(Backend, gelu) {
  for (int64_t n : {1, 7, 1000}) {
    auto x = randf(n, 1), dout = randf(n, 2), dinp = randf(n, 3);
    for (float& v : x) v *= 6;  // cover the saturated tails
    auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp);
    std::vector<float> out(n);
    std::vector<double> out_d(n);
    cpu::gelu_forward(out.data(), x.data(), GeluParams{n});
    ref::gelu_forward(out_d.data(), x_d.data(), GeluParams{n});
    // tanh_fast is within 2e-7 absolute; 0.5 x (1 + tanh) then errs by 0.5 |x| (2e-7 + gamma(8)).
    std::vector<double> bound(n);
    for (int64_t i = 0; i < n; ++i) bound[i] = 0.5 * std::fabs(x_d[i]) * (2e-7 + gamma(8)) * 2 + gamma(4) * std::fabs(out_d[i]);
    expect_within("gelu forward", out, out_d, bound);
    cpu::gelu_backward(dinp.data(), x.data(), dout.data(), GeluParams{n});
    ref::gelu_backward(dinp_d.data(), x_d.data(), dout_d.data(), GeluParams{n});
    // derivative = 0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3c x^2): th errs by 2e-7 absolute, and
    // its derivative term by 2 |th| 2e-7 times up to 1.1 |x| (1 + 0.134 x^2).
    for (int64_t i = 0; i < n; ++i) {
      const double ax = std::fabs(x_d[i]);
      bound[i] = (2e-7 + gamma(16)) * (1 + ax * (1 + 0.14 * ax * ax) * 2) + gamma(2);
    }
    expect_within("gelu backward", dinp, dinp_d, bound);
  }
}

TEST(Backend, residual) {
  for (int64_t n : {1, 7, 1000}) {
    auto a = randf(n, 1), b = randf(n, 2), dout = randf(n, 3), da = randf(n, 4), db = randf(n, 5);
    auto a_d = to_double(a), b_d = to_double(b), dout_d = to_double(dout), da_d = to_double(da), db_d = to_double(db);
    std::vector<float> out(n);
    std::vector<double> out_d(n);
    cpu::residual_forward(out.data(), a.data(), b.data(), ResidualParams{n});
    ref::residual_forward(out_d.data(), a_d.data(), b_d.data(), ResidualParams{n});
    expect_within("residual forward", out, out_d, gamma(1) * 2);
    cpu::residual_backward(da.data(), db.data(), dout.data(), ResidualParams{n});
    ref::residual_backward(da_d.data(), db_d.data(), dout_d.data(), ResidualParams{n});
    expect_within("residual da", da, da_d, gamma(1) * 2);
    expect_within("residual db", db, db_d, gamma(1) * 2);
  }
}

TEST(Backend, cross_entropy) {
  struct Case { int64_t N, V; };
  for (const Case& c : {Case{1, 1}, Case{1, 2}, Case{7, 13}, Case{5, 1003}}) {
    const CrossEntropyParams p{c.N, c.V, -100};
    auto logits = randf(c.N * c.V, 1);
    for (float& v : logits) v *= 8;
    std::vector<int32_t> targets(c.N);
    for (int64_t r = 0; r < c.N; ++r) targets[r] = (r % 3 == 2) ? -100 : static_cast<int32_t>((r * 5 + 1) % c.V);
    auto logits_d = to_double(logits);
    std::vector<float> losses(c.N), lse(c.N);
    std::vector<double> losses_d(c.N), lse_d(c.N);
    cpu::cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), p);
    ref::cross_entropy_forward(losses_d.data(), lse_d.data(), logits_d.data(), targets.data(), p);
    // lse = max + log(sum of V exps each within 2 ulp): error <= |lse| u + (gamma(V) + 4u) + u.
    std::vector<double> bound(c.N);
    for (int64_t r = 0; r < c.N; ++r) bound[r] = 2 * std::fabs(lse_d[r]) * kU32 + gamma(c.V) + 6 * kU32 + 8 * kU32;
    std::vector<float> lse_want_f(lse_d.begin(), lse_d.end());
    for (int64_t r = 0; r < c.N; ++r) {
      if (targets[r] == -100) {
        EXPECT_EQ(losses[r], 0.0f);
        EXPECT_EQ(losses_d[r], 0.0);
      }
    }
    expect_within("cross_entropy lse", lse, lse_d, bound);
    expect_within("cross_entropy losses", losses, losses_d, [&] {
      std::vector<double> b(c.N);
      for (int64_t r = 0; r < c.N; ++r) b[r] = bound[r] + 8 * kU32 * 2;
      return b;
    }());
    // backward: (exp(x - lse) - onehot) * d with x - lse carrying the lse error above
    auto dloss = randf(c.N, 2);
    auto dloss_d = to_double(dloss);
    std::vector<float> dlogits(logits.size());
    std::vector<double> dlogits_d(logits.size());
    cpu::cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), dloss.data(), p);
    ref::cross_entropy_backward(dlogits_d.data(), logits_d.data(), lse_d.data(), targets.data(), dloss_d.data(), p);
    std::vector<double> gb(logits.size());
    for (int64_t r = 0; r < c.N; ++r)
      for (int64_t v = 0; v < c.V; ++v) {
        const double prob = std::exp(logits_d[r * c.V + v] - lse_d[r]);
        gb[r * c.V + v] = (prob * (bound[r] + 16 * std::fabs(logits_d[r * c.V + v]) * kU32 + 4 * kU32) + 2 * kU32) *
                          std::fabs(dloss_d[r]) * 1.01;
      }
    expect_within("cross_entropy dlogits", dlogits, dlogits_d, gb);
    // in place: dlogits aliasing logits gives the same result
    auto inplace = logits;
    cpu::cross_entropy_backward(inplace.data(), inplace.data(), lse.data(), targets.data(), dloss.data(), p);
    EXPECT_EQ(inplace, dlogits);
  }
}

TEST(Backend, pool) {
  for (PoolMode mode : {PoolMode::Last, PoolMode::First, PoolMode::Mean}) {
    struct Case { int64_t B, T, C; };
    for (const Case& c : {Case{1, 1, 1}, Case{3, 7, 5}, Case{2, 120, 33}}) {
      const PoolParams p{c.B, c.T, c.C, mode};
      auto x = randf(c.B * c.T * c.C, 1), dout = randf(c.B * c.C, 2), dinp = randf(x.size(), 3);
      auto x_d = to_double(x), dout_d = to_double(dout), dinp_d = to_double(dinp);
      std::vector<float> out(c.B * c.C);
      std::vector<double> out_d(out.size());
      cpu::pool_forward(out.data(), x.data(), p);
      ref::pool_forward(out_d.data(), x_d.data(), p);
      expect_within("pool forward", out, out_d, gamma(c.T + 1));
      cpu::pool_backward(dinp.data(), dout.data(), p);
      ref::pool_backward(dinp_d.data(), dout_d.data(), p);
      expect_within("pool backward", dinp, dinp_d, gamma(3) * 2);
    }
  }
}

TEST(Backend, adamw) {
  // Same float32 formula in both: the CPU kernel must agree with the reference run in float to
  // within the rounding of the vectorized sqrt/divide (none: both are IEEE-exact), i.e. bitwise,
  // and with the double reference within the error of ~12 rounded operations per step.
  const int64_t n = 1001;
  auto param = randf(n, 1), grad = randf(n, 2);
  std::vector<float> m(n, 0.0f), v(n, 0.0f);
  auto param_f = param, m_f = m, v_f = v;
  auto param_d = to_double(param), m_d = to_double(m), v_d = to_double(v);
  for (int64_t step = 1; step <= 3; ++step) {
    const AdamWParams p{n, 1e-3, 0.9, 0.999, 1e-8, 0.1, step};
    auto g = randf(n, 10 + step);
    auto g_d = to_double(g);
    cpu::adamw_step(param.data(), g.data(), m.data(), v.data(), p);
    ref::adamw_step(param_f.data(), g.data(), m_f.data(), v_f.data(), p);
    ref::adamw_step(param_d.data(), g_d.data(), m_d.data(), v_d.data(), p);
  }
  EXPECT_EQ(param, param_f);
  EXPECT_EQ(m, m_f);
  EXPECT_EQ(v, v_f);
  // Each step moves a parameter by at most ~lr * |m/denom| <= 3.2 lr; the update's relative error
  // is about 12 u, and the decayed parameter (<= 1) adds 2 u per step.
  expect_within("adamw vs double", param, param_d, 3 * (3.2e-3 * 12 * kU32 + 2 * kU32) * 2);
}

TEST(Backend, sum_squares_and_scale) {
  for (int64_t n : {1, 7, 200001}) {
    auto x = randf(n, 3);
    double want = 0;
    for (float v : x) want += double(v) * v;
    EXPECT_NEAR(cpu::sum_squares(x.data(), n), want, want * 1e-12 + 1e-300);
    auto y = x;
    cpu::scale(y.data(), 0.5f, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], x[i] * 0.5f);
  }
}

}  // namespace
}  // namespace gptrain::test
