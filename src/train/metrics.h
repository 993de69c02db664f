// metrics.jsonl (one JSON record per evaluation) and the plots drawn from it: loss.svg (train
// solid, val dash-dot, against epochs, tokens seen on the top axis, as the book's plot) and, for
// classifiers, accuracy.svg (examples seen on the top axis); for DPO, rewards.svg (chosen and
// rejected rewards) and reward-margins.svg.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace gptrain {

struct MetricRecord {
  int64_t step = 0;
  double epoch = 0;  // fractional: epochs completed when the evaluation ran
  int64_t tokens_seen = 0;
  int64_t examples_seen = 0;
  double train_loss = 0, val_loss = 0;  // evaluation means (the book's calc_loss_loader)
  double step_loss = 0;                  // the loss of this step's own training batch
  std::optional<double> train_accuracy, val_accuracy;
  double lr = 0;
  double tokens_per_s = 0;
  // "" : an evaluation during training (the loss plot's points); "initial": one before the first
  // step (DPO; a point at epoch 0 of the plots); "epoch": classifiers' accuracies
  // after an epoch (the accuracy plot's points; no losses); "final": the accuracies (and losses)
  // over the full train, validation and test sets at the end (in no plot).
  std::string kind;
  std::optional<double> test_accuracy, test_loss;
  // DPO (PairRewards): the evaluation means of the chosen and rejected rewards.
  std::optional<double> train_chosen_reward, train_rejected_reward, val_chosen_reward, val_rejected_reward;
};

class MetricsLog {
 public:
  // Opens <run_dir>/metrics.jsonl; with keep_up_to_step >= 0 keeps the records up to that step
  // (a resumed run drops evaluations made after its checkpoint), otherwise starts empty.
  // write_files false: the records are kept in memory only (the ranks of a data-parallel run
  // besides the main one, which writes).
  MetricsLog(const std::filesystem::path& run_dir, int64_t keep_up_to_step, bool write_files = true);
  void append(const MetricRecord& record);  // writes the line and flushes
  // Removes the records `which` selects and rewrites the file.
  void drop(const std::function<bool(const MetricRecord&)>& which);
  const std::vector<MetricRecord>& records() const { return records_; }
  // Rewrites loss.svg (and accuracy.svg when accuracies exist, rewards.svg and reward-margins.svg
  // when rewards do); `examples` labels the top axis "Examples seen" instead of "Tokens seen".
  void write_plots(bool examples = false) const;

 private:
  std::filesystem::path run_dir_;
  std::vector<MetricRecord> records_;
  bool write_files_ = true;
};

}  // namespace gptrain
