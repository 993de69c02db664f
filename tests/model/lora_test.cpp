// LoRA on the model side (model/lora.h, model/adapter_dir.h): the book's count of trainable
// parameters, the plan's targets and its errors, PEFT-written adapters (tests/fixtures/peft, from
// tests/tools/gen_peft_fixtures.py: GPT-2's fused c_attn, Qwen3 with rank and alpha patterns,
// Llama with PEFT's default q_proj + v_proj) giving PEFT's logits applied and merged, our adapter
// dirs read back to the same function, and adapters made for another base refused.
//
// Error model: the fixture's k (hf_error_model.error_k_config plus
// gen_lora_parity.lora_error_terms, in reference.safetensors' metadata): ||ours - float64|| <=
// k u ||float64||.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "io/safetensors.h"
#include "model/adapter_dir.h"
#include "model/lora.h"
#include "model/model_dir.h"
#include "model/transformer.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
constexpr double kU = 0x1.0p-24;

fs::path peft_fixture(const std::string& name) { return fs::path(GPTRAIN_FIXTURES_DIR) / "peft" / name; }

double norm_diff(const std::vector<float>& a, const std::vector<float>& b, double* norm_b = nullptr) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    n += double(b[i]) * b[i];
  }
  if (norm_b) *norm_b = std::sqrt(n);
  return std::sqrt(d);
}

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

int64_t adapter_numel(const ParameterSet& P) {
  int64_t n = 0;
  for (const Parameter& p : P.all())
    if (p.is_adapter()) n += p.value.numel();
  return n;
}

