// End-to-end parity with the book's PyTorch GPTModel (fixtures written by
// tests/tools/gen_gpt2_parity.py): logits, loss, every parameter gradient, and the parameters
// after three AdamW steps. The reference is PyTorch in float64 from the same float32 weights, so
// the differences measured here are our float32 rounding error, bounded as follows.
//
// Error model. u = 2^-24. A float32 dot product of length K errs by at most gamma_K = K u / (1 - K u)
// relative to the sum of absolute products; along the network an error made in one stage is
// carried by the later ones (LayerNorm renormalises, softmax and GELU are 1-Lipschitz up to the
// weight scales, which are below one here), so the worst case accumulates linearly over the D
// reduction stages of the longest path: qkv, q.k, p.v, proj, fc, mlp-proj per block, plus the
// embedding, the final norm and the head: D = 6 L + 3. Hence
//   logits, loss:   ||ours - ref|| <= gamma_K * D * ||ref||              (K = max(4C, T))
//   gradients:      ||ours - ref|| <= gamma_K * 2D * ||ref||  per tensor (backward doubles the path;
//                                                                          K also covers the B*T sum)
// and for AdamW, whose first steps move each weight by about lr * g / |g|, a gradient error dg
// changes an update by at most 2 |dg| / |g| (capped at the largest possible update, ~2.5 lr):
//   |p_ours - p_ref| <= sum over steps of lr * min(2.5, 2 eps_g max|g| / (|g_i| + 1e-8)) + 8 u |p|.
// These are worst-case bounds, far above typical float32 error, yet far below what any real bug
// produces (a wrong term, sign, scale or index moves results by percent, not 1e-4).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/safetensors.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "tests/common/parity.h"
#ifdef GPTRAIN_TEST_CUDA
#include "kernels/cuda/cuda.h"
#endif

