// Instruction finetuning against PyTorch (fixture from tests/tools/gen_instruct_fixtures.py): four
// real entries of instruction-data.json, tokenized (tiktoken), collated by the book's
// custom_collate_fn with the prompt masked (and, in a second variant, unmasked and cut by
// allowed_max_length); our tokenizer and collate must give the same inputs and targets exactly, and
// the book's GPTModel's masked loss and every gradient must match within the float32 error bound
// derived in tests/model/parity_test.cpp:
//   ||loss - ref|| <= gamma_K * D * |ref|,  ||grad - ref|| <= gamma_K * 2D * ||ref||  per tensor,
// with gamma_K = K u / (1 - K u), u = 2^-24, K = max(4C, T, B*T), D = 6 L + 3.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "data/instruction_data.h"
#include "io/safetensors.h"
#include "model/transformer.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
constexpr double kU = 0x1.0p-24;

std::vector<int32_t> ids_of(const io::SafeTensorsFile& f, const std::string& name) {
  std::vector<int32_t> out;
  for (float v : f.load(name).to_vector()) out.push_back(static_cast<int32_t>(v));
  return out;
}

double rel_norm_error(const std::vector<float>& ours, const std::vector<float>& ref, double* ref_norm = nullptr) {
  double d = 0, r = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    d += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
    r += double(ref[i]) * ref[i];
  }
  if (ref_norm) *ref_norm = std::sqrt(r);
  return r > 0 ? std::sqrt(d / r) : std::sqrt(d);
}

class InstructParity : public ::testing::TestWithParam<const char*> {};

