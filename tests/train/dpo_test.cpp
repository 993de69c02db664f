// DPO (train/dpo.h, data/preference_data.h) against the book's PyTorch code on a tiny-model fixture
// (tests/fixtures/dpo from tests/tools/gen_dpo_fixtures.py): four real pairs of
// instruction-data-with-preference.json tokenized and collated as the book's PreferenceDataset and
// custom_collate_fn (our tokens, batch and masks must equal its exactly), a policy and a different
// reference model, and the loss, rewards, log-probabilities and every gradient for both
// log-probability reductions (the book's mean, the paper's sum).
//
// Bounds. A row's log-probability lp is a mean (or sum) of per-token cross-entropies, computed in
// float32 within eps_fwd |lp| of the exact value, where eps_fwd = gamma_K D (tests/model/
// parity_test.cpp: gamma_K = K u / (1 - K u), u = 2^-24, K = max(4C, T, B T), D = 6 L + 3). Then:
// - each reward (a mean of lp_policy - lp_reference) is within eps_fwd * mean(|lp_p| + |lp_r|);
// - z = (pc - pr) - (rc - rr) is within dz = eps_fwd (|pc| + |pr| + |rc| + |rr|), and the loss, a
//   mean of softplus(-beta z) whose derivative is at most beta in size, within beta * mean(dz);
// - the gradient is sum_r w_r g_r, with g_r the gradient of row r's log-probability and
//   w_r = d loss / d lp_r = -+beta sigmoid(-beta z) / P. Each g_r carries the model's backward bound
//   eps_grad ||g_r|| (eps_grad = 2 gamma_K D), and each w_r a relative error of at most beta dz (the
//   sigmoid's relative change), so ||grad - ref|| <= (eps_grad + beta max dz) * sum_r |w_r| ||g_r||,
//   with the g_r computed here in float64, one row at a time.
// The float64 path (our reference kernels) must equal the fixture's float64 values to their
// float32 rounding: |ours - ref| <= u |ref| per element, plus 1e-12 of the tensor's norm.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/preference_data.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "train/dpo.h"
#include "util/error.h"

namespace gptrain {
namespace {

namespace fs = std::filesystem;
constexpr double kU = 0x1.0p-24;
constexpr double kBeta = 0.1;

std::vector<int32_t> ids_of(const io::SafeTensorsFile& f, const std::string& name) {
  std::vector<int32_t> out;
  for (float v : f.load(name).to_vector()) out.push_back(static_cast<int32_t>(v));
  return out;
}

std::vector<double> doubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i)
    out[static_cast<size_t>(i)] = t.dtype() == DType::F64 ? t.data<double>()[i] : t.data<float>()[i];
  return out;
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

struct Fixture {
  io::SafeTensorsFile f;
  nlohmann::json meta_entries, cfg_json, variants;
  ModelConfig cfg;
  std::map<int32_t, int32_t> compact;

  Fixture() : f(io::SafeTensorsFile::open(fs::path(GPTRAIN_FIXTURES_DIR) / "dpo" / "dpo_book.safetensors")) {
    meta_entries = nlohmann::json::parse(f.metadata().at("entries"));
    cfg_json = nlohmann::json::parse(f.metadata().at("config"));
    variants = nlohmann::json::parse(f.metadata().at("variants"));
    cfg.vocab_size = cfg_json["vocab_size"];
    cfg.context_length = cfg_json["context_length"];
    cfg.emb_dim = cfg_json["emb_dim"];
    cfg.n_heads = cfg_json["n_heads"];
    cfg.n_layers = cfg_json["n_layers"];
    cfg.drop_rate = cfg_json["drop_rate"];
    cfg.qkv_bias = cfg_json["qkv_bias"];
    cfg.tie_weights = cfg_json["tie_weights"];
    const std::vector<int32_t> vocab_map = ids_of(f, "vocab_map");
    for (size_t i = 0; i < vocab_map.size(); ++i) compact[vocab_map[i]] = static_cast<int32_t>(i);
  }