TEST(Lora, the_books_trainable_count) {
  // Appendix E: gpt2-small, a 2-class head, rank 16, every Linear adapted: 2,666,528.
  ModelConfig c;
  ASSERT_TRUE(preset_config("gpt2-small", c));
  c.head = HeadType::Classifier;
  c.n_classes = 2;
  LoraOptions o;
  o.rank = 16;
  o.alpha = 16;
  const AdapterPlan plan = plan_adapters(c, o);
  EXPECT_EQ(plan.linears.size(), 12u * 4 + 1);
  const ParameterSet P = parameter_layout(c, plan);
  EXPECT_EQ(adapter_numel(P), 2'666'528);
  int64_t block0 = 0, head = 0;
  for (const Parameter& p : P.all()) {
    if (p.is_adapter() && p.layer == 0) block0 += p.value.numel();
    if (p.is_adapter() && p.name.starts_with("head.")) head += p.value.numel();
  }
  EXPECT_EQ(block0, 221'184);
  EXPECT_EQ(head, 12'320);
  EXPECT_EQ(P.find("blocks.0.attn.qkv.lora_A")->value.shape(), (Shape{48, 768}));  // q, k, v: 3 x rank 16
  EXPECT_EQ(P.find("blocks.0.attn.qkv.lora_B")->value.shape(), (Shape{2304, 16}));
  EXPECT_FLOAT_EQ(plan.find("head")->scaling, 1.0f);
}

TEST(Lora, targets_select_parts_and_a_language_model_head_only_when_named) {
  ModelConfig llama;
  ASSERT_TRUE(preset_config("llama-tiny", llama));
  LoraOptions o;
  o.rank = 4;
  o.alpha = 8;
  o.targets = "q_proj,v_proj";
  const AdapterPlan qv = plan_adapters(llama, o);
  const LinearAdapter* a = qv.find("blocks.0.attn.qkv");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->parts, (std::vector<std::string>{"query", "value"}));
  const int64_t Q = llama.q_width(), KV = llama.kv_width();
  ASSERT_EQ(a->segments.size(), 2u);
  EXPECT_EQ(a->segments[1].col, Q + KV);  // the key columns are left out
  EXPECT_EQ(a->segments[1].width, KV);
  EXPECT_FLOAT_EQ(a->scaling, 2.0f);
  EXPECT_EQ(qv.linears.size(), static_cast<size_t>(llama.n_layers));
  o.targets = "default";
  const AdapterPlan all = plan_adapters(llama, o);
  EXPECT_EQ(all.find("head"), nullptr);  // an LM head is adapted only when asked (PEFT's all-linear)
  EXPECT_EQ(all.find("blocks.0.mlp.fc")->parts, (std::vector<std::string>{"gate", "up"}));
  o.targets = "gate";
  EXPECT_EQ(plan_adapters(llama, o).find("blocks.0.mlp.fc")->segments.size(), 1u);
  o.targets = "attention,lm_head";
  o.scaling = "none";
  const AdapterPlan att = plan_adapters(llama, o);
  EXPECT_NE(att.find("head"), nullptr);
  EXPECT_EQ(att.find("blocks.0.mlp.fc"), nullptr);
  EXPECT_FLOAT_EQ(att.find("head")->scaling, 8.0f);  // the book's first text: alpha alone
}

TEST(Lora, bad_options_are_clear_errors) {
  ModelConfig c;
  ASSERT_TRUE(preset_config("gpt2-small", c));
  c.emb_dim = 32;
  c.n_heads = 2;
  c.n_layers = 1;
  LoraOptions o;
  o.rank = 4;
  o.alpha = 0;
  expect_error([&] { plan_adapters(c, o); }, "--lora-alpha 0: alpha must be positive");
  o.alpha = -1;
  expect_error([&] { plan_adapters(c, o); }, "alpha must be positive");
  o.alpha = 8;
  o.rank = 33;
  expect_error([&] { plan_adapters(c, o); }, "--lora-rank 33 is above the input width 32 of blocks.0.attn.qkv");
  o.rank = -2;
  expect_error([&] { plan_adapters(c, o); }, "--lora-rank -2");
  o.rank = 4;
  o.targets = "query,wq";
  expect_error([&] { plan_adapters(c, o); }, "unknown target 'wq'");
  o.targets = "gate_proj";
  expect_error([&] { plan_adapters(c, o); }, "no gate and up projections");
  o.targets = "score";
  expect_error([&] { plan_adapters(c, o); }, "language-model head");
  o.targets = "query,,value";
  expect_error([&] { plan_adapters(c, o); }, "an empty entry");
  o.targets = "default";
  o.scaling = "sqrt";
  expect_error([&] { plan_adapters(c, o); }, "--lora-scaling 'sqrt'");
  o.scaling = "rank";
  o.dropout = 1.0;
  expect_error([&] { plan_adapters(c, o); }, "--lora-dropout 1");
}

TEST(Lora, an_adapter_starts_as_its_base) {
  // B = 0: the adapted model computes the base's logits exactly (the adapter adds +0.0).
  ModelConfig c;
  ASSERT_TRUE(preset_config("gpt2-small", c));
  c.emb_dim = 32;
  c.n_heads = 2;
  c.n_layers = 2;
  c.vocab_size = 50;
  c.context_length = 16;
  LoraOptions o;
  o.rank = 4;
  o.alpha = 4;
  o.targets = "all-linear,head";
  Transformer base(c, 7), adapted(c, 7, DType::F32, plan_adapters(c, o));
  const std::vector<int32_t> tokens = {1, 5, 9, 2, 33, 7, 7, 0};
  const std::vector<float> a = base.forward(tokens, 2, 4, ForwardOptions{}).to_vector();
  const std::vector<float> b = adapted.forward(tokens, 2, 4, ForwardOptions{}).to_vector();
  EXPECT_EQ(a, b);
  // A is the book's U(+-1/sqrt(rank)), whatever the family's own init; B is zero.
  const std::vector<float> A = adapted.params().at("blocks.0.attn.proj.lora_A").value.to_vector();
  float amax = 0;
  for (float v : A) amax = std::max(amax, std::fabs(v));
  EXPECT_LE(amax, 0.5f);
  EXPECT_GT(amax, 0.4f);
}

struct PeftCase {
  const char* name;
};

class PeftAdapter : public ::testing::TestWithParam<const char*> {};

// A PEFT-written adapter on its base gives PEFT's logits, applied and merged.
TEST_P(PeftAdapter, gives_pefts_logits_applied_and_merged) {
  const fs::path dir = peft_fixture(GetParam());
  const io::SafeTensorsFile ref = io::SafeTensorsFile::open(dir / "reference.safetensors");
  const double k = std::stod(ref.metadata().at("error_k"));
  const Tensor tok = ref.load("tokens");
  const int64_t B = tok.dim(0), T = tok.dim(1);
  std::vector<int32_t> tokens;
  for (float v : tok.to_vector()) tokens.push_back(static_cast<int32_t>(v));

  ModelLoadOptions lo;
  lo.adapter = dir;
  const auto model = load_model_dir(dir / "base", lo);
  ASSERT_FALSE(model->adapters().empty());
  const std::vector<float> logits = model->forward(tokens, B, T, ForwardOptions{}).to_vector();
  double exact_norm = 0;
  const double err = norm_diff(logits, ref.load("logits_f64").to_vector(), &exact_norm);
  const double err_torch = norm_diff(ref.load("logits").to_vector(), ref.load("logits_f64").to_vector());
  std::printf("[%s] applied: ||ours - f64|| / ||f64|| %.3g, PEFT float32 %.3g, bound k u %.3g\n", GetParam(),
              err / exact_norm, err_torch / exact_norm, k * kU);
  EXPECT_LE(err, k * kU * exact_norm);
  // Without the adapter the logits are far away: the adapter is really applied.
  const auto base = load_model_dir(dir / "base");
  const std::vector<float> base_logits = base->forward(tokens, B, T, ForwardOptions{}).to_vector();
  EXPECT_GT(norm_diff(base_logits, logits), 100 * k * kU * exact_norm);

  model->merge_adapters();
  const std::vector<float> merged = model->forward(tokens, B, T, ForwardOptions{}).to_vector();
  const double err_merged = norm_diff(merged, ref.load("logits_f64").to_vector());
  std::printf("[%s] merged: ||ours - f64|| / ||f64|| %.3g; vs PEFT's merge_and_unload %.3g\n", GetParam(),
              err_merged / exact_norm, norm_diff(merged, ref.load("merged_logits").to_vector()) / exact_norm);
  EXPECT_LE(err_merged, k * kU * exact_norm);
}

// Our adapter dir (save_adapter_dir) read back gives the same function: GPT-2's q|k|v segments as
// one block-diagonal PEFT module, Llama/Qwen3 parts as their own modules, a part left out.
TEST_P(PeftAdapter, our_adapter_dir_reads_back_to_the_same_logits) {
  const fs::path dir = peft_fixture(GetParam());
  const ModelConfig config = read_model_config(dir / "base");
  LoraOptions o;
  o.rank = 3;
  o.alpha = 5;
  o.targets = std::string(GetParam()) == "llama" ? "query,value,mlp_out" : "default";
  const AdapterPlan plan = plan_adapters(config, o);
  Transformer model(config, std::nullopt, DType::F32, plan);
  load_model_weights(model, dir / "base");
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  for (Parameter& p : model.params().all())
    if (p.is_adapter())
      for (int64_t i = 0; i < p.value.numel(); ++i) p.value[i] = normal(rng);
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
  const std::vector<float> ours = model.forward(tokens, 2, 6, ForwardOptions{}).to_vector();

  testing_util::TempDir tmp;
  save_adapter_dir(model, tmp.path() / "adapter", (dir / "base").string());
  EXPECT_EQ(adapter_base_model(tmp.path() / "adapter"), (dir / "base").string());
  ModelLoadOptions lo;
  lo.adapter = tmp.path() / "adapter";
  const auto back = load_model_dir(dir / "base", lo);
  const std::vector<float> again = back->forward(tokens, 2, 6, ForwardOptions{}).to_vector();
  double n = 0;
  const double d = norm_diff(again, ours, &n);
  // The same products; a fused module only adds exact zeros of the block-diagonal B.
  const double k = 4 * std::sqrt(static_cast<double>(config.emb_dim)) * static_cast<double>(config.n_layers);
  EXPECT_LE(d, k * kU * n) << "relative " << d / n;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PeftAdapter, ::testing::Values("gpt2", "qwen3", "llama"));

// For tests/tools/check_peft_adapter.py: with GPTRAIN_PEFT_EXPORT_DIR set, writes per fixture base
// (gpt2: the book's q|k|v segments, every Linear; qwen3: every Linear; llama: q and v) an adapter
// dir of random non-zero adapters, and reference.safetensors with tokens and gptrain's logits:
//   GPTRAIN_PEFT_EXPORT_DIR=/tmp/peft build/tests/model/model_test --gtest_filter='PeftExport.*'
//   python tests/tools/check_peft_adapter.py tests/fixtures/peft/gpt2/base /tmp/peft/gpt2 /tmp/peft/gpt2/reference.safetensors
TEST(PeftExport, writes_adapter_dirs_for_peft) {
  const char* out = std::getenv("GPTRAIN_PEFT_EXPORT_DIR");
  if (!out) GTEST_SKIP() << "set GPTRAIN_PEFT_EXPORT_DIR to write adapter dirs for tests/tools/check_peft_adapter.py";
  for (const char* name : {"gpt2", "qwen3", "llama"}) {
    const fs::path base = peft_fixture(name) / "base";
    const ModelConfig config = read_model_config(base);
    LoraOptions o;
    o.rank = 4;
    o.alpha = 6;
    o.targets = std::string(name) == "llama" ? "q_proj,v_proj" : "default";
    Transformer model(config, std::nullopt, DType::F32, plan_adapters(config, o));
    load_model_weights(model, base);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.2f);
    for (Parameter& p : model.params().all())
      if (p.is_adapter())
        for (int64_t i = 0; i < p.value.numel(); ++i) p.value[i] = normal(rng);
    const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};
    const Tensor& logits = model.forward(tokens, 2, 8, ForwardOptions{});
    const fs::path dir = fs::path(out) / name;
    save_adapter_dir(model, dir, fs::absolute(base).string());
    std::vector<float> ids(tokens.begin(), tokens.end());
    io::save_safetensors(dir / "reference.safetensors",
                         {{"tokens", Tensor::from_vector({2, 8}, ids)}, {"logits", logits}});
    std::printf("wrote %s (base %s)\n", dir.c_str(), base.c_str());
  }
}

TEST(PeftAdapter, an_adapter_for_another_base_is_refused) {
  // A Llama adapter on a GPT-2 base, and on a Qwen3 base whose widths differ.
  expect_error(
      [] {
        ModelLoadOptions lo;
        lo.adapter = peft_fixture("llama");
        load_model_dir(peft_fixture("gpt2") / "base", lo);
      },
      "the adapter was made for another base");
  expect_error(
      [] {
        ModelLoadOptions lo;
        lo.adapter = peft_fixture("llama");
        load_model_dir(peft_fixture("qwen3") / "base", lo);
      },
      "the adapter was made for another base");
  expect_error(
      [] {
        ModelLoadOptions lo;
        lo.adapter = peft_fixture("gpt2") / "base";  // a model dir, not an adapter dir
        load_model_dir(peft_fixture("gpt2") / "base", lo);
      },
      "adapter_config.json");
}

}  // namespace
}  // namespace gptrain
