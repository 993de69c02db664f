// Hugging Face GPT-2 interop: our logits equal transformers' on models transformers wrote
// (both tensor-name spellings, tied and untied, single-file and sharded), the tiny models in the
// shared data dir load, and a model dir we write loads back bit for bit. Fixtures come from
// tests/tools/gen_hf_fixtures.py; tolerances from the error model in hf_test_util.h.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/model_dir.h"
#include "tests/model/hf_test_util.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::error_k;
using testing_util::kUnitRoundoff;
using testing_util::TempDir;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

std::vector<int32_t> read_tokens(const io::SafeTensorsFile& f, const std::string& name, int64_t& B, int64_t& T) {
  const io::TensorInfo& info = f.at(name);
  EXPECT_EQ(info.dtype, "I64");
  EXPECT_EQ(info.shape.size(), 2u);
  B = info.shape[0];
  T = info.shape[1];
  const std::span<const std::byte> raw = f.raw(name);
  std::vector<int32_t> tokens(static_cast<size_t>(B * T));
  for (size_t i = 0; i < tokens.size(); ++i) {
    int64_t id;
    std::memcpy(&id, raw.data() + 8 * i, 8);
    tokens[i] = static_cast<int32_t>(id);
  }
  return tokens;
}

struct Comparison {
  double ours_vs_exact = 0, torch_vs_exact = 0, ours_vs_torch = 0;  // Frobenius norms of differences
  double exact_norm = 0, max_abs_ours_vs_torch = 0, max_abs_torch = 0, k = 0;
};

// ours [B,T,V] (every `stride`-th column compared) against transformers' float32 and float64 logits.
Comparison compare(const Tensor& ours, const Tensor& torch32, const Tensor& exact, int64_t stride, double k) {
  Comparison c;
  c.k = k;
  const int64_t V = ours.dim(-1), rows = ours.numel() / V, cols = exact.dim(-1);
  EXPECT_EQ(torch32.numel(), rows * cols);
  EXPECT_EQ((V + stride - 1) / stride, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const double o = ours[r * V + j * stride], t = torch32[r * cols + j], e = exact[r * cols + j];
      c.ours_vs_exact += (o - e) * (o - e);
      c.torch_vs_exact += (t - e) * (t - e);
      c.ours_vs_torch += (o - t) * (o - t);
      c.exact_norm += e * e;
      c.max_abs_ours_vs_torch = std::max(c.max_abs_ours_vs_torch, std::abs(o - t));
      c.max_abs_torch = std::max(c.max_abs_torch, std::abs(t));
    }
  for (double* x : {&c.ours_vs_exact, &c.torch_vs_exact, &c.ours_vs_torch, &c.exact_norm}) *x = std::sqrt(*x);
  return c;
}

void expect_within_error_model(const Comparison& c, const std::string& what) {
  const double bound = c.k * kUnitRoundoff * c.exact_norm;
  std::printf("%s: ||ours-torch||/||ref|| %.3e, max abs %.3e (max |logit| %.3e, ratio %.3e); ||ours-f64||/||ref|| "
              "%.3e, ||torch-f64||/||ref|| %.3e; bound k*u = %.3e (k = %.0f)\n",
              what.c_str(), c.ours_vs_torch / c.exact_norm, c.max_abs_ours_vs_torch, c.max_abs_torch,
              c.max_abs_ours_vs_torch / c.max_abs_torch, c.ours_vs_exact / c.exact_norm, c.torch_vs_exact / c.exact_norm,
              c.k * kUnitRoundoff, c.k);
  // transformers itself within the bound: the error model's assumptions hold on this fixture.
  EXPECT_LE(c.torch_vs_exact, bound) << what << ": the error model does not fit transformers' own error";
  EXPECT_LE(c.ours_vs_exact, bound) << what;
  EXPECT_LE(c.ours_vs_torch, 2 * bound) << what;
}

