// Parity with transformers for Llama 3 and Qwen3 (fixtures written by
// tests/tools/gen_llama_qwen_fixtures.py: tiny random LlamaForCausalLM with grouped-query heads and
// llama3 rope scaling, untied; Qwen3ForCausalLM with query/key norms and a head size other than
// width / heads, tied; each also stored in bf16): the model dir loads, and logits, the loss with
// -100 targets, every gradient and the parameters after three AdamW steps match the same model in
// float64; greedy generation with and without the KV cache gives transformers' greedy ids; a dir
// we write holds exactly the file's tensors.
//
// Error model (the one of tests/model/parity_test.cpp): a float32 reduction of length K errs by at
// most gamma_K relative to its sum of absolute terms, carried linearly through the D reduction
// stages of the longest path: per block the two RMSNorms, qkv, (Qwen3: the query/key norms), q.k,
// p.v, o_proj, gate/up and down_proj; then the final norm and the head: D = 8L + 2 (+ L). Each
// rotation adds the rounding of its angle, u |angle| <= u T for T positions, to q and k, and the
// vectorized exp (softmax, sigmoid) 2 ulp per block. Gradients: 2 D.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "generate/engine.h"
#include "io/safetensors.h"
#include "model/model_dir.h"
#include "tests/common/parity.h"
#include "tests/model/hf_test_util.h"
#include "train/adamw.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
using testing_util::kU;

std::vector<int32_t> ids_of(const io::SafeTensorsFile& f, const std::string& name) {
  const io::TensorInfo& info = f.at(name);
  EXPECT_EQ(info.dtype, "I64");
  const std::span<const std::byte> raw = f.raw(name);
  std::vector<int32_t> ids(static_cast<size_t>(info.numel()));
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t v;
    std::memcpy(&v, raw.data() + 8 * i, 8);
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

struct Norms {
  double diff = 0, ref = 0;
};

Norms compare(const std::vector<double>& ours, const std::vector<double>& ref) {
  Norms n;
  EXPECT_EQ(ours.size(), ref.size());
  for (size_t i = 0; i < ours.size() && i < ref.size(); ++i) {
    n.diff += (ours[i] - ref[i]) * (ours[i] - ref[i]);
    n.ref += ref[i] * ref[i];
  }
  n.diff = std::sqrt(n.diff);
  n.ref = std::sqrt(n.ref);
  return n;
}

// Our values of the part of a parameter that file tensor t holds.
std::vector<double> part(const Tensor& param, const CheckpointTensor& t) {
  const bool whole = t.row_offset == 0 && shape_numel(t.shape) == param.numel();
  return (whole ? param : param.slice_rows(t.row_offset, t.row_offset + t.shape[0])).to_doubles();
}

class LlamaQwenParity : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaQwenParity, logits_loss_gradients_adamw_and_greedy_match_transformers) {
  const fs::path dir = fs::path(GPTRAIN_FIXTURES_DIR) / "llama_qwen" / GetParam();
  const std::unique_ptr<Transformer> model = load_model_dir(dir);
  const ModelConfig& c = model->config();
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(dir / "reference.safetensors");
  const int64_t B = std::stoll(f.metadata().at("B")), T = std::stoll(f.metadata().at("T"));
  const std::vector<int32_t> tokens = ids_of(f, "in.tokens"), targets = ids_of(f, "in.targets");

  const int64_t K = std::max<int64_t>({c.mlp_width(), c.emb_dim, c.q_width(), B * T, c.vocab_size}) + 2;
  const double gamma = K * kU / (1 - K * kU);
  const double D = (c.qk_norm ? 9.0 : 8.0) * c.n_layers + 2;
  const double eps_fwd = gamma * D + c.n_layers * (2 * kU * (T + 1) + 4 * kU);
  const double eps_grad = 2 * eps_fwd;

  const double loss = model->forward_loss(tokens, targets, B, T, ForwardOptions{true, 0});
  const Norms nl = compare(model->logits().to_doubles(), f.load_as("ref.logits", DType::F64).to_doubles());
  EXPECT_LE(nl.diff, eps_fwd * nl.ref) << "logits";
  const double ref_loss = f.load_as("ref.loss", DType::F64).to_doubles()[0];
  EXPECT_LE(std::fabs(loss - ref_loss), eps_fwd * std::fabs(ref_loss)) << "loss";
  const Norms n32 = compare(model->logits().to_doubles(), f.load_as("torch32.logits", DType::F64).to_doubles());
  std::printf("[%s] logits: rel error vs float64 %.3g (bound %.3g), vs transformers float32 %.3g; loss %.10f vs %.10f\n",
              GetParam(), nl.diff / nl.ref, eps_fwd, n32.diff / n32.ref, loss, ref_loss);