  std::unique_ptr<Transformer> model(const std::string& prefix, DType dtype) const {
    auto m = std::make_unique<Transformer>(cfg, std::nullopt, dtype);
    for (Parameter& p : m->params().all()) f.load_into(prefix + p.name, p.value);
    return m;
  }

  std::vector<data::PreferenceExample> examples() const {
    std::vector<data::PreferenceExample> out;
    const auto prompt_lengths = nlohmann::json::parse(f.metadata().at("prompt_lengths"));
    for (size_t i = 0; i < meta_entries.size(); ++i) {
      data::PreferenceExample e;
      e.chosen = ids_of(f, "entry." + std::to_string(i) + ".chosen");
      e.rejected = ids_of(f, "entry." + std::to_string(i) + ".rejected");
      e.masked_prefix = prompt_lengths[i].get<int64_t>() + 2;
      e.index = static_cast<int64_t>(i);
      out.push_back(e);
    }
    return out;
  }

  // Our collate of the four pairs under a variant, in the compact vocabulary.
  Batch batch(const std::string& variant, const std::vector<data::PreferenceExample>& ex) const {
    const auto& v = variants.at(variant);
    data::PreferenceCollate o;
    o.max_length = v["allowed_max_length"].is_null() ? 0 : v["allowed_max_length"].get<int64_t>();
    std::vector<const data::PreferenceExample*> rows;
    std::vector<int64_t> idx;
    for (const auto& e : ex) {
      rows.push_back(&e);
      idx.push_back(static_cast<int64_t>(idx.size()));
    }
    data::PreferenceBatch pb;
    data::collate_preferences(rows, idx, o, pb);
    Batch b;
    b.B = 2 * pb.pairs;
    b.T = pb.T;
    for (int32_t t : pb.inputs) b.inputs.push_back(compact.at(t));
    for (int32_t t : pb.targets) b.targets.push_back(t < 0 ? t : compact.at(t));
    b.examples = pb.examples;
    return b;
  }
};

TEST(DpoParity, tokens_and_collate_equal_the_books) {
  const Fixture fx;
  const std::vector<data::PreferenceExample> ex = fx.examples();
  const char* data_dir = std::getenv("GPTRAIN_TEST_DATA_DIR");
  if (data_dir && fs::exists(fs::path(data_dir) / "gpt2_tokenizer" / "encoder.json")) {
    const Tokenizer tok = Tokenizer::from_dir(fs::path(data_dir) / "gpt2_tokenizer");
    for (size_t i = 0; i < fx.meta_entries.size(); ++i) {
      data::PreferenceEntry p;
      p.entry.instruction = fx.meta_entries[i]["instruction"];
      p.entry.input = fx.meta_entries[i]["input"];
      p.chosen = fx.meta_entries[i]["chosen"];
      p.rejected = fx.meta_entries[i]["rejected"];
      const data::PreferenceExample ours = data::tokenize_preference(tok, p);
      EXPECT_EQ(ours.chosen, ex[i].chosen) << "entry " << i;
      EXPECT_EQ(ours.rejected, ex[i].rejected) << "entry " << i;
      EXPECT_EQ(ours.masked_prefix, ex[i].masked_prefix) << "entry " << i;
    }
  } else {
    std::printf("(no GPT-2 vocabulary in $GPTRAIN_TEST_DATA_DIR: tokenization not compared)\n");
  }
  // The book's padded tensors and masks, in a forward pass's terms.
  for (const std::string variant : {"full", "cut"}) {
    const auto& v = fx.variants.at(variant);
    data::PreferenceCollate o;
    o.max_length = v["allowed_max_length"].is_null() ? 0 : v["allowed_max_length"].get<int64_t>();
    std::vector<const data::PreferenceExample*> rows;
    for (const auto& e : ex) rows.push_back(&e);
    const std::vector<int64_t> idx = {0, 1, 2, 3};
    data::PreferenceBatch b;
    data::collate_preferences(rows, idx, o, b);
    const std::vector<int64_t> shape = fx.f.load(variant + ".chosen").shape();
    const int64_t P = shape[0], L = shape[1];
    ASSERT_EQ(b.pairs, P);
    ASSERT_EQ(b.T, L - 1) << variant;
    for (int side = 0; side < 2; ++side) {
      const std::string name = variant + (side == 0 ? ".chosen" : ".rejected");
      const std::vector<int32_t> ids = ids_of(fx.f, name), mask = ids_of(fx.f, name + "_mask");
      for (int64_t p = 0; p < P; ++p)
        for (int64_t t = 0; t < L - 1; ++t) {
          const size_t row = static_cast<size_t>((side * P + p) * (L - 1) + t);
          EXPECT_EQ(b.inputs[row], ids[static_cast<size_t>(p * L + t)]) << name << " row " << p << " position " << t;
          const int32_t label = mask[static_cast<size_t>(p * L + t + 1)] ? ids[static_cast<size_t>(p * L + t + 1)] : -100;
          EXPECT_EQ(b.targets[row], label) << name << " row " << p << " label position " << t + 1;
        }
    }
  }
}

class DpoParity : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(DpoParity, loss_rewards_and_gradients_match_pytorch) {
  const auto [variant_c, reduction_c] = GetParam();
  const std::string variant = variant_c, reduction_name = reduction_c;
  const dpo::Reduction reduction = dpo::parse_reduction(reduction_name);
  const Fixture fx;
  const Batch b = fx.batch(variant, fx.examples());
  const std::string pre = variant + "." + reduction_name + ".";
  const auto stored = [&](const std::string& prefix, const std::string& name) {
    return doubles(fx.f.load(pre + prefix + "." + name));
  };
  const int64_t P = b.B / 2;