void check_parity(const fs::path& dir) {
  SCOPED_TRACE(dir.string());
  const std::unique_ptr<Transformer> model = load_model_dir(dir);
  const io::SafeTensorsFile ref = io::SafeTensorsFile::open(dir / "reference.safetensors");
  int64_t B = 0, T = 0;
  const std::vector<int32_t> tokens = read_tokens(ref, "tokens", B, T);
  const Tensor& logits = model->forward(tokens, B, T, ForwardOptions{});
  ASSERT_EQ(logits.shape(), (Shape{B, T, model->config().vocab_size}));
  expect_within_error_model(compare(logits, ref.load("logits"), ref.load("logits_f64"), 1, error_k(model->config(), T)),
                            dir.filename().string());
}

TEST(HfGpt2Parity, tiny_prefixed_as_save_pretrained_writes_it) {
  const fs::path dir = testing_util::fixtures_dir() / "prefixed";
  const ModelConfig c = read_model_config(dir);
  EXPECT_TRUE(c.tie_weights);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.emb_dim, 24);
  EXPECT_EQ(c.n_heads, 3);
  check_parity(dir);
}

TEST(HfGpt2Parity, tiny_hub_spelling_with_mask_buffers) { check_parity(testing_util::fixtures_dir() / "hub"); }

TEST(HfGpt2Parity, tiny_untied_sharded) {
  const fs::path dir = testing_util::fixtures_dir() / "untied_sharded";
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  EXPECT_FALSE(read_model_config(dir).tie_weights);
  check_parity(dir);
}

// The full-size check: GPTRAIN_HF_PARITY_DIR holds what
// `gen_hf_fixtures.py --shape gpt2-small --out DIR` wrote (about 2 GB, so never committed).
TEST(HfGpt2Parity, full_size_from_env) {
  const char* env = std::getenv("GPTRAIN_HF_PARITY_DIR");
  if (!env) GTEST_SKIP() << "set GPTRAIN_HF_PARITY_DIR to a dir written by tests/tools/gen_hf_fixtures.py --shape gpt2-small";
  for (const char* sub : {"prefixed", "hub", "untied_sharded"}) check_parity(fs::path(env) / sub);
}

fs::path shared_tiny_models() {
  const char* data = std::getenv("GPTRAIN_TEST_DATA_DIR");
  return data ? fs::path(data) / "tiny_models" : fs::path();
}

TEST(HfGpt2SharedModels, load_and_match_transformers) {
  const fs::path root = shared_tiny_models();
  if (root.empty() || !fs::exists(root))
    GTEST_SKIP() << "GPTRAIN_TEST_DATA_DIR/tiny_models not found (CTest sets GPTRAIN_TEST_DATA_DIR to ../shared/data)";
  const io::SafeTensorsFile ref = io::SafeTensorsFile::open(testing_util::fixtures_dir() / "shared_tiny_models.safetensors");
  const int64_t stride = std::stoll(ref.metadata().at("column_stride"));
  struct Row {
    const char* dir;
    const char* suffix;
    int64_t vocab, stride;
  };
  for (const Row& row : {Row{"tiny_gpt2_vocab21", "_vocab21", 21, 1}, Row{"fake_gpt2_vocab50257", "_vocab50257", 50257, stride}}) {
    SCOPED_TRACE(row.dir);
    const std::unique_ptr<Transformer> model = load_model_dir(root / row.dir);
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.vocab_size, row.vocab);
    EXPECT_EQ(c.emb_dim, 2);
    EXPECT_EQ(c.context_length, 1024);
    EXPECT_TRUE(c.tie_weights);  // fake: lm_head absent because tied; vocab21: a GPT2Model, no head at all
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_FLOAT_EQ(c.drop_rate, 0.1f);
    // The Conv1D transpose, checked on raw values: qkv[out=j, in=i] = c_attn[in=i, out=j].
    const io::SafeTensorsFile file = io::SafeTensorsFile::open(root / row.dir / "model.safetensors");
    const std::string prefix = file.find("wte.weight") ? "" : "transformer.";
    const Tensor c_attn = file.load(prefix + "h.0.attn.c_attn.weight");  // [2, 6]
    const Tensor& qkv = model->params().at("blocks.0.attn.qkv.weight").value;  // [6, 2]
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(qkv[j * 2 + i], c_attn[i * 6 + j]);
    int64_t B = 0, T = 0;
    const std::vector<int32_t> tokens = read_tokens(ref, std::string("tokens") + row.suffix, B, T);
    const Tensor& logits = model->forward(tokens, B, T, ForwardOptions{});
    expect_within_error_model(compare(logits, ref.load(std::string("logits") + row.suffix),
                                      ref.load(std::string("logits_f64") + row.suffix), row.stride, error_k(c, T)),
                              row.dir);
  }
}

