#include "train/metrics.h"

#include <array>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "train/plot.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

template <class R>
auto reward_fields(R& r) {
  return std::array{std::pair{"train_chosen_reward", &r.train_chosen_reward},
                    std::pair{"train_rejected_reward", &r.train_rejected_reward},
                    std::pair{"val_chosen_reward", &r.val_chosen_reward},
                    std::pair{"val_rejected_reward", &r.val_rejected_reward}};
}

nlohmann::json to_json(const MetricRecord& r) {
  nlohmann::json j = {{"step", r.step},           {"epoch", r.epoch},           {"tokens_seen", r.tokens_seen},
                      {"examples_seen", r.examples_seen}, {"train_loss", r.train_loss}, {"val_loss", r.val_loss},
                      {"step_loss", r.step_loss},
                      {"lr", r.lr},               {"tokens_per_s", r.tokens_per_s}};
  if (r.train_accuracy) j["train_accuracy"] = *r.train_accuracy;
  if (r.val_accuracy) j["val_accuracy"] = *r.val_accuracy;
  if (!r.kind.empty()) j["kind"] = r.kind;
  if (r.test_accuracy) j["test_accuracy"] = *r.test_accuracy;
  if (r.test_loss) j["test_loss"] = *r.test_loss;
  for (const auto& [name, value] : reward_fields(r))
    if (*value) j[name] = **value;
  return j;
}

MetricRecord from_json(const nlohmann::json& j) {
  MetricRecord r;
  r.step = j.at("step");
  r.epoch = j.at("epoch");
  r.tokens_seen = j.at("tokens_seen");
  r.examples_seen = j.value("examples_seen", int64_t{0});
  r.train_loss = j.at("train_loss").is_number() ? j.at("train_loss").get<double>() : NAN;
  r.val_loss = j.at("val_loss").is_number() ? j.at("val_loss").get<double>() : NAN;
  // NaN is written as null (a DPO run's record before its first step has no step loss).
  const auto number = [&](const char* key) {
    return !j.contains(key) ? 0.0 : j[key].is_number() ? j[key].get<double>() : NAN;
  };
  r.step_loss = number("step_loss");
  r.lr = number("lr");
  r.tokens_per_s = number("tokens_per_s");
  if (j.contains("train_accuracy")) r.train_accuracy = number("train_accuracy");
  if (j.contains("val_accuracy")) r.val_accuracy = number("val_accuracy");
  r.kind = j.value("kind", std::string());
  if (j.contains("test_accuracy")) r.test_accuracy = number("test_accuracy");
  if (j.contains("test_loss")) r.test_loss = number("test_loss");
  for (const auto& [name, value] : reward_fields(r))
    if (j.contains(name)) *value = j[name].is_number() ? j[name].get<double>() : NAN;
  return r;
}

}  // namespace

MetricsLog::MetricsLog(const fs::path& run_dir, int64_t keep_up_to_step, bool write_files)
    : run_dir_(run_dir), write_files_(write_files) {
  const fs::path path = run_dir / "metrics.jsonl";
  if (keep_up_to_step >= 0 && fs::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].empty()) continue;
      try {
        MetricRecord r = from_json(nlohmann::json::parse(lines[i]));
        if (r.step <= keep_up_to_step) records_.push_back(r);
      } catch (const std::exception& e) {
        // Only the last line can be cut by a kill mid-write; a bad line before it is damage that
        // rewriting the file would make permanent.
        if (i + 1 < lines.size())
          fail("{}:{}: unreadable metrics record ({}); fix or remove the line to resume", path.string(), i + 1,
               e.what());
        fmt::print("warning: {}:{}: skipping a torn last metrics record\n", path.string(), i + 1);
      }
    }
  }
  if (!write_files_) return;
  std::string text;
  for (const MetricRecord& r : records_) text += to_json(r).dump() + "\n";
  io::write_file_atomic(path, text);
}

void MetricsLog::drop(const std::function<bool(const MetricRecord&)>& which) {
  std::erase_if(records_, which);
  if (!write_files_) return;
  std::string text;
  for (const MetricRecord& r : records_) text += to_json(r).dump() + "\n";
  io::write_file_atomic(run_dir_ / "metrics.jsonl", text);
}

