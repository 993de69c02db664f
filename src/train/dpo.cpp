#include "train/dpo.h"

#include <fmt/core.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "data/text_file.h"
#include "io/atomic_file.h"
#include "util/error.h"

namespace gptrain::dpo {

Reduction parse_reduction(const std::string& name) {
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  fail("--logprob must be mean (the book's) or sum (the DPO paper's and TRL's), got '{}'", name);
}

RowSums row_sums(const Tensor& device_losses, std::span<const int32_t> targets, int64_t rows, int64_t T) {
  const Tensor losses = device_losses.host();
  GPTRAIN_CHECK(losses.numel() == rows * T && static_cast<int64_t>(targets.size()) == rows * T,
                "row_sums: {} losses and {} targets for {} rows of {}", losses.numel(), targets.size(), rows, T);
  RowSums s;
  s.sum.assign(static_cast<size_t>(rows), 0.0);
  s.graded.assign(static_cast<size_t>(rows), 0);
  const bool f64 = losses.dtype() == DType::F64;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = r * T + t;
      if (targets[static_cast<size_t>(i)] == -100) continue;
      const double ce = f64 ? losses.data<double>()[i] : static_cast<double>(losses.data<float>()[i]);
      s.sum[static_cast<size_t>(r)] -= ce;
      ++s.graded[static_cast<size_t>(r)];
    }
  return s;
}

std::vector<double> logprobs(const RowSums& s, Reduction reduction) {
  std::vector<double> out(s.sum.size());
  for (size_t r = 0; r < out.size(); ++r) {
    GPTRAIN_CHECK(s.graded[r] > 0, "a preference row without graded tokens");
    out[r] = reduction == Reduction::Sum ? s.sum[r] : s.sum[r] / static_cast<double>(s.graded[r]);
  }
  return out;
}

PairLoss pair_loss(std::span<const double> policy, std::span<const double> reference, double beta) {
  GPTRAIN_CHECK(policy.size() == reference.size() && policy.size() % 2 == 0 && !policy.empty(),
                "pair_loss: {} policy and {} reference rows", policy.size(), reference.size());
  const size_t P = policy.size() / 2;
  PairLoss out;
  out.d_policy.assign(policy.size(), 0.0);
  const double n = static_cast<double>(P);
  for (size_t i = 0; i < P; ++i) {
    const double pc = policy[i], pr = policy[P + i], rc = reference[i], rr = reference[P + i];
    const double z = (pc - pr) - (rc - rr);
    const double x = beta * z;
    // -logsigmoid(x) = log(1 + e^-x), without overflow either way; exactly ln 2 at x = 0.
    out.loss += (x >= 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x))) / n;
    // d/dz = -beta sigmoid(-x)
    const double sig = x >= 0 ? std::exp(-x) / (1 + std::exp(-x)) : 1 / (1 + std::exp(x));
    out.d_policy[i] = -beta * sig / n;
    out.d_policy[P + i] = beta * sig / n;
    out.rewards.chosen += (pc - rc) / n;
    out.rewards.rejected += (pr - rr) / n;
  }
  return out;
}

namespace {

class ModelReference : public Reference {
 public:
  ModelReference(const Transformer& model, std::string description, bool without_adapters, BatchWorkspace* workspace)
      : model_(model), description_(std::move(description)), without_adapters_(without_adapters),
        ws_(workspace ? workspace : &own_) {}
  RowSums sums(const Batch& b, const std::string&) override {
    ForwardOptions fo;
    fo.without_adapters = without_adapters_;
    model_.forward_loss(*ws_, b.inputs, b.targets, b.B, b.T, fo);
    return row_sums(ws_->losses, b.targets, b.B, b.T);
  }
  std::string describe() const override { return description_; }

 private:
  const Transformer& model_;
  std::string description_;
  bool without_adapters_;
  BatchWorkspace own_;
  BatchWorkspace* ws_;
};

class FrozenReference : public ModelReference {
 public:
  FrozenReference(std::unique_ptr<Transformer> model, std::string source, BatchWorkspace* workspace)
      : ModelReference(*model, "a frozen copy of " + source + " (no gradient work)", false, workspace),
        owned_(std::move(model)) {
    owned_->set_trainable_all(false);  // no gradient buffer
  }