TEST_P(InstructParity, collate_loss_and_gradients_match_pytorch) {
  const std::string variant = GetParam();
  const io::SafeTensorsFile f =
      io::SafeTensorsFile::open(fs::path(GPTRAIN_FIXTURES_DIR) / "instruct" / "instruct_collate.safetensors");
  const auto meta_entries = nlohmann::json::parse(f.metadata().at("entries"));
  const auto prompt_lengths = nlohmann::json::parse(f.metadata().at("prompt_lengths"));
  const auto variants = nlohmann::json::parse(f.metadata().at("variants"));
  const auto& v = variants.at(variant);

  // Token ids: tiktoken's from the fixture; ours must equal them when the vocabulary is at hand.
  std::vector<data::InstructionEntry> entries;
  std::vector<data::TokenizedExample> examples;
  for (size_t i = 0; i < meta_entries.size(); ++i) {
    data::InstructionEntry e;
    e.instruction = meta_entries[i]["instruction"];
    e.input = meta_entries[i]["input"];
    e.output = meta_entries[i]["output"];
    entries.push_back(e);
    data::TokenizedExample ex;
    ex.ids = ids_of(f, "entry." + std::to_string(i) + ".ids");
    ex.prompt_tokens = prompt_lengths[i];
    examples.push_back(ex);
  }
  const char* data_dir = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (data_dir && fs::exists(fs::path(data_dir) / "gpt2_tokenizer" / "encoder.json")) {
    const Tokenizer tok = Tokenizer::from_dir(fs::path(data_dir) / "gpt2_tokenizer");
    for (size_t i = 0; i < entries.size(); ++i) {
      const data::TokenizedExample ours = data::tokenize_example(tok, entries[i]);
      EXPECT_EQ(ours.ids, examples[i].ids) << "entry " << i;
      EXPECT_EQ(ours.prompt_tokens, examples[i].prompt_tokens) << "entry " << i;
      EXPECT_TRUE(ours.prompt_aligned);
    }
  } else {
    std::printf("(no GPT-2 vocabulary in $GPTRAIN_TEST_DATA_DIR: tokenization not compared)\n");
  }

  // Collate: inputs and targets exactly as the book's function (with exercise 7.2 masking).
  data::CollateOptions o;
  o.mask_prompt = v["mask_prompt"];
  o.max_length = v["allowed_max_length"].is_null() ? 0 : v["allowed_max_length"].get<int64_t>();
  std::vector<const data::TokenizedExample*> rows;
  for (const auto& e : examples) rows.push_back(&e);
  data::CollatedBatch b;
  data::collate(rows, o, b);
  const std::vector<int64_t> shape = f.load(variant + ".inputs").shape();
  ASSERT_EQ(b.B, shape[0]);
  ASSERT_EQ(b.T, shape[1]);
  EXPECT_EQ(b.inputs, ids_of(f, variant + ".inputs"));
  EXPECT_EQ(b.targets, ids_of(f, variant + ".targets"));

  // The model works in the fixture's compact vocabulary: real id -> its rank in vocab_map.
  std::map<int32_t, int32_t> compact;
  const std::vector<int32_t> vocab_map = ids_of(f, "vocab_map");
  for (size_t i = 0; i < vocab_map.size(); ++i) compact[vocab_map[i]] = static_cast<int32_t>(i);
  std::vector<int32_t> inputs, targets;
  for (int32_t t : b.inputs) inputs.push_back(compact.at(t));
  for (int32_t t : b.targets) targets.push_back(t < 0 ? t : compact.at(t));

  const auto cfg_json = nlohmann::json::parse(f.metadata().at("config"));
  ModelConfig cfg;
  cfg.vocab_size = cfg_json["vocab_size"];
  cfg.context_length = cfg_json["context_length"];
  cfg.emb_dim = cfg_json["emb_dim"];
  cfg.n_heads = cfg_json["n_heads"];
  cfg.n_layers = cfg_json["n_layers"];
  cfg.drop_rate = cfg_json["drop_rate"];
  cfg.qkv_bias = cfg_json["qkv_bias"];
  cfg.tie_weights = cfg_json["tie_weights"];
  Transformer model(cfg);
  for (Parameter& p : model.params().all()) f.load_into("param." + p.name, p.value);

  const int64_t K = std::max<int64_t>(4 * cfg.emb_dim, std::max(b.T, b.B * b.T));
  const double gamma = K * kU / (1 - K * kU);
  const double D = 6.0 * cfg.n_layers + 3;
  const double eps_fwd = gamma * D, eps_grad = gamma * 2 * D;

  const double loss = model.forward_loss(inputs, targets, b.B, b.T, ForwardOptions{true, 0});
  const double ref_loss = f.load(variant + ".ref.loss")[0], t32_loss = f.load(variant + ".torch32.loss")[0];
  EXPECT_LE(std::fabs(loss - ref_loss), eps_fwd * std::fabs(ref_loss));
  int64_t graded = 0;
  for (int32_t t : targets) graded += t != -100;
  EXPECT_EQ(model.targets_counted(), graded);
  model.zero_grads();
  model.backward();
  double worst = 0, worst32 = 0;
  std::string worst_name;
  for (const Parameter& p : model.params().all()) {
    const auto g = p.grad.to_vector();
    double ref_norm = 0;
    const double err = rel_norm_error(g, f.load(variant + ".ref.grad." + p.name).to_vector(), &ref_norm);
    EXPECT_LE(err, eps_grad) << "gradient of " << p.name;
    if (err > worst) {
      worst = err;
      worst_name = p.name;
    }
    worst32 = std::max(worst32, rel_norm_error(g, f.load(variant + ".torch32.grad." + p.name).to_vector()));
  }
  std::printf("[%s] B=%lld T=%lld, %lld graded targets; loss %.10f vs float64 %.10f (rel %.3g, bound %.3g), torch "
              "float32 %.10f; gradients: largest rel norm error vs float64 %.3g (%s; bound %.3g), vs torch float32 "
              "%.3g\n",
              variant.c_str(), static_cast<long long>(b.B), static_cast<long long>(b.T), static_cast<long long>(graded),
              loss, ref_loss, std::fabs(loss - ref_loss) / ref_loss, eps_fwd, t32_loss, worst, worst_name.c_str(),
              eps_grad, worst32);
}

INSTANTIATE_TEST_SUITE_P(Fixture, InstructParity, ::testing::Values("masked", "book_cut"));

}  // namespace
}  // namespace gptrain