  // Every gradient, by the file's tensor names (a fused parameter compared part by part).
  model->zero_grads();
  model->backward();
  const std::vector<CheckpointTensor> tensors = checkpoint_tensors(c);
  double worst = 0;
  int compared = 0;
  for (const CheckpointTensor& t : tensors) {
    const Norms n = compare(part(model->params().at(t.param).grad, t), f.load_as("ref.grad." + t.name, DType::F64).to_doubles());
    EXPECT_LE(n.diff, eps_grad * n.ref) << "gradient of " << t.name;
    if (n.ref > 0) worst = std::max(worst, n.diff / n.ref);
    ++compared;
  }
  int in_fixture = 0;  // every parameter the fixture has a gradient of was compared
  for (const io::TensorInfo& info : f.tensors()) in_fixture += info.name.starts_with("ref.grad.");
  EXPECT_EQ(compared, in_fixture);
  std::printf("[%s] %d gradients: largest rel error vs float64 %.3g (bound %.3g)\n", GetParam(), compared, worst, eps_grad);

  // Three AdamW steps on the same batch, as the fixture did (per-element bound of parity_test.cpp).
  const nlohmann::json opt = nlohmann::json::parse(f.metadata().at("adamw"));
  const AdamWOptions o = testing_util::adamw_options(opt);
  AdamW adamw(model->params(), o);
  testing_util::AdamWParityBound bound(o.lr, eps_grad);
  const auto add_step_bound = [&] {
    for (const CheckpointTensor& t : tensors) bound.add_step(t.name, part(model->params().at(t.param).grad, t));
  };
  add_step_bound();
  adamw.step();
  for (int s = 0; s < 2; ++s) {
    model->zero_grads();
    model->forward_loss(tokens, targets, B, T, ForwardOptions{true, 0});
    model->backward();
    add_step_bound();
    adamw.step();
  }
  double worst_update = 0;
  for (const CheckpointTensor& t : tensors) {
    const std::vector<double> ours = part(model->params().at(t.param).value, t),
                              ref = f.load_as("ref.after3." + t.name, DType::F64).to_doubles();
    const int bad = bound.outside(t.name, ours, ref, &worst_update);
    EXPECT_EQ(bad, 0) << t.name << ": parameters after 3 AdamW steps outside the bound";
  }
  std::printf("[%s] after 3 AdamW steps: largest |ours - ref| = %.3g lr\n", GetParam(), worst_update);

  // Greedy: the fixture's model (reloaded), with and without the cache, against transformers.
  const std::unique_ptr<Transformer> fresh = load_model_dir(dir);
  const std::vector<int32_t> prompt = ids_of(f, "gen.prompt"), want = ids_of(f, "gen.greedy");
  GenerateOptions g;
  g.max_new_tokens = static_cast<int64_t>(want.size());
  std::vector<int32_t> cached = generate(*fresh, prompt, g);
  g.kv_cache = false;
  std::vector<int32_t> uncached = generate(*fresh, prompt, g);
  cached.erase(cached.begin(), cached.begin() + static_cast<long>(prompt.size()));
  uncached.erase(uncached.begin(), uncached.begin() + static_cast<long>(prompt.size()));
  EXPECT_EQ(cached, want) << "cached greedy against transformers' generate (smallest top-2 gap "
                          << f.metadata().at("greedy_min_margin") << ")";
  EXPECT_EQ(uncached, want);
}

// What we write holds exactly the tensors transformers wrote, in name, shape and value (f32), and
// reads back as the same model.
TEST_P(LlamaQwenParity, a_model_dir_we_write_has_the_files_tensors) {
  const fs::path dir = fs::path(GPTRAIN_FIXTURES_DIR) / "llama_qwen" / GetParam();
  const std::unique_ptr<Transformer> model = load_model_dir(dir);
  const testing_util::TempDir tmp;
  save_model_dir(*model, tmp / "m");
  const io::SafeTensorsFile theirs = io::SafeTensorsFile::open(dir / "model.safetensors");
  const io::SafeTensorsFile ours = io::SafeTensorsFile::open(tmp / "m" / "model.safetensors");
  std::set<std::string> a, b;
  for (const io::TensorInfo& t : theirs.tensors()) a.insert(t.name);
  for (const io::TensorInfo& t : ours.tensors()) b.insert(t.name);
  EXPECT_EQ(a, b);
  for (const io::TensorInfo& t : theirs.tensors()) {
    if (!b.count(t.name)) continue;
    EXPECT_EQ(ours.at(t.name).shape, t.shape) << t.name;
    EXPECT_EQ(ours.load(t.name).to_vector(), theirs.load(t.name).to_vector()) << t.name;  // bf16 -> f32 is exact
  }
  const std::unique_ptr<Transformer> back = load_model_dir(tmp / "m");
  EXPECT_TRUE(back->config().same_model(model->config()));
  EXPECT_EQ(read_model_config(tmp / "m").family, model->config().family);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LlamaQwenParity,
                         ::testing::Values("llama_gqa_scaled", "llama_bf16", "qwen3_tied", "qwen3_bf16"));

}  // namespace
}  // namespace gptrain