 private:
  std::unique_ptr<Transformer> owned_;
};

class TableReference : public Reference {
 public:
  explicit TableReference(ReferenceTable t) : t_(std::move(t)) {}
  RowSums sums(const Batch& b, const std::string& key) override {
    const auto it = t_.find(key);
    GPTRAIN_CHECK(it != t_.end(), "the precomputed reference has no batch {}", key);
    GPTRAIN_CHECK(static_cast<int64_t>(it->second.sum.size()) == b.B, "precomputed batch {}: {} rows, the batch has {}",
                  key, it->second.sum.size(), b.B);
    return it->second;
  }
  std::string describe() const override {
    return fmt::format("log-probabilities of the run's {} batches precomputed before training (no second copy)",
                       t_.size());
  }

 private:
  ReferenceTable t_;
};

}  // namespace

std::unique_ptr<Reference> model_reference(const Transformer& model, std::string description, bool without_adapters,
                                           BatchWorkspace* workspace) {
  return std::make_unique<ModelReference>(model, std::move(description), without_adapters, workspace);
}
std::unique_ptr<Reference> frozen_reference(std::unique_ptr<Transformer> model, std::string source,
                                            BatchWorkspace* workspace) {
  return std::make_unique<FrozenReference>(std::move(model), std::move(source), workspace);
}
std::unique_ptr<Reference> precomputed_reference(ReferenceTable table) {
  return std::make_unique<TableReference>(std::move(table));
}

void save_reference_table(const std::filesystem::path& path, const ReferenceTable& t, const std::string& identity) {
  nlohmann::json batches = nlohmann::json::object();
  for (const auto& [key, s] : t) batches[key] = {{"sum", s.sum}, {"graded", s.graded}};
  const nlohmann::json j = {{"identity", identity}, {"batches", batches}};
  io::write_file_atomic(path, j.dump() + "\n");
}

ReferenceTable load_reference_table(const std::filesystem::path& path, const std::string& identity) {
  ReferenceTable t;
  if (!std::filesystem::exists(path)) return t;
  try {
    const nlohmann::json j = nlohmann::json::parse(data::read_text_file(path));
    if (j.value("identity", std::string()) != identity) return t;
    for (const auto& [key, value] : j.at("batches").items()) {
      RowSums s;
      s.sum = value.at("sum").get<std::vector<double>>();
      s.graded = value.at("graded").get<std::vector<int64_t>>();
      if (s.sum.size() != s.graded.size())
        fail("{}: batch {} has {} sums and {} counts", path.string(), key, s.sum.size(), s.graded.size());
      t.emplace(key, std::move(s));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a reference table ({}); delete it to compute the table again", path.string(), e.what());
  }
  return t;
}

BatchResult policy_pass(Transformer& policy, BatchWorkspace& ws, const Batch& b, std::span<const double> reference,
                        double beta, Reduction reduction, const ForwardOptions& options, bool backward, float share) {
  policy.forward_loss(ws, b.inputs, b.targets, b.B, b.T, options);
  const RowSums sums = row_sums(ws.losses, b.targets, b.B, b.T);
  const PairLoss pl = pair_loss(logprobs(sums, reduction), reference, beta);
  if (backward) {
    // Per target: d loss / d (cross-entropy) = -d loss / d logprob (/ graded for the mean).
    std::vector<double> w(static_cast<size_t>(b.B * b.T), 0.0);
    for (int64_t r = 0; r < b.B; ++r) {
      const double graded = static_cast<double>(sums.graded[static_cast<size_t>(r)]);
      const double per_token = -pl.d_policy[static_cast<size_t>(r)] * share / (reduction == Reduction::Mean ? graded : 1.0);
      for (int64_t t = 0; t < b.T; ++t)
        if (b.targets[static_cast<size_t>(r * b.T + t)] != -100) w[static_cast<size_t>(r * b.T + t)] = per_token;
    }
    policy.backward_rows(ws, w);
  }
  return {pl.loss, pl.rewards};
}

}  // namespace gptrain::dpo
