// LoRA parity with the book's appendix E code (LoRALayer, LinearWithLoRA, replace_linear_with_lora
// on the ch04 GPTModel; fixtures written by tests/tools/gen_lora_parity.py): a 2-class classifier
// with every Linear adapted and a language model with every Linear and its untied head adapted,
// base frozen, B drawn non-zero so every gradient is non-trivial. Checked: our layout has exactly
// the fixture's tensors (the book's W_query/W_key/W_value adapters stacked on our fused q|k|v), the
// loss and logits, every adapter gradient (and no gradient for the frozen base), the adapters
// after 3 AdamW steps, and the merged model's logits, all against PyTorch in float64.
//
// Error model: parity_test.cpp's, with each adapted Linear two chained reductions (x A^T of the
// input width, then h B^T of the rank) beside its base product: the longest path has
// D = 10 L + 4 stages (qkv, proj, fc, mlp-proj two each, q.k and p.v, per block; embedding, final
// norm, head two), so ||ours - ref|| <= gamma_K D ||ref|| (K = max(4C, B T)), 2 D for gradients,
// and AdamW's bound of parity_test.cpp on top of the gradient error.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "io/safetensors.h"
#include "model/lora.h"
#include "model/transformer.h"
#include "train/adamw.h"
#include "tests/common/parity.h"

