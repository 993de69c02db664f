// Parameter counts of the four presets equal the book's (inventory §2, exercise 4.2 and §10).
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/model_dir.h"
#include "model/transformer.h"
#include "util/error.h"

namespace gptrain {
namespace {

TEST(Config, preset_parameter_counts_match_the_book) {
  struct Row { const char* name; int64_t total, tied, total_qkv, tied_qkv; };
  for (const Row& r : {Row{"gpt2-small", 163009536, 124412160, 163037184, 124439808},
                       Row{"gpt2-medium", 406212608, 354749440, 406286336, 354823168},
                       Row{"gpt2-large", 838220800, 773891840, 838359040, 0},
                       Row{"gpt2-xl", 1637792000, 1557380800, 1638022400, 0}}) {
    ModelConfig c;
    ASSERT_TRUE(preset_config(r.name, c));
    EXPECT_EQ(count_parameters(c).total, r.total) << r.name;
    EXPECT_EQ(count_parameters(c).without_head, r.tied) << r.name;
    c.qkv_bias = true;
    EXPECT_EQ(count_parameters(c).total, r.total_qkv) << r.name;
    if (r.tied_qkv) {
      EXPECT_EQ(count_parameters(c).without_head, r.tied_qkv) << r.name;
    }
    c.tie_weights = true;
    EXPECT_EQ(count_parameters(c).total, count_parameters(c).without_head);
  }
}

// The families' presets have their models' parameter counts (Hugging Face's configs, tied heads).
TEST(Config, llama_and_qwen3_presets_have_their_models_counts) {
  for (const auto& [name, total] : std::vector<std::pair<std::string, int64_t>>{
           {"qwen3-0.6b", 596049920}, {"llama-3.2-1b", 1235814400}, {"llama-3.2-3b", 3212749824}}) {
    ModelConfig c;
    ASSERT_TRUE(preset_config(name, c)) << name;
    EXPECT_EQ(count_parameters(c).total, total) << name;
  }
}

TEST(Config, context_256_model_and_classifier_counts) {
  ModelConfig c;
  ASSERT_TRUE(preset_config("gpt2-small", c));
  c.context_length = 256;
  EXPECT_EQ(count_parameters(c).total, 162419712);  // the ch05 pretraining model
  ModelConfig cls;
  ASSERT_TRUE(preset_config("gpt2-small", cls));
  cls.qkv_bias = true;
  cls.head = HeadType::Classifier;
  cls.n_classes = 2;
  EXPECT_EQ(count_parameters(cls).total, 124441346);  // the ch06 spam classifier
}

TEST(Config, built_model_matches_counted_parameters) {
  ModelConfig c;
  c.vocab_size = 50;
  c.context_length = 16;
  c.emb_dim = 24;
  c.n_heads = 3;
  c.n_layers = 2;
  for (bool qkv : {false, true})
    for (bool tie : {false, true}) {
      c.qkv_bias = qkv;
      c.tie_weights = tie;
      Transformer model(c);
      int64_t n = 0;
      for (const Parameter& p : model.params().all()) n += p.value.numel();
      EXPECT_EQ(n, count_parameters(c).total);
      EXPECT_EQ(model.params().trainable_numel(), n);
    }
}

TEST(Config, invalid_values_are_rejected_with_the_key) {
  ModelConfig c;
  c.n_heads = 7;
  try {
    c.validate();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_heads"), std::string::npos);
  }
}

// Found by fuzz/model_config_fuzz: sizes that make a shape or parameter count overflow int64 (and
// allocations of exabytes) are refused by name, before anything is computed from them.
TEST(Config, sizes_beyond_what_gptrain_supports_are_refused) {
  const auto error_of = [](ModelConfig c) {
    try {
      c.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  ModelConfig c;
  c.vocab_size = int64_t{1} << 40;
  EXPECT_NE(error_of(c).find("vocab_size 1099511627776 is more than gptrain supports"), std::string::npos) << error_of(c);
  c = ModelConfig{};
  c.n_layers = int64_t{1} << 40;
  EXPECT_NE(error_of(c).find("n_layers"), std::string::npos) << error_of(c);
  c = ModelConfig{};
  c.n_heads = 1 << 16;
  c.head_dim = 1 << 16;  // each within bounds, their product (the attention width) not
  EXPECT_NE(error_of(c).find("attention width"), std::string::npos) << error_of(c);
  EXPECT_EQ(error_of(ModelConfig{}), "accepted");
}

// config.json round-trips every field of ModelConfig: GPT-2's four presets through Hugging Face's
// GPT-2 keys, and descriptions beyond GPT-2 (grouped-query heads, head size, MLP width, norms,
// rotary positions with and without Llama 3 scaling, biases, query/key norms, classifier heads)
// through the gptrain.architecture object.
TEST(Config, config_json_round_trips_every_field) {
  std::vector<ModelConfig> configs;
  for (const std::string& name : preset_names()) {
    ModelConfig c;
    ASSERT_TRUE(preset_config(name, c));
    configs.push_back(c);
    c.qkv_bias = true;
    c.tie_weights = true;
    c.drop_rate = 0.0f;
    configs.push_back(c);
  }
  ModelConfig wide;  // a GPT-2 MLP of another width: HF's n_inner
  wide.mlp_dim = 1000;
  configs.push_back(wide);
  ModelConfig cls;
  cls.head = HeadType::Classifier;
  cls.n_classes = 5;
  cls.pooling = Pooling::Mean;
  cls.context_length = 120;
  configs.push_back(cls);
  ModelConfig llama;  // shaped like Llama 3.2 1B
  llama.family = "llama";
  llama.vocab_size = 128256;
  llama.context_length = 131072;
  llama.emb_dim = 2048;
  llama.n_layers = 16;
  llama.n_heads = 32;
  llama.n_kv_heads = 8;
  llama.head_dim = 64;
  llama.mlp_dim = 8192;
  llama.norm = NormKind::RMSNorm;
  llama.norm_bias = false;
  llama.norm_eps = 1e-5f;
  llama.mlp = MlpKind::SwiGLU;
  llama.positions = PositionKind::Rotary;
  llama.rope = RopeConfig{500000.0, "llama3", 32.0, 1.0, 4.0, 8192};
  llama.qkv_bias = llama.out_bias = llama.mlp_bias = false;
  llama.tie_weights = true;
  llama.drop_rate = 0.0f;
  configs.push_back(llama);
  ModelConfig qwen = llama;  // shaped like Qwen3 0.6B: head size 128 with width 1024
  qwen.family = "qwen3";
  qwen.vocab_size = 151936;
  qwen.context_length = 40960;
  qwen.emb_dim = 1024;
  qwen.n_layers = 28;
  qwen.n_heads = 16;
  qwen.head_dim = 128;
  qwen.mlp_dim = 3072;
  qwen.norm_eps = 1e-6f;
  qwen.rope = RopeConfig{1000000.0, "", 1.0, 1.0, 4.0, 0};
  qwen.qk_norm = true;
  configs.push_back(qwen);
  ModelConfig gqa_layernorm;  // buildable today: grouped-query heads, no biases, a bias-free LayerNorm
  gqa_layernorm.emb_dim = 96;
  gqa_layernorm.n_heads = 6;
  gqa_layernorm.n_kv_heads = 2;
  gqa_layernorm.head_dim = 20;
  gqa_layernorm.norm_bias = gqa_layernorm.out_bias = gqa_layernorm.mlp_bias = false;
  configs.push_back(gqa_layernorm);
  for (const ModelConfig& c : configs) {
    SCOPED_TRACE(model_config_text(c));
    const ModelConfig back = parse_model_config_text(model_config_text(c), "config.json");
    EXPECT_TRUE(back.same_model(c));
    // and a second trip changes nothing more
    EXPECT_EQ(model_config_text(back), model_config_text(parse_model_config_text(model_config_text(back), "x")));
  }
  // GPT-2, Llama and Qwen3 are written as transformers writes them; the rest says it is none.
  EXPECT_NE(model_config_text(configs[0]).find("\"model_type\": \"gpt2\""), std::string::npos);
  EXPECT_EQ(model_config_text(configs[0]).find("architecture\""), std::string::npos);
  EXPECT_NE(model_config_text(llama).find("\"model_type\": \"llama\""), std::string::npos);
  EXPECT_NE(model_config_text(qwen).find("\"model_type\": \"qwen3\""), std::string::npos);
  EXPECT_NE(model_config_text(gqa_layernorm).find("\"model_type\": \"gptrain\""), std::string::npos);
}

TEST(Config, derived_sizes_follow_the_width) {
  ModelConfig c;
  ASSERT_TRUE(preset_config("gpt2-medium", c));
  EXPECT_EQ(c.head_size(), 64);
  EXPECT_EQ(c.mlp_width(), 4096);
  EXPECT_EQ(c.kv_heads(), 16);
  c.emb_dim = 512;  // an override keeps the derived sizes consistent
  EXPECT_EQ(c.head_size(), 32);
  EXPECT_EQ(c.mlp_width(), 2048);
  ModelConfig bad = c;
  bad.n_kv_heads = 5;  // 16 query heads do not group over 5
  EXPECT_THROW(bad.validate(), Error);
}

}  // namespace
}  // namespace gptrain