// config.json as the Hub serves OpenAI's four GPT-2 sizes (keys of openai-community/gpt2*):
// each reads as the matching preset with qkv bias, a tied head and context 1024.
TEST(HfGpt2Config, reads_the_four_openai_sizes) {
  const TempDir tmp;
  struct Row {
    const char* preset;
    int64_t n_embd, n_layer, n_head, tied_params;
  };
  for (const Row& r : {Row{"gpt2-small", 768, 12, 12, 124439808}, Row{"gpt2-medium", 1024, 24, 16, 354823168},
                       Row{"gpt2-large", 1280, 36, 20, 774030080}, Row{"gpt2-xl", 1600, 48, 25, 1557611200}}) {
    SCOPED_TRACE(r.preset);
    const nlohmann::json j = {{"activation_function", "gelu_new"}, {"architectures", {"GPT2LMHeadModel"}},
                              {"attn_pdrop", 0.1}, {"bos_token_id", 50256}, {"embd_pdrop", 0.1},
                              {"eos_token_id", 50256}, {"initializer_range", 0.02}, {"layer_norm_epsilon", 1e-05},
                              {"model_type", "gpt2"}, {"n_ctx", 1024}, {"n_embd", r.n_embd}, {"n_head", r.n_head},
                              {"n_layer", r.n_layer}, {"n_positions", 1024}, {"resid_pdrop", 0.1},
                              {"summary_activation", nullptr}, {"summary_type", "cls_index"}, {"vocab_size", 50257}};
    std::ofstream(tmp / "config.json") << j.dump(2);
    const ModelConfig c = read_model_config(tmp.path());
    ModelConfig preset;
    ASSERT_TRUE(preset_config(r.preset, preset));
    EXPECT_EQ(c.emb_dim, preset.emb_dim);
    EXPECT_EQ(c.n_layers, preset.n_layers);
    EXPECT_EQ(c.n_heads, preset.n_heads);
    EXPECT_EQ(c.context_length, 1024);
    EXPECT_EQ(c.vocab_size, 50257);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_TRUE(c.tie_weights);
    EXPECT_FLOAT_EQ(c.drop_rate, 0.1f);
    EXPECT_EQ(c.norm_eps, 1e-5f);
    EXPECT_EQ(count_parameters(c).total, r.tied_params);  // the sizes' published parameter counts
  }
}

void expect_same_parameters(const Transformer& a, const Transformer& b) {
  ASSERT_EQ(a.params().size(), b.params().size());
  for (int i = 0; i < a.params().size(); ++i) {
    const Parameter& p = a.params()[i];
    const Parameter* q = b.params().find(p.name);
    ASSERT_NE(q, nullptr) << p.name;
    EXPECT_EQ(p.value.shape(), q->value.shape()) << p.name;
    EXPECT_EQ(p.value.to_vector(), q->value.to_vector()) << p.name;
  }
}

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 41;
  c.context_length = 12;
  c.emb_dim = 16;
  c.n_heads = 4;
  c.n_layers = 2;
  return c;
}