void MetricsLog::append(const MetricRecord& record) {
  records_.push_back(record);
  if (!write_files_) return;
  std::ofstream out(run_dir_ / "metrics.jsonl", std::ios::app);
  out << to_json(record).dump() << "\n";
  out.flush();
  if (!out) fail("{}: cannot append the metrics record", (run_dir_ / "metrics.jsonl").string());
}

void MetricsLog::write_plots(bool examples) const {
  if (records_.empty() || !write_files_) return;
  PlotSeries train{"Training loss", {}, {}, "", ""}, val{"Validation loss", {}, {}, "8,4,2,4", ""};
  PlotSeries train_acc{"Training accuracy", {}, {}, "", ""}, val_acc{"Validation accuracy", {}, {}, "8,4,2,4", ""};
  // (short labels: the legend has 110 pixels)
  PlotSeries reward_series[4] = {{"Train chosen", {}, {}, "", ""},
                                 {"Train rejected", {}, {}, "", ""},
                                 {"Val chosen", {}, {}, "8,4,2,4", ""},
                                 {"Val rejected", {}, {}, "8,4,2,4", ""}};
  PlotSeries train_margin{"Train margins", {}, {}, "", ""}, val_margin{"Val margins", {}, {}, "8,4,2,4", ""};
  std::vector<double> at, top;
  for (const MetricRecord& r : records_) {
    if (r.kind == "final") continue;
    if (r.kind.empty() || r.kind == "initial") {  // per-epoch accuracy records carry no loss
      train.x.push_back(r.epoch);
      train.y.push_back(r.train_loss);
      val.x.push_back(r.epoch);
      val.y.push_back(r.val_loss);
    }
    at.push_back(r.epoch);
    top.push_back(static_cast<double>(examples ? r.examples_seen : r.tokens_seen));
    if (r.train_accuracy) {
      train_acc.x.push_back(r.epoch);
      train_acc.y.push_back(*r.train_accuracy);
    }
    if (r.val_accuracy) {
      val_acc.x.push_back(r.epoch);
      val_acc.y.push_back(*r.val_accuracy);
    }
    if (r.train_chosen_reward && r.train_rejected_reward && r.val_chosen_reward && r.val_rejected_reward) {
      const double rewards[4] = {*r.train_chosen_reward, *r.train_rejected_reward, *r.val_chosen_reward,
                                 *r.val_rejected_reward};
      for (int i = 0; i < 4; ++i) {
        reward_series[i].x.push_back(r.epoch);
        reward_series[i].y.push_back(rewards[i]);
      }
      train_margin.x.push_back(r.epoch);
      train_margin.y.push_back(rewards[0] - rewards[1]);
      val_margin.x.push_back(r.epoch);
      val_margin.y.push_back(rewards[2] - rewards[3]);
    }
  }
  const std::string top_label = examples ? "Examples seen" : "Tokens seen";
  PlotSpec loss{"", "Epochs", "Loss", {train, val}, top_label, at, top, true};
  io::write_file_atomic(run_dir_ / "loss.svg", render_svg(loss));
  if (!train_acc.x.empty() || !val_acc.x.empty()) {
    PlotSpec acc{"", "Epochs", "Accuracy", {train_acc, val_acc}, top_label, at, top, true};
    io::write_file_atomic(run_dir_ / "accuracy.svg", render_svg(acc));
  }
  if (!train_margin.x.empty()) {
    PlotSpec rewards{"", "Epochs", "Rewards", {reward_series[0], reward_series[1], reward_series[2], reward_series[3]},
                     top_label, at, top, true};
    io::write_file_atomic(run_dir_ / "rewards.svg", render_svg(rewards));
    PlotSpec margins{"", "Epochs", "Reward margins", {train_margin, val_margin}, top_label, at, top, true};
    io::write_file_atomic(run_dir_ / "reward-margins.svg", render_svg(margins));
  }
}

}  // namespace gptrain
