// The LoRA op (kernels/params.h, LoraParams): every float32 CPU backend against the reference in
// double on awkward shapes (one segment, the three of a fused q|k|v of unequal widths, an empty
// segment, q and v with k left out between them, rank 1, one row), in training and in
// batch-invariant decode mode, with bounds derived from float32 rounding; a decode row gives the
// same bits alone and in a batch; and the backward in double against central differences
// (harness.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/backend.h"
#include "kernels/ref/ref.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;
using V = std::vector<double>;

std::vector<float> randf(int64_t n, uint64_t seed) { return random_floats(n, seed); }

struct Case {
  int64_t N, IC, R;
  std::vector<int64_t> widths;  // of the segments
  float scaling;
  std::vector<int64_t> gaps = {};  // unadapted output columns before each segment (none when empty)
  int64_t tail = 0;                // and after the last
};

LoraParams params_of(const Case& c) {
  LoraParams p{c.N, c.IC, 0, c.R};
  p.S = static_cast<int>(c.widths.size());
  int64_t col = 0;
  for (int s = 0; s < p.S; ++s) {
    col += c.gaps.empty() ? 0 : c.gaps[static_cast<size_t>(s)];
    p.col[s] = col;
    p.seg[s + 1] = p.seg[s] + c.widths[static_cast<size_t>(s)];
    col += c.widths[static_cast<size_t>(s)];
  }
  p.OC = col + c.tail;
  p.scaling = c.scaling;
  return p;
}

V abs_v(const V& v) { return abs_of(v); }

TEST(Backend, lora) {
  const std::vector<Case> cases = {{1, 1, 1, {1}, 1.0f},          {5, 7, 3, {9}, 2.0f},
                                   {9, 33, 4, {16, 8, 8}, 0.5f},  {3, 17, 2, {5, 0, 7}, 1.0f},
                                   {1, 65, 16, {40, 12, 12}, 1.0f}, {13, 20, 5, {3, 2, 1, 4}, -1.5f},
                                   // q and v of a fused q|k|v, k left out (PEFT's default targets)
                                   {6, 19, 3, {8, 4}, 2.0f, {0, 4}},
                                   {4, 9, 2, {3, 5}, 1.0f, {2, 1}, 3}};
  for (const Case& c : cases) {
    const LoraParams p = params_of(c);
    const int64_t SR = p.S * p.R, BR = p.seg[p.S];
    SCOPED_TRACE("N " + std::to_string(p.N) + " IC " + std::to_string(p.IC) + " OC " + std::to_string(p.OC) + " R " +
                 std::to_string(p.R) + " S " + std::to_string(p.S));
    auto x = randf(p.N * p.IC, 1), A = randf(SR * p.IC, 2), B = randf(BR * p.R, 3), out0 = randf(p.N * p.OC, 4);
    auto dout = randf(p.N * p.OC, 5), dx0 = randf(p.N * p.IC, 6), dA0 = randf(SR * p.IC, 7), dB0 = randf(BR * p.R, 8);
    auto x_d = to_double(x), A_d = to_double(A), B_d = to_double(B), dout_d = to_double(dout);
    V out_d = to_double(out0), dx_d = to_double(dx0), dA_d = to_double(dA0), dB_d = to_double(dB0);
    ref::lora_forward(out_d.data(), x_d.data(), A_d.data(), B_d.data(), p);
    ref::lora_backward(dx_d.data(), dA_d.data(), dB_d.data(), dout_d.data(), x_d.data(), A_d.data(), B_d.data(), p);
    // Bounds: every result is a sum of products along chains of at most D = N + IC + OC + S R + 4
    // roundings (an IC-term dot, an R- or OC-term dot, an N-term sum, the scaling and the final
    // add), so it is within gamma(D) of the same computation on absolute values (Higham 3.1),
    // which the reference gives when run on |inputs| with |scaling|.
    LoraParams pa = p;
    pa.scaling = std::fabs(p.scaling);
    V mag_out = abs_v(to_double(out0)), mag_dx = abs_v(to_double(dx0)), mag_dA = abs_v(to_double(dA0)),
      mag_dB = abs_v(to_double(dB0));
    const V ax = abs_v(x_d), aA = abs_v(A_d), aB = abs_v(B_d), adout = abs_v(dout_d);
    ref::lora_forward(mag_out.data(), ax.data(), aA.data(), aB.data(), pa);
    ref::lora_backward(mag_dx.data(), mag_dA.data(), mag_dB.data(), adout.data(), ax.data(), aA.data(), aB.data(), pa);
    const double g = gamma(p.N + p.IC + p.OC + SR + 4);
    for (V* m : {&mag_out, &mag_dx, &mag_dA, &mag_dB})
      for (double& v : *m) v = g * v + 1e-30;
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(std::string("backend ") + be->name());
      for (bool invariant : {false, true}) {
        LoraParams q = p;
        q.batch_invariant = invariant;
        auto out = out0;
        be->lora_forward(out.data(), x.data(), A.data(), B.data(), q);
        expect_within(invariant ? "lora forward (batch invariant)" : "lora forward", out, out_d, mag_out);
      }
      auto dx = dx0, dA = dA0, dB = dB0;
      be->lora_backward(dx.data(), dA.data(), dB.data(), dout.data(), x.data(), A.data(), B.data(), p);
      expect_within("lora dinp", dx, dx_d, mag_dx);
      expect_within("lora dA", dA, dA_d, mag_dA);
      expect_within("lora dB", dB, dB_d, mag_dB);
      // Null gradients are skipped: the others come out the same.
      auto dA2 = dA0;
      be->lora_backward(nullptr, dA2.data(), nullptr, dout.data(), x.data(), A.data(), B.data(), p);
      expect_same_bits("lora dA alone", dA2, dA);
    }
  }
}