namespace gptrain {
namespace {

using testing_util::as_doubles;
using testing_util::kU;
using testing_util::rel_error;

struct Fixture {
  io::SafeTensorsFile file;
  ModelConfig config;
  AdapterPlan plan;
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
  bool classifier = false;
};

Fixture open_fixture(const std::string& name) {
  const auto path = std::filesystem::path(GPTRAIN_FIXTURES_DIR) / "lora_parity" / (name + ".safetensors");
  Fixture fx{io::SafeTensorsFile::open(path), {}, {}, 0, 0, {}, {}, false};
  const auto& meta = fx.file.metadata();
  const auto c = nlohmann::json::parse(meta.at("config"));
  const auto lora = nlohmann::json::parse(meta.at("lora"));
  ModelConfig& cfg = fx.config;
  cfg.vocab_size = c["vocab_size"];
  cfg.context_length = c["context_length"];
  cfg.emb_dim = c["emb_dim"];
  cfg.n_heads = c["n_heads"];
  cfg.n_layers = c["n_layers"];
  cfg.drop_rate = c["drop_rate"];
  cfg.qkv_bias = c["qkv_bias"];
  cfg.tie_weights = false;
  fx.classifier = meta.at("task") == "classifier";
  if (fx.classifier) {
    cfg.head = HeadType::Classifier;
    cfg.n_classes = std::stoll(meta.at("n_classes"));
    EXPECT_EQ(meta.at("pooling"), "last");
  }
  LoraOptions o;
  o.rank = lora["rank"];
  o.alpha = lora["alpha"].get<double>();
  o.scaling = lora["scaling"];
  // The book adapts every Linear: for a classifier our default; for an LM the head is added.
  o.targets = fx.classifier ? "default" : "all-linear,head";
  fx.plan = plan_adapters(cfg, o);
  fx.B = std::stoll(meta.at("B"));
  fx.T = std::stoll(meta.at("T"));
  for (float v : fx.file.load("in.tokens").to_vector()) fx.tokens.push_back(static_cast<int32_t>(v));
  for (float v : fx.file.load(fx.classifier ? "in.labels" : "in.targets").to_vector())
    fx.targets.push_back(static_cast<int32_t>(v));
  return fx;
}

void load_all(const Fixture& fx, Transformer& model) {
  for (Parameter& p : model.params().all()) fx.file.load_into("param." + p.name, p.value);
}

class LoraParity : public ::testing::TestWithParam<const char*> {};

TEST_P(LoraParity, loss_adapter_gradients_adamw_and_merge_match_the_books_code) {
  const Fixture fx = open_fixture(GetParam());
  const io::SafeTensorsFile& f = fx.file;
  Transformer model(fx.config, 1, DType::F32, fx.plan);

  // The layout is the fixture's: the same tensors, shapes and trainable set.
  std::set<std::string> fixture_params, ours;
  for (const io::TensorInfo& t : f.tensors())
    if (t.name.starts_with("param.")) fixture_params.insert(t.name.substr(6));
  for (const Parameter& p : model.params().all()) {
    ours.insert(p.name);
    ASSERT_TRUE(f.find("param." + p.name)) << p.name << " is not in the fixture";
    EXPECT_EQ(f.at("param." + p.name).shape, p.value.shape()) << p.name;
  }
  EXPECT_EQ(ours, fixture_params);
  load_all(fx, model);
  for (Parameter& p : model.params().all()) p.trainable = p.is_adapter();
  model.allocate_grads();
  const std::vector<std::string> trainable = nlohmann::json::parse(f.metadata().at("trainable"));
  std::vector<std::string> our_trainable;
  for (const Parameter& p : model.params().all())
    if (p.trainable) our_trainable.push_back(p.name);
  EXPECT_EQ(std::set<std::string>(our_trainable.begin(), our_trainable.end()),
            std::set<std::string>(trainable.begin(), trainable.end()));

  const ModelConfig& cfg = fx.config;
  const int64_t K = std::max<int64_t>(4 * cfg.emb_dim, fx.B * fx.T);
  const double gamma = K * kU / (1 - K * kU);
  const double D = 10.0 * cfg.n_layers + 4;
  const double eps_fwd = gamma * D, eps_grad = gamma * 2 * D;

  const double loss = model.forward_loss(fx.tokens, fx.targets, fx.B, fx.T, ForwardOptions{true, 0});
  const auto logits = model.logits().to_vector();
  const double e_logits = rel_error(logits, f.load("ref.logits").to_vector());
  EXPECT_LE(e_logits, eps_fwd) << "logits";
  const double ref_loss = f.load("ref.loss")[0];
  EXPECT_LE(std::fabs(loss - ref_loss), eps_fwd * std::fabs(ref_loss)) << "loss";
  std::printf("[%s] logits rel error %.3g (bound %.3g), vs torch float32 %.3g; loss %.10f vs %.10f\n", GetParam(),
              e_logits, eps_fwd, rel_error(logits, f.load("torch32.logits").to_vector()), loss, ref_loss);

  model.zero_grads();
  model.backward();
  double worst = 0;
  for (const Parameter& p : model.params().all()) {
    if (!p.trainable) {
      EXPECT_FALSE(p.grad.defined()) << "the frozen " << p.name << " has a gradient buffer";
      continue;
    }
    const double e = rel_error(p.grad.to_vector(), f.load("ref.grad." + p.name).to_vector());
    EXPECT_LE(e, eps_grad) << "gradient of " << p.name;
    worst = std::max(worst, e);
  }
  std::printf("[%s] adapter gradients: largest rel error %.3g (bound %.3g)\n", GetParam(), worst, eps_grad);

  const auto opt_json = nlohmann::json::parse(f.metadata().at("optimizer"));
  const AdamWOptions o = testing_util::adamw_options(opt_json);
  AdamW opt(model.params(), o);
  testing_util::AdamWParityBound bound(o.lr, eps_grad);
  for (int s = 0; s < 3; ++s) {
    if (s > 0) {
      model.zero_grads();
      model.forward_loss(fx.tokens, fx.targets, fx.B, fx.T, ForwardOptions{true, 0});
      model.backward();
    }
    for (const Parameter& p : model.params().all())
      if (p.trainable) bound.add_step(p.name, as_doubles(p.grad.to_vector()));
    opt.step();
  }
  for (const Parameter& p : model.params().all()) {
    if (!p.trainable) continue;
    const int bad = bound.outside(p.name, as_doubles(p.value.to_vector()),
                                  as_doubles(f.load("ref.after3." + p.name).to_vector()));
    EXPECT_EQ(bad, 0) << p.name << ": adapter after 3 AdamW steps outside the bound";
  }

  // Merged: W + scaling B A per segment gives the adapted model's logits (one more rounding per
  // weight, of relative size gamma_R, carried through D stages).
  Transformer merged(fx.config, 1, DType::F32, fx.plan);
  load_all(fx, merged);
  merged.merge_adapters();
  for (const Parameter& p : merged.params().all())
    if (p.kind == ParamKind::LoraB) {
      const auto v = p.value.to_vector();
      EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.0f; })) << p.name << " not zeroed";
    }
  merged.forward(fx.tokens, fx.B, fx.T, ForwardOptions{});
  const auto merged_logits = merged.logits().to_vector();
  const double e_merged = rel_error(merged_logits, f.load("ref.merged_logits").to_vector());
  EXPECT_LE(e_merged, eps_fwd) << "merged logits against PyTorch";
  EXPECT_LE(rel_error(merged_logits, logits), 2 * eps_fwd) << "merged logits against the adapter's";
  std::printf("[%s] merged logits rel error %.3g vs PyTorch's merged, %.3g vs our adapter logits (bound %.3g)\n",
              GetParam(), e_merged, rel_error(merged_logits, logits), eps_fwd);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraParity, ::testing::Values("lora_cls_book", "lora_lm_untied"));

}  // namespace
}  // namespace gptrain