TEST(HfGpt2RoundTrip, model_dirs_load_back_bit_for_bit) {
  struct Case {
    const char* name;
    bool tied, qkv_bias, classifier;
  };
  for (const Case& k : {Case{"tied_qkv", true, true, false}, Case{"book_untied_no_qkv_bias", false, false, false},
                        Case{"classifier", false, true, true}}) {
    SCOPED_TRACE(k.name);
    const TempDir tmp;
    ModelConfig c = tiny_config();
    c.tie_weights = k.tied;
    c.qkv_bias = k.qkv_bias;
    c.drop_rate = 0.25f;
    c.norm_eps = 1e-6f;
    std::vector<std::string> labels;
    if (k.classifier) {
      c.head = HeadType::Classifier;
      c.n_classes = 3;
      c.pooling = Pooling::Mean;
      labels = {"ham", "spam", "eggs"};
    }
    Transformer model(c);
    testing_util::randomize(model, 7);
    const fs::path dir = tmp / "model";
    save_model_dir(model, dir, labels);

    // The files: HF keys and names, the save_pretrained spelling, zeros for an absent qkv bias.
    std::ifstream in(dir / "config.json");
    const nlohmann::json j = nlohmann::json::parse(in);
    EXPECT_EQ(j.at("model_type"), "gpt2");
    EXPECT_EQ(j.at("n_embd"), 16);
    EXPECT_EQ(j.at("activation_function"), "gelu_new");
    EXPECT_EQ(j.at("layer_norm_epsilon").get<double>(), 1e-6);
    EXPECT_EQ(j.at("tie_word_embeddings"), k.tied);
    EXPECT_EQ(j.at("architectures")[0], k.classifier ? "GPT2Model" : "GPT2LMHeadModel");
    EXPECT_EQ(j.at("gptrain").at("qkv_bias"), k.qkv_bias);
    EXPECT_EQ(j.at("gptrain").at("drop_rate").get<double>(), 0.25);
    const io::SafeTensorsFile f = io::SafeTensorsFile::open(dir / "model.safetensors");
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_NE(f.find("transformer.wte.weight"), nullptr);
    EXPECT_EQ(f.at("transformer.h.1.mlp.c_fc.weight").shape, (Shape{16, 64}));
    EXPECT_EQ(f.find("lm_head.weight") != nullptr, !k.tied && !k.classifier);
    EXPECT_EQ(f.find("score.bias") != nullptr, k.classifier);
    const std::vector<float> bias = f.load("transformer.h.0.attn.c_attn.bias").to_vector();
    EXPECT_EQ(std::count(bias.begin(), bias.end(), 0.0f) == 48, !k.qkv_bias);

    const std::unique_ptr<Transformer> back = load_model_dir(dir);
    const ModelConfig& b = back->config();
    EXPECT_EQ(b.tie_weights, c.tie_weights);
    EXPECT_EQ(b.qkv_bias, c.qkv_bias);
    EXPECT_EQ(b.drop_rate, c.drop_rate);
    EXPECT_EQ(b.norm_eps, c.norm_eps);
    EXPECT_EQ(b.head, c.head);
    EXPECT_EQ(b.n_classes, c.n_classes);
    EXPECT_EQ(b.pooling, c.pooling);
    EXPECT_EQ(read_class_names(dir), labels);
    expect_same_parameters(model, *back);
    const std::vector<int32_t> tokens = testing_util::random_tokens(2 * 12, c.vocab_size, 3);
    const std::vector<float> before = model.forward(tokens, 2, 12, {}).to_vector();
    EXPECT_EQ(back->forward(tokens, 2, 12, {}).to_vector(), before);
  }
}