  const int64_t K = std::max<int64_t>(4 * fx.cfg.emb_dim, std::max(b.T, b.B * b.T));
  const double gamma = K * kU / (1 - K * kU);
  const double D = 6.0 * fx.cfg.n_layers + 3;
  const double eps_fwd = gamma * D, eps_grad = gamma * 2 * D;

  for (DType dtype : {DType::F64, DType::F32}) {
    const bool f64 = dtype == DType::F64;
    SCOPED_TRACE(f64 ? "float64" : "float32");
    std::unique_ptr<Transformer> policy = fx.model("param.", dtype), ref_model = fx.model("refparam.", dtype);
    ref_model->set_trainable_all(false);
    std::unique_ptr<dpo::Reference> reference = dpo::model_reference(*ref_model, "the fixture's reference");
    const std::vector<double> ref_lp = dpo::logprobs(reference->sums(b, "batch"), reduction);
    BatchWorkspace ws;
    policy->zero_grads();
    const dpo::BatchResult r =
        dpo::policy_pass(*policy, ws, b, ref_lp, kBeta, reduction, ForwardOptions{true, 0}, true, 1.0f);
    BatchWorkspace ws2;
    policy->forward_loss(ws2, b.inputs, b.targets, b.B, b.T, ForwardOptions{});
    const std::vector<double> pol_lp = dpo::logprobs(dpo::row_sums(ws2.losses, b.targets, b.B, b.T), reduction);

    const std::vector<double> want_pc = stored("ref", "policy_chosen"), want_pr = stored("ref", "policy_rejected");
    const std::vector<double> want_rc = stored("ref", "reference_chosen"), want_rr = stored("ref", "reference_rejected");
    double mean_dz = 0, max_dz = 0, reward_bound[2] = {0, 0};
    for (int64_t i = 0; i < P; ++i) {
      const size_t c = static_cast<size_t>(i), rj = static_cast<size_t>(P + i);
      const double lps[4] = {pol_lp[c], pol_lp[rj], ref_lp[c], ref_lp[rj]};
      const double want[4] = {want_pc[c], want_pr[c], want_rc[c], want_rr[c]};
      for (int k = 0; k < 4; ++k) {
        const double bound = f64 ? kU * std::fabs(want[k]) + 1e-12 : eps_fwd * std::fabs(want[k]);
        EXPECT_LE(std::fabs(lps[k] - want[k]), bound) << "pair " << i << " log-probability " << k;
      }
      const double dz = eps_fwd * (std::fabs(want[0]) + std::fabs(want[1]) + std::fabs(want[2]) + std::fabs(want[3]));
      mean_dz += dz / static_cast<double>(P);
      max_dz = std::max(max_dz, dz);
      reward_bound[0] += eps_fwd * (std::fabs(want[0]) + std::fabs(want[2])) / static_cast<double>(P);
      reward_bound[1] += eps_fwd * (std::fabs(want[1]) + std::fabs(want[3])) / static_cast<double>(P);
    }
    const double want_loss = stored("ref", "loss")[0];
    const double want_chosen = stored("ref", "chosen_rewards")[0], want_rejected = stored("ref", "rejected_rewards")[0];
    // float64: the fixture's values are float32 roundings of the exact ones (the rewards' too,
    // a difference of nearby log-probabilities: their rounding error is u |lp|, not u |reward|).
    EXPECT_LE(std::fabs(r.loss - want_loss), f64 ? kU * want_loss + 1e-12 : kBeta * mean_dz) << "loss";
    EXPECT_LE(std::fabs(r.rewards.chosen - want_chosen),
              f64 ? kU * std::fabs(want_chosen) + 1e-12 : reward_bound[0]) << "chosen reward";
    EXPECT_LE(std::fabs(r.rewards.rejected - want_rejected),
              f64 ? kU * std::fabs(want_rejected) + 1e-12 : reward_bound[1]) << "rejected reward";

    // sum_r |w_r| ||g_r||, in float64 one row at a time (w_r from the float64 pair loss).
    double weighted = 0;
    if (!f64) {
      std::unique_ptr<Transformer> p64 = fx.model("param.", DType::F64), r64 = fx.model("refparam.", DType::F64);
      BatchWorkspace w64, rw64;
      r64->forward_loss(rw64, b.inputs, b.targets, b.B, b.T, ForwardOptions{});
      const std::vector<double> rl = dpo::logprobs(dpo::row_sums(rw64.losses, b.targets, b.B, b.T), reduction);
      p64->forward_loss(w64, b.inputs, b.targets, b.B, b.T, ForwardOptions{true, 0});
      const dpo::RowSums sums = dpo::row_sums(w64.losses, b.targets, b.B, b.T);
      const dpo::PairLoss pl = dpo::pair_loss(dpo::logprobs(sums, reduction), rl, kBeta);
      for (int64_t row = 0; row < b.B; ++row) {
        std::vector<double> w(static_cast<size_t>(b.B * b.T), 0.0);
        const double graded = static_cast<double>(sums.graded[static_cast<size_t>(row)]);
        const double scale = reduction == dpo::Reduction::Mean ? 1.0 / graded : 1.0;
        for (int64_t t = 0; t < b.T; ++t)
          if (b.targets[static_cast<size_t>(row * b.T + t)] != -100) w[static_cast<size_t>(row * b.T + t)] = -scale;
        p64->zero_grads();
        p64->backward_rows(w64, w);
        weighted += std::fabs(pl.d_policy[static_cast<size_t>(row)]) * norm(doubles(p64->params().flat_grads()));
      }
    }
    double worst = 0, worst_bound = 0;
    std::string worst_name;
    for (const Parameter& p : policy->params().all()) {
      const std::vector<double> g = doubles(p.grad), want = stored("ref", "grad." + p.name);
      if (f64) {
        for (size_t i = 0; i < g.size(); ++i)
          EXPECT_LE(std::fabs(g[i] - want[i]), kU * std::fabs(want[i]) + 1e-12 * norm(want))
              << "gradient of " << p.name << " [" << i << "]";
        continue;
      }
      std::vector<double> diff(g.size());
      for (size_t i = 0; i < g.size(); ++i) diff[i] = g[i] - want[i];
      const double err = norm(diff), bound = (eps_grad + kBeta * max_dz) * weighted;
      EXPECT_LE(err, bound) << "gradient of " << p.name;
      if (err / norm(want) > worst) {
        worst = err / norm(want);
        worst_bound = bound / norm(want);
        worst_name = p.name;
      }
    }
    if (!f64)
      std::printf("[%s/%s] P=%lld T=%lld: loss %.10f vs float64 %.10f (diff %.2g, bound %.2g), torch float32 %.10f; "
                  "rewards %.6f / %.6f vs %.6f / %.6f; largest relative gradient error %.3g (%s; its bound %.3g)\n",
                  variant.c_str(), reduction_name.c_str(), static_cast<long long>(P), static_cast<long long>(b.T),
                  r.loss, want_loss, std::fabs(r.loss - want_loss), kBeta * mean_dz, stored("torch32", "loss")[0],
                  r.rewards.chosen, r.rewards.rejected, want_chosen, want_rejected, worst, worst_name.c_str(),
                  worst_bound);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixture, DpoParity,
                         ::testing::Combine(::testing::Values("full", "cut"), ::testing::Values("mean", "sum")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

// The gradient policy_pass accumulates is the derivative of the loss it returns: central finite
// differences in float64 at parameters of every kind, for both reductions.
TEST(Dpo, gradient_equals_finite_differences_in_double) {
  const Fixture fx;
  const Batch b = fx.batch("cut", fx.examples());
  std::unique_ptr<Transformer> ref_model = fx.model("refparam.", DType::F64);
  for (dpo::Reduction reduction : {dpo::Reduction::Mean, dpo::Reduction::Sum}) {
    std::unique_ptr<Transformer> policy = fx.model("param.", DType::F64);
    const std::vector<double> ref_lp =
        dpo::logprobs(dpo::model_reference(*ref_model, "r")->sums(b, "b"), reduction);
    BatchWorkspace ws;
    const auto loss = [&] {
      return dpo::policy_pass(*policy, ws, b, ref_lp, kBeta, reduction, ForwardOptions{}, false, 0).loss;
    };
    policy->zero_grads();
    dpo::policy_pass(*policy, ws, b, ref_lp, kBeta, reduction, ForwardOptions{true, 0}, true, 0.5f);
    int checked = 0;
    for (const Parameter& p : policy->params().all()) {
      for (int64_t i : {int64_t{0}, p.value.numel() / 2, p.value.numel() - 1}) {
        double& x = p.value.data<double>()[i];
        const double x0 = x, h = 1e-5;
        x = x0 + h;
        const double up = loss();
        x = x0 - h;
        const double down = loss();
        x = x0;
        const double fd = 0.5 * (up - down) / (2 * h);  // share 0.5
        const double g = p.grad.data<double>()[i];
        // Central differences err by O(h^2 f''') plus rounding u_64 |f| / h: about 1e-10 here.
        EXPECT_NEAR(g, fd, 1e-8 + 1e-6 * std::fabs(fd)) << p.name << "[" << i << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 50);
  }
}

// The pair loss at z = 0 is ln 2 exactly, its rewards 0; and its formula away from 0, both ways.
TEST(Dpo, pair_loss_is_ln2_when_policy_equals_reference) {
  const std::vector<double> lp = {-4.5, -3.25, -5.0, -2.0};
  const dpo::PairLoss same = dpo::pair_loss(lp, lp, 0.1);
  EXPECT_EQ(same.loss, std::log(2.0));
  EXPECT_EQ(same.rewards.chosen, 0.0);
  EXPECT_EQ(same.rewards.rejected, 0.0);
  const std::vector<double> ref = {-4.0, -4.0, -4.0, -4.0};
  const dpo::PairLoss pl = dpo::pair_loss(lp, ref, 0.5);
  for (int i = 0; i < 2; ++i) {
    const double z = (lp[i] - lp[2 + i]) - 0.0;
    EXPECT_NEAR(pl.d_policy[i], -0.5 / (1 + std::exp(0.5 * z)) / 2, 1e-15);
    EXPECT_NEAR(pl.d_policy[2 + i], 0.5 / (1 + std::exp(0.5 * z)) / 2, 1e-15);
  }
  const double z0 = (-4.5 + 5.0), z1 = (-3.25 + 2.0);
  EXPECT_NEAR(pl.loss, (std::log1p(std::exp(-0.5 * z0)) + std::log1p(std::exp(-0.5 * z1))) / 2, 1e-15);
  // Far from 0 neither branch overflows.
  const std::vector<double> far = {1e4, -1e4};
  EXPECT_TRUE(std::isfinite(dpo::pair_loss(far, std::vector<double>{0, 0}, 1.0).loss));
  EXPECT_TRUE(std::isfinite(dpo::pair_loss(std::vector<double>{-1e4, 1e4}, std::vector<double>{0, 0}, 1.0).loss));
}

// Bad preference files: each error names the file, the entry (index and line) and the field.
TEST(PreferenceData, bad_entries_are_refused_by_name) {
  const fs::path dir = fs::temp_directory_path() / "gptrain_pref_test";
  fs::create_directories(dir);
  const auto expect_error = [&](const std::string& text, const std::string& want) {
    const fs::path p = dir / "pairs.json";
    std::ofstream(p) << text;
    try {
      data::load_preference_file(p);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(want), std::string::npos) << msg;
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    }
  };
  const std::string ok = R"({"instruction": "Say hi.", "input": "", "chosen": "Hello!", "rejected": "Go away."})";
  expect_error("[" + ok + ",\n" + R"({"instruction": "x", "input": "", "rejected": "No."})" + "]",
               ":2: entry 1 (counting from 0) has no \"chosen\" field");
  expect_error("[" + ok + ",\n" + R"({"instruction": "x", "input": "", "chosen": "Yes."})" + "]",
               "entry 1 (counting from 0) has no \"rejected\" field");
  expect_error("[" + ok + ",\n\n" + R"({"instruction": "x", "input": "", "chosen": "", "rejected": "No."})" + "]",
               ":3: entry 1 (counting from 0): \"chosen\" is an empty response");
  expect_error("[" + ok + ",\n" + R"({"instruction": "x", "input": "", "chosen": "Yes.", "rejected": " \n"})" + "]",
               "\"rejected\" is an empty response (only whitespace)");
  expect_error("[" + ok + ",\n" + R"({"instruction": "x", "input": "", "chosen": 3, "rejected": "No."})" + "]",
               "\"chosen\" is a number, expected a string");
  const fs::path p = dir / "pairs.jsonl";
  std::ofstream(p) << ok << "\n" << ok << "\n";
  EXPECT_EQ(data::load_preference_file(p).size(), 2u);
  fs::remove_all(dir);
}

// A pair whose prompt fills --max-length keeps no response token: refused, naming the entry.
TEST(PreferenceData, a_pair_without_response_tokens_is_refused) {
  data::PreferenceExample e;
  e.chosen = {1, 2, 3, 4, 5, 6};
  e.rejected = {1, 2, 3, 4, 7};
  e.masked_prefix = 4;
  e.index = 7;
  e.line = 9;
  EXPECT_EQ(data::graded_tokens(e.chosen, e.masked_prefix, 0, true), 2);
  EXPECT_EQ(data::graded_tokens(e.chosen, e.masked_prefix, 5, true), 1);
  EXPECT_EQ(data::graded_tokens(e.chosen, e.masked_prefix, 5, false), 4);
  EXPECT_NO_THROW(data::check_graded({e}, 5, true, "pairs.json"));
  try {
    data::check_graded({e}, 4, true, "pairs.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("pairs.json:9: entry 7 (counting from 0): the \"chosen\" sequence keeps no "
                                           "response token"),
              std::string::npos)
        << err.what();
  }
}

}  // namespace
}  // namespace gptrain
