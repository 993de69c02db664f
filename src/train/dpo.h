// Direct Preference Optimization (arXiv 2305.18290; the book's chapter 7 bonus): the loss of a
// batch of preference pairs from the policy's and the reference's log-probabilities of the chosen
// and rejected responses, its gradient, and where the reference's log-probabilities come from.
//
// A batch is one language-model pass over 2P rows (data/preference_data.h): the P chosen sequences
// then the P rejected ones, graded targets where the book's mask is true. A row's log-probability
// is the sum of its graded targets' log-softmax values, or their mean (the book's compute_logprobs;
// the paper and TRL use the sum). Per pair, z = (pi_c - pi_r) - (ref_c - ref_r), and the loss is the
// mean over pairs of -logsigmoid(beta z). Its gradient reaches the policy as per-target weights on
// the cross-entropy (Transformer::backward_rows): d loss / d logprob_r, divided by the row's graded
// count for the mean, with the sign of -log p = cross-entropy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "train/loop.h"

namespace gptrain::dpo {

enum class Reduction { Mean, Sum };
Reduction parse_reduction(const std::string& name);  // "mean" | "sum"; errors name --logprob

// Each row's summed log-probability of its graded targets and their count, from a forward_loss's
// per-target losses (F32 or F64, rows*T of them; 0 where the target is -100). In double, in order.
struct RowSums {
  std::vector<double> sum;      // sum of log p (= -sum of the cross-entropies)
  std::vector<int64_t> graded;  // targets that are not -100
};
RowSums row_sums(const Tensor& losses, std::span<const int32_t> targets, int64_t rows, int64_t T);
// sum, or sum / graded (a row without graded targets is an error: the data layer refuses those).
std::vector<double> logprobs(const RowSums& sums, Reduction reduction);

// The pair loss of P pairs: policy and reference hold 2P log-probabilities, chosen rows first.
struct PairLoss {
  double loss = 0;       // mean over pairs of -logsigmoid(beta z)
  PairRewards rewards;   // means of policy - reference, chosen and rejected (no beta, as the book)
  std::vector<double> d_policy;  // d loss / d policy log-probability, per row
};
PairLoss pair_loss(std::span<const double> policy, std::span<const double> reference, double beta);

// Where the reference's log-probabilities of a batch come from.
class Reference {
 public:
  virtual ~Reference() = default;
  // The batch's 2P rows' sums (see RowSums). `key` names the batch among those of the run
  // (precomputed tables are looked up by it).
  virtual RowSums sums(const Batch& b, const std::string& key) = 0;
  virtual std::string describe() const = 0;
};

// A model's evaluation pass over the batch (the book's reference_model under no_grad): a frozen
// copy (its gradient buffers dropped), or the policy's base with its LoRA adapters left out (no
// second copy of the weights). `workspace`: where its activations go (shared with the policy's
// passes, which never overlap with it, when the two models have the same shape); null: its own.
std::unique_ptr<Reference> model_reference(const Transformer& model, std::string description,
                                           bool without_adapters = false, BatchWorkspace* workspace = nullptr);
std::unique_ptr<Reference> frozen_reference(std::unique_ptr<Transformer> model, std::string source,
                                            BatchWorkspace* workspace = nullptr);

// Precomputed: the reference's sums of every batch the run will use, computed once before training
// by batch key. Each batch is computed exactly as it is used (the same rows and padding), so a
// precomputed run gives the frozen copy's numbers bit for bit.
using ReferenceTable = std::map<std::string, RowSums>;
std::unique_ptr<Reference> precomputed_reference(ReferenceTable table);
// The table in a run dir (reference-logprobs.json, written atomically; doubles round-trip
// exactly), with what it was computed from; load gives an empty table when the file is absent or
// was computed from something else.
void save_reference_table(const std::filesystem::path& path, const ReferenceTable& table, const std::string& identity);
ReferenceTable load_reference_table(const std::filesystem::path& path, const std::string& identity);

// One batch through the policy: its loss and rewards; with backward, the gradient times `share`
// accumulated into the policy's trainable parameters (the forward then runs in training mode).
struct BatchResult {
  double loss = 0;
  PairRewards rewards;
};
BatchResult policy_pass(Transformer& policy, BatchWorkspace& ws, const Batch& b, std::span<const double> reference,
                        double beta, Reduction reduction, const ForwardOptions& options, bool backward, float share);

}  // namespace gptrain::dpo