namespace gptrain {
namespace {

using testing_util::as_doubles;
using testing_util::kU;

struct Norms {
  double diff = 0, ref = 0, max_rel_elem = 0;
};

Norms compare(const std::vector<float>& ours, const std::vector<float>& ref) {
  Norms n;
  double refmax = 0;
  for (float r : ref) refmax = std::max(refmax, std::fabs(double(r)));
  for (size_t i = 0; i < ours.size(); ++i) {
    const double d = double(ours[i]) - ref[i];
    n.diff += d * d;
    n.ref += double(ref[i]) * ref[i];
    n.max_rel_elem = std::max(n.max_rel_elem, std::fabs(d) / std::max(refmax, 1e-30));
  }
  n.diff = std::sqrt(n.diff);
  n.ref = std::sqrt(n.ref);
  return n;
}

// A model tensor's values on the host (built as cuda_model_parity_test, the model runs on the GPU).
std::vector<float> host_vector(const Tensor& t) {
  return t.device() == Device::CPU ? t.to_vector() : t.to(Device::CPU).to_vector();
}

class Parity : public ::testing::TestWithParam<const char*> {};

TEST_P(Parity, model_loss_gradients_and_adamw_match_pytorch) {
  const std::filesystem::path path = std::filesystem::path(GPTRAIN_FIXTURES_DIR) / "gpt2_parity" /
                                     (std::string(GetParam()) + ".safetensors");
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(path);
  const auto cfg_json = nlohmann::json::parse(f.metadata().at("config"));
  const auto opt_json = nlohmann::json::parse(f.metadata().at("optimizer"));
  ModelConfig cfg;
  cfg.vocab_size = cfg_json["vocab_size"];
  cfg.context_length = cfg_json["context_length"];
  cfg.emb_dim = cfg_json["emb_dim"];
  cfg.n_heads = cfg_json["n_heads"];
  cfg.n_layers = cfg_json["n_layers"];
  cfg.drop_rate = cfg_json["drop_rate"];
  cfg.qkv_bias = cfg_json["qkv_bias"];
  cfg.tie_weights = cfg_json.value("tie_weights", false);
  Transformer model(cfg);
  for (Parameter& p : model.params().all()) f.load_into("param." + p.name, p.value);
#ifdef GPTRAIN_TEST_CUDA
  if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
  model.to_device(Device::CUDA);  // the same bounds: the kernels' sums are float32 sums in another order
#endif
  const int64_t B = std::stoll(f.metadata().at("B")), T = std::stoll(f.metadata().at("T"));
  std::vector<int32_t> tokens, targets;
  for (float v : f.load("in.tokens").to_vector()) tokens.push_back(static_cast<int32_t>(v));
  for (float v : f.load("in.targets").to_vector()) targets.push_back(static_cast<int32_t>(v));

  const int64_t K = std::max<int64_t>(4 * cfg.emb_dim, std::max(T, B * T));
  const double gamma = K * kU / (1 - K * kU);
  const double D = 6.0 * cfg.n_layers + 3;
  const double eps_fwd = gamma * D, eps_grad = gamma * 2 * D;

  const double loss = model.forward_loss(tokens, targets, B, T, ForwardOptions{true, 0});
  const auto logits = host_vector(model.logits());
  const Norms nl = compare(logits, f.load("ref.logits").to_vector());
  EXPECT_LE(nl.diff, eps_fwd * nl.ref) << "logits";
  const double ref_loss = f.load("ref.loss")[0];
  EXPECT_LE(std::fabs(loss - ref_loss), eps_fwd * std::fabs(ref_loss)) << "loss";
  const Norms nl32 = compare(logits, f.load("torch32.logits").to_vector());
  std::printf("[%s] logits: rel norm error vs float64 %.3g (bound %.3g), vs torch float32 %.3g; loss %.10f vs %.10f\n",
              GetParam(), nl.diff / nl.ref, eps_fwd, nl32.diff / nl32.ref, loss, ref_loss);

  model.zero_grads();
  model.backward();
  double worst = 0, worst32 = 0;
  std::string worst_name;
  std::map<std::string, std::vector<float>> grads1;
  for (const Parameter& p : model.params().all()) {
    const auto g = host_vector(p.grad);
    grads1[p.name] = g;
    const Norms n = compare(g, f.load("ref.grad." + p.name).to_vector());
    const Norms n32 = compare(g, f.load("torch32.grad." + p.name).to_vector());
    EXPECT_LE(n.diff, eps_grad * n.ref) << "gradient of " << p.name;
    if (n.ref > 0 && n.diff / n.ref > worst) {
      worst = n.diff / n.ref;
      worst_name = p.name;
    }
    if (n32.ref > 0) worst32 = std::max(worst32, n32.diff / n32.ref);
  }
  std::printf("[%s] gradients: largest rel norm error vs float64 %.3g (%s; bound %.3g), vs torch float32 %.3g\n",
              GetParam(), worst, worst_name.c_str(), eps_grad, worst32);

  // Three AdamW steps on the same batch, as the fixture did.
  const AdamWOptions o = testing_util::adamw_options(opt_json);
  AdamW opt(model.params(), o);
  testing_util::AdamWParityBound bound(o.lr, eps_grad);
  const auto add_step_bound = [&](const Parameter& p) { bound.add_step(p.name, as_doubles(host_vector(p.grad))); };
  for (const Parameter& p : model.params().all()) add_step_bound(p);
  opt.step();
  for (int s = 0; s < 2; ++s) {
    model.zero_grads();
    model.forward_loss(tokens, targets, B, T, ForwardOptions{true, 0});
    model.backward();
    for (const Parameter& p : model.params().all()) add_step_bound(p);
    opt.step();
  }
  double worst_update = 0;
  for (const Parameter& p : model.params().all()) {
    const int bad = bound.outside(p.name, as_doubles(host_vector(p.value)),
                                  as_doubles(f.load("ref.after3." + p.name).to_vector()), &worst_update);
    EXPECT_EQ(bad, 0) << p.name << ": parameters after 3 AdamW steps outside the bound";
  }
  std::printf("[%s] after 3 AdamW steps: largest |ours - ref| = %.3g lr\n", GetParam(), worst_update);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity, ::testing::Values("gpt2_tiny", "gpt2_tiny_qkvbias_tied"));

}  // namespace
}  // namespace gptrain
