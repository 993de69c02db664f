// The classifier against the book's PyTorch model (fixtures written by
// tests/tools/gen_cls_fixtures.py): the pooled position's logits and cross-entropy, the gradients
// of exactly the parameters the book trains, and three AdamW steps that leave the frozen ones
// untouched; the book's parameter counts; and a whole finetune-cls run whose frozen weights come
// out bit-identical.
//
// Error model (as tests/model/parity_test.cpp, which derives it): u = 2^-24, gamma_K = K u / (1 - K u)
// with K = max(4C, T, B*T), D = 6L + 3 reduction stages on the longest path; logits and loss within
// gamma_K * D of the reference's norm, each gradient within gamma_K * 2D, and after AdamW steps each
// weight within lr * min(2.5, 2 eps_g max|g| / |g_i|) per step plus 8u |p|.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "data/text_file.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "model/transformer.h"
#include "model/model_dir.h"
#include "tests/common/parity.h"
#include "tests/common/temp_dir.h"
#include "train/adamw.h"
#include "train/classifier_model.h"
#include "train/finetune_cls.h"
#include "train/metrics.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

using testing_util::as_doubles;
using testing_util::kU;
using testing_util::rel_error;

class ClassifierParity : public ::testing::TestWithParam<const char*> {};

// Must show 3: last-token loss and the trainable gradients equal PyTorch's, the rest frozen.
TEST_P(ClassifierParity, loss_gradients_and_adamw_match_pytorch_with_the_rest_frozen) {
  ops::set_num_threads(1);  // tiny shapes: a second thread only adds barriers on a busy machine
  const fs::path path = fs::path(GPTRAIN_FIXTURES_DIR) / "cls" / (std::string(GetParam()) + ".safetensors");
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(path);
  const auto& meta = f.metadata();
  const auto cj = nlohmann::json::parse(meta.at("config"));
  const auto oj = nlohmann::json::parse(meta.at("optimizer"));
  ModelConfig cfg;
  cfg.vocab_size = cj["vocab_size"];
  cfg.context_length = cj["context_length"];
  cfg.emb_dim = cj["emb_dim"];
  cfg.n_heads = cj["n_heads"];
  cfg.n_layers = cj["n_layers"];
  cfg.drop_rate = cj["drop_rate"];
  cfg.qkv_bias = cj["qkv_bias"];
  cfg.head = HeadType::Classifier;
  cfg.n_classes = std::stoll(meta.at("n_classes"));
  const std::string pooling = meta.at("pooling");
  cfg.pooling = pooling == "last" ? Pooling::Last : pooling == "first" ? Pooling::First : Pooling::Mean;
  Transformer model(cfg, std::nullopt);
  for (Parameter& p : model.params().all()) f.load_into("param." + p.name, p.value);
  apply_trainable(model, meta.at("trainable_mode"));
  std::vector<std::string> trainable;
  for (const Parameter& p : model.params().all())
    if (p.trainable) trainable.push_back(p.name);
  EXPECT_EQ(trainable, nlohmann::json::parse(meta.at("trainable")).get<std::vector<std::string>>())
      << "the trainable set differs from the book's requires_grad";

  const int64_t B = std::stoll(meta.at("B")), T = std::stoll(meta.at("T"));
  std::vector<int32_t> tokens, labels;
  for (float v : f.load("in.tokens").to_vector()) tokens.push_back(static_cast<int32_t>(v));
  for (float v : f.load("in.labels").to_vector()) labels.push_back(static_cast<int32_t>(v));
  const int64_t K = std::max<int64_t>(4 * cfg.emb_dim, std::max(T, B * T));
  const double gamma = K * kU / (1 - K * kU), D = 6.0 * cfg.n_layers + 3;
  const double eps_fwd = gamma * D, eps_grad = gamma * 2 * D;

  const double loss = model.forward_loss(tokens, labels, B, T, ForwardOptions{true, 0});
  const double ref_loss = f.load("ref.loss")[0];
  const double logit_err = rel_error(model.logits().to_vector(), f.load("ref.logits").to_vector());
  EXPECT_LE(logit_err, eps_fwd) << "logits";
  EXPECT_LE(std::fabs(loss - ref_loss), eps_fwd * std::fabs(ref_loss)) << "loss";
  std::printf("[%s] loss %.10f vs float64 %.10f (rel %.3g, bound %.3g); logits rel %.3g; torch float32 loss %.10f\n",
              GetParam(), loss, ref_loss, std::fabs(loss - ref_loss) / ref_loss, eps_fwd, logit_err,
              double(f.load("torch32.loss")[0]));

  model.zero_grads();
  model.backward();
  double worst = 0;
  std::string worst_name;
  for (const Parameter& p : model.params().all()) {
    if (!p.trainable) {
      EXPECT_FALSE(p.grad.defined()) << p.name << " is frozen but has a gradient buffer";
      continue;
    }
    const double e = rel_error(p.grad.to_vector(), f.load("ref.grad." + p.name).to_vector());
    EXPECT_LE(e, eps_grad) << "gradient of " << p.name;
    if (e > worst) {
      worst = e;
      worst_name = p.name;
    }
  }
  std::printf("[%s] %zu trainable gradients: largest rel error vs float64 %.3g (%s; bound %.3g)\n", GetParam(),
              trainable.size(), worst, worst_name.c_str(), eps_grad);

  std::map<std::string, std::vector<float>> initial;
  for (const Parameter& p : model.params().all()) initial[p.name] = p.value.to_vector();
  const AdamWOptions o = testing_util::adamw_options(oj);
  AdamW opt(model.params(), o);
  testing_util::AdamWParityBound bound(o.lr, eps_grad);
  const auto add_bound = [&] {
    for (const Parameter& p : model.params().all())
      if (p.trainable) bound.add_step(p.name, as_doubles(p.grad.to_vector()));
  };
  add_bound();
  opt.step();
  for (int s = 0; s < 2; ++s) {
    model.zero_grads();
    model.forward_loss(tokens, labels, B, T, ForwardOptions{true, 0});
    model.backward();
    add_bound();
    opt.step();
  }
  for (const Parameter& p : model.params().all()) {
    const auto now = p.value.to_vector();
    if (!p.trainable) {
      EXPECT_TRUE(now == initial[p.name]) << p.name << " is frozen but changed";
      continue;
    }
    const int bad = bound.outside(p.name, as_doubles(now), as_doubles(f.load("ref.after3." + p.name).to_vector()));
    EXPECT_EQ(bad, 0) << p.name << " after 3 AdamW steps";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClassifierParity,
                         ::testing::Values("cls_book_last_block", "cls_all_mean", "cls_head_first"));

TEST(Classifier, book_parameter_counts) {
  // The book's BASE_CONFIG (gpt2-small, qkv bias, context 1024) with a 2-class head.
  ModelConfig cfg;
  ASSERT_TRUE(preset_config("gpt2-small", cfg));
  cfg.qkv_bias = true;
  cfg.head = HeadType::Classifier;
  cfg.n_classes = 2;
  EXPECT_EQ(count_parameters(cfg).total, 124441346);
  Transformer model(cfg, std::nullopt);
  apply_trainable(model, "last-block");
  EXPECT_EQ(model.params().trainable_numel(), 7090946);
  apply_trainable(model, "head");
  EXPECT_EQ(model.params().trainable_numel(), 2 * 768 + 2);
  EXPECT_THROW(apply_trainable(model, "last-13"), Error);
  EXPECT_THROW(apply_trainable(model, "some"), Error);
}

// F8: a config.json that does not belong to the weights is refused by the weights' shapes before
// the model is allocated (here the claimed width would need terabytes; before, that allocation was tried).
TEST(Classifier, a_hostile_config_is_refused_before_allocating) {
  TempDir dir;
  ModelConfig cfg;
  ASSERT_TRUE(preset_config("gpt2-small", cfg));
  cfg.emb_dim = 16;
  cfg.n_heads = 2;
  cfg.n_layers = 1;
  cfg.context_length = 32;
  save_model_dir(Transformer(cfg, 7), dir / "base");
  ModelConfig huge = cfg;
  huge.emb_dim = 1 << 17;
  huge.n_layers = 3;
  huge.n_heads = 1 << 10;
  io::write_file_atomic(dir / "base" / "config.json", model_config_text(huge));
  ClassifierModelOptions o;
  o.init = (dir / "base").string();
  try {
    build_classifier(o, 2);
    FAIL() << "a config.json the weights do not match was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
}

// Must show 2 (first half): a whole run with the book's freezing leaves every frozen weight
// bit-identical to the model it started from.
TEST(FinetuneCls, frozen_weights_are_bit_identical_after_a_run) {
  const char* data_dir = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (!data_dir || !fs::exists(fs::path(data_dir) / "gpt2_tokenizer" / "encoder.json"))
    GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR has no gpt2_tokenizer/";
  TempDir dir;
  ModelConfig cfg;
  ASSERT_TRUE(preset_config("gpt2-small", cfg));
  cfg.emb_dim = 16;
  cfg.n_heads = 2;
  cfg.n_layers = 3;
  cfg.context_length = 32;
  Transformer base(cfg, 7);
  save_model_dir(base, dir / "base");
  std::string train = "Label,Text\n", val = "Label,Text\n";
  const char* words[3] = {"apple banana", "stone rock", "river water"};
  const char* names[3] = {"fruit", "ground", "sea"};
  for (int i = 0; i < 24; ++i) train += fmt::format("{},{} {}\n", names[i % 3], words[i % 3], i);
  for (int i = 0; i < 6; ++i) val += fmt::format("{},{} {}\n", names[i % 3], words[i % 3], 100 + i);
  std::ofstream(dir / "train.csv") << train;
  std::ofstream(dir / "val.csv") << val;

  FinetuneClsOptions o;
  o.train = (dir / "train.csv").string();
  o.val = (dir / "val.csv").string();
  o.init = (dir / "base").string();
  o.data_dir = data_dir;
  o.out_dir = (dir / "run").string();
  o.batch_size = 4;
  o.epochs = 2;
  o.eval_interval = 2;
  o.eval_iters = 2;
  o.lr = 1e-2;
  o.threads = 1;  // a tiny model: threads only add barriers
  ASSERT_EQ(run_finetune_cls(o), 0);

  const auto tuned = load_model_dir(dir / "run" / "final");
  ASSERT_EQ(tuned->config().head, HeadType::Classifier);
  int frozen = 0, trained = 0;
  for (const Parameter& p : base.params().all()) {
    if (p.name.starts_with("head.")) continue;  // the LM head is replaced
    const Parameter& q = tuned->params().at(p.name);
    const bool trainable = p.name.starts_with("blocks.2.") || p.name.starts_with("ln_f.");
    const bool equal = p.value.to_vector() == q.value.to_vector();
    if (trainable) {
      trained += !equal;
      EXPECT_FALSE(equal) << p.name << " should have been trained";
    } else {
      frozen += equal;
      EXPECT_TRUE(equal) << p.name << " is frozen but changed";
    }
  }
  EXPECT_EQ(frozen, 2 + 2 * 11);  // embeddings and blocks 0-1 (11 tensors each without qkv bias)
  EXPECT_GT(trained, 0);

  // The model dir carries what classify needs; the metrics carry per-epoch and final accuracies.
  EXPECT_EQ(read_class_names(dir / "run" / "final"), (std::vector<std::string>{"fruit", "ground", "sea"}));
  EXPECT_EQ(read_classifier_inputs(dir / "run" / "final").max_length, 3);  // "apple", " banana", " 23"
  MetricsLog log(dir / "run", 1 << 30);
  int epochs = 0, finals = 0;
  for (const MetricRecord& r : log.records()) {
    epochs += r.kind == "epoch" && r.train_accuracy && r.val_accuracy;
    finals += r.kind == "final" && r.train_accuracy && r.val_accuracy && !r.test_accuracy;
  }
  EXPECT_EQ(epochs, 2);
  EXPECT_EQ(finals, 1);
  EXPECT_TRUE(fs::exists(dir / "run" / "accuracy.svg"));
  EXPECT_TRUE(fs::exists(dir / "run" / "loss.svg"));
  EXPECT_FALSE(fs::exists(dir / "run" / "train.csv"));  // ready splits are not rewritten

  ClassifyOptions c;
  c.model = (dir / "run" / "final").string();
  c.texts = {"apple banana 7", "river water 9"};
  c.data_dir = data_dir;
  EXPECT_EQ(run_classify(c), 0);
}

}  // namespace
}  // namespace gptrain