TEST(Backend, lora_decode_rows_are_batch_invariant) {
  const Case c{7, 37, 4, {12, 6}, 1.0f, {0, 6}};
  for (const Backend* be : f32_cpu_backends()) {
    SCOPED_TRACE(std::string("backend ") + be->name());
    LoraParams p = params_of(c);
    p.batch_invariant = true;
    auto x = randf(p.N * p.IC, 1), A = randf(p.S * p.R * p.IC, 2), B = randf(p.seg[p.S] * p.R, 3);
    std::vector<float> batch(static_cast<size_t>(p.N * p.OC), 0.0f);
    be->lora_forward(batch.data(), x.data(), A.data(), B.data(), p);
    for (int64_t n = 0; n < p.N; ++n) {
      LoraParams one = p;
      one.N = 1;
      std::vector<float> row(static_cast<size_t>(p.OC), 0.0f), xr(x.begin() + n * p.IC, x.begin() + (n + 1) * p.IC);
      be->lora_forward(row.data(), xr.data(), A.data(), B.data(), one);
      expect_same_bits("row " + std::to_string(n) + " alone vs in the batch", row,
                       std::vector<float>(batch.begin() + n * p.OC, batch.begin() + (n + 1) * p.OC));
    }
  }
}

// Merging folds the adapter into the weight: each element is W + a sum of R products, so it is
// within gamma(R + 2) of the same on absolute values.
TEST(Backend, lora_merge) {
  for (const Case& c : {Case{1, 7, 3, {9}, 2.0f}, Case{1, 33, 4, {16, 8, 8}, 0.5f}, Case{1, 19, 3, {8, 4}, -1.0f, {0, 4}},
                        Case{1, 9, 2, {3, 5}, 1.0f, {2, 1}, 3}}) {
    const LoraParams p = params_of(c);
    const int64_t SR = p.S * p.R;
    auto W0 = randf(p.OC * p.IC, 1), A = randf(SR * p.IC, 2), B = randf(p.seg[p.S] * p.R, 3);
    V W_d = to_double(W0), mag = abs_v(to_double(W0));
    ref::lora_merge(W_d.data(), to_double(A).data(), to_double(B).data(), p);
    LoraParams pa = p;
    pa.scaling = std::fabs(p.scaling);
    ref::lora_merge(mag.data(), abs_v(to_double(A)).data(), abs_v(to_double(B)).data(), pa);
    for (double& v : mag) v = gamma(p.R + 2) * v + 1e-30;
    for (const Backend* be : f32_cpu_backends()) {
      SCOPED_TRACE(std::string("backend ") + be->name());
      auto W = W0;
      be->lora_merge(W.data(), A.data(), B.data(), p);
      expect_within("lora merge", W, W_d, mag);
    }
    // The merged weight computes what the base plus the adapter does (reference, in double).
    const int64_t N = 5;
    const V x = to_double(randf(N * p.IC, 4));
    V merged(static_cast<size_t>(N * p.OC), 0.0), adapted(static_cast<size_t>(N * p.OC), 0.0);
    const V W0_d = to_double(W0), A_d = to_double(A), B_d = to_double(B);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < p.OC; ++o)
        for (int64_t i = 0; i < p.IC; ++i) {
          merged[static_cast<size_t>(n * p.OC + o)] += x[static_cast<size_t>(n * p.IC + i)] * W_d[static_cast<size_t>(o * p.IC + i)];
          adapted[static_cast<size_t>(n * p.OC + o)] += x[static_cast<size_t>(n * p.IC + i)] * W0_d[static_cast<size_t>(o * p.IC + i)];
        }
    LoraParams q = p;
    q.N = N;
    ref::lora_forward(adapted.data(), x.data(), A_d.data(), B_d.data(), q);
    for (size_t k = 0; k < merged.size(); ++k) EXPECT_NEAR(merged[k], adapted[k], 1e-12) << "element " << k;
  }
}

TEST(Gradcheck, lora) {
  const Case c{3, 5, 2, {4, 3}, 1.5f, {0, 2}, 1};
  const LoraParams p = params_of(c);
  const int64_t SR = p.S * p.R;
  gradcheck("lora", {to_double(randf(p.N * p.IC, 1)), to_double(randf(SR * p.IC, 2)), to_double(randf(p.seg[p.S] * p.R, 3))},
            {0, 1, 2},
            [&](const Inputs& in) {
              V out(static_cast<size_t>(p.N * p.OC), 0.0);
              ref::lora_forward(out.data(), in[0].data(), in[1].data(), in[2].data(), p);
              return out;
            },
            [&](const Inputs& in, const V& cot) {
              Inputs g = {V(in[0].size()), V(in[1].size()), V(in[2].size())};
              ref::lora_backward(g[0].data(), g[1].data(), g[2].data(), cot.data(), in[0].data(), in[1].data(),
                                 in[2].data(), p);
              return g;
            });
}

}  // namespace
}  // namespace gptrain::test