// A model GPT-2's keys cannot describe (grouped-query heads with their own head size, an MLP of
// another width, no biases anywhere): model_type "gptrain", the architecture written out, its
// tensors under the same names in their own shapes, and back bit for bit.
TEST(HfGpt2RoundTrip, a_gptrain_architecture_loads_back_bit_for_bit) {
  const TempDir tmp;
  ModelConfig c = tiny_config();
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 3;
  c.mlp_dim = 23;
  c.norm_bias = c.out_bias = c.mlp_bias = false;
  Transformer model(c);
  testing_util::randomize(model, 5);
  save_model_dir(model, tmp / "m");
  std::ifstream in(tmp / "m" / "config.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("model_type"), "gptrain");
  EXPECT_EQ(j.at("gptrain").at("architecture").at("n_kv_heads"), 2);
  EXPECT_EQ(j.at("n_inner"), 23);
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(tmp / "m" / "model.safetensors");
  EXPECT_EQ(f.at("transformer.h.0.attn.c_attn.weight").shape, (Shape{16, (4 + 2 * 2) * 3}));
  EXPECT_EQ(f.at("transformer.h.0.attn.c_proj.weight").shape, (Shape{12, 16}));
  EXPECT_EQ(f.find("transformer.h.0.attn.c_proj.bias"), nullptr);
  EXPECT_EQ(f.find("transformer.ln_f.bias"), nullptr);
  const std::unique_ptr<Transformer> back = load_model_dir(tmp / "m");
  EXPECT_TRUE(back->config().same_model(c));
  expect_same_parameters(model, *back);
  const std::vector<int32_t> tokens = testing_util::random_tokens(2 * 9, c.vocab_size, 4);
  EXPECT_EQ(back->forward(tokens, 2, 9, {}).to_vector(), model.forward(tokens, 2, 9, {}).to_vector());
}

TEST(HfGpt2RoundTrip, options_and_body_only_loading) {
  const TempDir tmp;
  ModelConfig c = tiny_config();
  c.qkv_bias = true;
  Transformer lm(c);
  testing_util::randomize(lm, 11);
  save_model_dir(lm, tmp / "lm");
  ModelLoadOptions options;
  options.drop_rate = 0.0f;
  EXPECT_EQ(load_model_dir(tmp / "lm", options)->config().drop_rate, 0.0f);

  // A classifier over the pretrained body: the LM head in the file is ignored, the new head kept.
  ModelConfig cls = c;
  cls.head = HeadType::Classifier;
  cls.n_classes = 2;
  Transformer classifier(cls);
  const std::vector<float> head_before = classifier.params().at("head.weight").value.to_vector();
  load_model_weights(classifier, tmp / "lm", /*include_head=*/false);
  EXPECT_EQ(classifier.params().at("head.weight").value.to_vector(), head_before);
  EXPECT_EQ(classifier.params().at("blocks.1.mlp.proj.weight").value.to_vector(),
            lm.params().at("blocks.1.mlp.proj.weight").value.to_vector());
  EXPECT_THROW(load_model_weights(classifier, tmp / "lm"), Error);  // the file has no score.*
}

// With GPTRAIN_HF_EXPORT_DIR set, writes model dirs plus our logits (reference.safetensors) for
// tests/tools/check_hf_export.py, which loads them in transformers and compares.
// GPTRAIN_HF_EXPORT_SHAPE=gpt2-small adds the full-size models.
TEST(HfGpt2Export, writes_model_dirs_for_transformers) {
  const char* out = std::getenv("GPTRAIN_HF_EXPORT_DIR");
  if (!out) GTEST_SKIP() << "set GPTRAIN_HF_EXPORT_DIR, then run tests/tools/check_hf_export.py on it";
  struct Case {
    std::string name;
    ModelConfig config;
    int64_t B, T;
  };
  std::vector<Case> cases;
  ModelConfig tied = tiny_config();
  tied.tie_weights = true;
  tied.qkv_bias = true;
  ModelConfig book = tiny_config();  // the book's GPT_CONFIG_124M choices: untied, no qkv bias
  cases.push_back({"tiny_tied_qkv", tied, 2, 12});
  cases.push_back({"tiny_untied_no_qkv_bias", book, 2, 12});
  const char* shape = std::getenv("GPTRAIN_HF_EXPORT_SHAPE");
  if (shape && std::string(shape) == "gpt2-small") {
    ModelConfig small;
    ASSERT_TRUE(preset_config("gpt2-small", small));
    ModelConfig small_tied = small;
    small_tied.tie_weights = small_tied.qkv_bias = true;
    cases.push_back({"gpt2_small_book", small, 2, 128});
    cases.push_back({"gpt2_small_tied_qkv", small_tied, 2, 128});
  }
  ModelConfig classifier = tiny_config();
  classifier.qkv_bias = true;
  classifier.head = HeadType::Classifier;
  classifier.n_classes = 2;
  cases.push_back({"tiny_classifier", classifier, 2, 12});
  // Llama 3 and Qwen3 shapes: grouped-query heads, llama3 rope scaling, Qwen3's query/key norms
  // and free head size, tied and untied heads.
  ModelConfig llama = tiny_config();
  llama.family = "llama";
  llama.n_heads = 4;
  llama.n_kv_heads = 2;
  llama.mlp_dim = 40;
  llama.norm = NormKind::RMSNorm;
  llama.norm_bias = llama.qkv_bias = llama.out_bias = llama.mlp_bias = false;
  llama.mlp = MlpKind::SwiGLU;
  llama.positions = PositionKind::Rotary;
  llama.rope = RopeConfig{500000.0, "llama3", 8.0, 1.0, 4.0, 8};
  llama.drop_rate = 0.0f;
  cases.push_back({"tiny_llama", llama, 2, 12});
  ModelConfig qwen = llama;
  qwen.family = "qwen3";
  qwen.head_dim = 6;
  qwen.qk_norm = true;
  qwen.norm_eps = 1e-6f;
  qwen.rope = RopeConfig{1000000.0, "", 1.0, 1.0, 4.0, 0};
  qwen.tie_weights = true;
  cases.push_back({"tiny_qwen3_tied", qwen, 2, 12});
  ModelConfig qwen_cls = qwen;
  qwen_cls.head = HeadType::Classifier;
  qwen_cls.n_classes = 2;
  qwen_cls.tie_weights = false;
  cases.push_back({"tiny_qwen3_classifier", qwen_cls, 2, 12});
  for (const Case& k : cases) {
    Transformer model(k.config);
    // Weights N(0, 0.02) as GPT-2's initialisation; LayerNorm and biases perturbed.
    testing_util::randomize(model, 21, 0.02f);
    const fs::path dir = fs::path(out) / k.name;
    const bool lm = k.config.head == HeadType::LanguageModel;
    save_model_dir(model, dir, lm ? std::vector<std::string>{} : std::vector<std::string>{"ham", "spam"});
    const std::vector<int32_t> tokens = testing_util::random_tokens(k.B * k.T, k.config.vocab_size, 5);
    const Tensor& logits = model.forward(tokens, k.B, k.T, {});
    std::vector<float> ids(tokens.begin(), tokens.end());  // exact in float32 (ids < 2^24)
    // A classifier's logits have no transformers counterpart; the script checks that its body loads.
    Tensors reference = {{"tokens", Tensor::from_vector({k.B, k.T}, ids)}};
    if (lm) reference.emplace_back("logits", logits);
    io::save_safetensors(dir / "reference.safetensors", reference);
    std::printf("wrote %s\n", dir.c_str());
  }
  // A model dir that a gptrain run wrote (e.g. a pretrain run's final/), copied as it is, with
  // the logits gptrain computes from it.
  if (const char* trained = std::getenv("GPTRAIN_HF_EXPORT_TRAINED")) {
    const fs::path dir = fs::path(out) / "trained";
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const auto& entry : fs::directory_iterator(trained))
      if (entry.is_regular_file()) fs::copy_file(entry.path(), dir / entry.path().filename());
    const std::unique_ptr<Transformer> model = load_model_dir(dir);
    const int64_t B = 2, T = std::min<int64_t>(64, model->config().context_length);
    const std::vector<int32_t> tokens = testing_util::random_tokens(B * T, model->config().vocab_size, 6);
    const Tensor& logits = model->forward(tokens, B, T, {});
    std::vector<float> ids(tokens.begin(), tokens.end());
    io::save_safetensors(dir / "reference.safetensors", {{"tokens", Tensor::from_vector({B, T}, ids)}, {"logits", logits}});
    std::printf("wrote %s (from %s)\n", dir.c_str(), trained);
  }
}

}  // namespace
}  // namespace gptrain
