#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "data/data_dir.h"
#include "data/text_file.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/adapter_dir.h"
#include "model/model_dir.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDone = "DONE";
constexpr const char* kTempPrefix = ".tmp-";

std::optional<int64_t> step_of(const fs::path& dir) {
  const std::string name = dir.filename().string();
  if (!name.starts_with("step_") || name.size() != 13) return std::nullopt;
  int64_t step = 0;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  const fs::path root = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const auto step = step_of(entry.path());
    if (step && fs::is_regular_file(entry.path() / kDone)) out.emplace_back(*step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

constexpr const char* kAdapters = "adapters.safetensors";

// Only adapters learn: the base weights are the run's --init and need not be saved again.
bool adapters_only(const Transformer& model) {
  if (model.adapters().empty()) return false;
  for (const Parameter& p : model.params().all())
    if (p.trainable && !p.is_adapter()) return false;
  return true;
}

std::vector<std::string> trainable_names(const Transformer& model) {
  std::vector<std::string> names;
  for (const Parameter& p : model.params().all())
    if (p.trainable) names.push_back(p.name);
  return names;
}

}  // namespace

fs::path checkpoint_dir(const fs::path& run_dir, int64_t step) {
  return run_dir / "checkpoints" / fmt::format("step_{:08d}", step);
}

fs::path save_checkpoint(const fs::path& run_dir, const Transformer& model, const AdamW& optimizer, const TrainerState& state,
                         int keep_last, const std::vector<std::string>& class_names, const FullMoments* full,
                         const std::function<void(const fs::path&)>& complete) {
  const fs::path final_dir = checkpoint_dir(run_dir, state.step);
  if (fs::is_regular_file(final_dir / kDone)) return final_dir;  // this step is already saved
  const fs::path temp = final_dir.parent_path() / (kTempPrefix + final_dir.filename().string());
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp, ec);
  if (ec) fail("cannot create checkpoint directory {}: {}", temp.string(), ec.message());

  // With LoRA the adapters are saved in our layout (an exact resume); the base weights only when
  // some of them trained.
  if (!adapters_only(model)) save_model_dir(model, temp, class_names);
  if (!model.adapters().empty()) {
    std::vector<std::pair<std::string, Tensor>> adapters;
    for (const Parameter& p : model.params().all())
      if (p.is_adapter()) adapters.emplace_back(p.name, p.value);
    io::save_safetensors(temp / kAdapters, adapters);
  }
  if (complete) complete(temp);
  // Fault injection for the crash-safety test (tests/cli/pretrain_test.sh): die by SIGKILL in the
  // middle of writing the checkpoint of this step, as a power cut or the OOM killer would.
  if (const char* kill_at = std::getenv("GPTRAIN_TEST_KILL_IN_CHECKPOINT");
      kill_at && std::to_string(state.step) == kill_at)
    ::raise(SIGKILL);
  std::vector<std::pair<std::string, Tensor>> moments;
  if (optimizer.sharded()) {
    GPTRAIN_CHECK(full && full->m.defined(), "a sharded optimizer's checkpoint needs its gathered moments");
    moments.emplace_back("adamw.m", full->m);
    moments.emplace_back("adamw.v", full->v);
  } else if (optimizer.first_moment().defined()) {
    moments.emplace_back("adamw.m", optimizer.first_moment());
    moments.emplace_back("adamw.v", optimizer.second_moment());
  }
  const nlohmann::json names = trainable_names(model);
  io::save_safetensors(temp / "optimizer.safetensors", moments,
                       {{"steps_taken", std::to_string(optimizer.steps_taken())}, {"trainable", names.dump()}});
  nlohmann::json js = {{"step", state.step},
                       {"epoch", state.epoch},
                       {"batch", state.batch},
                       {"tokens_seen", state.tokens_seen},
                       {"examples_seen", state.examples_seen},
                       {"options", state.options},
                       {"inputs", state.inputs}};
  io::write_file_atomic(temp / "trainer_state.json", js.dump(2) + "\n");
  io::write_file_atomic(temp / kDone, "");
  io::sync_directory(temp);  // a failed flush is an error, not a "complete" checkpoint
  fs::remove_all(final_dir, ec);  // an incomplete dir of the same step (no DONE) from a crash
  fs::rename(temp, final_dir, ec);
  if (ec) fail("cannot move checkpoint {} into place: {}", temp.string(), ec.message());
  io::sync_directory(final_dir.parent_path());

  if (keep_last > 0) {
    auto all = complete_checkpoints(run_dir);
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i) fs::remove_all(all[i].second, ec);
  }
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  auto all = complete_checkpoints(run_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

void remove_incomplete_checkpoints(const fs::path& run_dir) {
  const fs::path root = run_dir / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return;
  std::vector<fs::path> doomed;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(kTempPrefix) || (step_of(entry.path()) && !fs::exists(entry.path() / kDone)))
      doomed.push_back(entry.path());
  }
  for (const fs::path& p : doomed) fs::remove_all(p, ec);
}

TrainerState read_trainer_state(const fs::path& checkpoint) {
  const fs::path path = checkpoint / "trainer_state.json";
  std::ifstream in(path);
  if (!in) fail("{}: cannot read the trainer state", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json js;
  try {
    js = nlohmann::json::parse(ss.str());
  } catch (const std::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  TrainerState s;
  auto get = [&](const char* key) -> int64_t {
    if (!js.contains(key) || !js[key].is_number_integer()) fail("{}: missing or non-integer field '{}'", path.string(), key);
    const int64_t v = js[key].get<int64_t>();  // a value beyond int64 wraps negative (C++20): refused too
    if (v < 0)
      fail("{}: field '{}' is {}, expected a count (0 or more)", path.string(), key, js[key].dump());
    return v;
  };
  s.step = get("step");
  s.epoch = get("epoch");
  s.batch = get("batch");
  s.tokens_seen = get("tokens_seen");
  s.examples_seen = js.contains("examples_seen") ? get("examples_seen") : 0;  // absent before finetune-cls counted
  s.options = js.value("options", nlohmann::json::object());
  if (s.options.is_null()) s.options = nlohmann::json::object();  // a state saved without options
  s.inputs = js.value("inputs", nlohmann::json::array());
  if (!s.options.is_object()) fail("{}: field 'options' is not an object", path.string());
  if (!s.inputs.is_array()) fail("{}: field 'inputs' is not a list", path.string());
  return s;
}

TrainerState load_checkpoint(const fs::path& checkpoint, Transformer& model, AdamW& optimizer) {
  TrainerState state = read_trainer_state(checkpoint);
  if (fs::exists(checkpoint / "model.safetensors") || fs::exists(checkpoint / "model.safetensors.index.json"))
    load_model_weights(model, checkpoint);
  else if (!adapters_only(model))
    fail("{}: no model.safetensors (a LoRA checkpoint holds only the adapters); resume with the run's --lora-* and "
         "--trainable options",
         checkpoint.string());
  if (!model.adapters().empty()) {
    const fs::path path = checkpoint / kAdapters;
    if (!fs::exists(path))
      fail("{}: no {}: the checkpoint was not trained with LoRA adapters; resume without --lora-rank",
           checkpoint.string(), kAdapters);
    const io::SafeTensorsFile f = io::SafeTensorsFile::open(path);
    for (Parameter& p : model.params().all())
      if (p.is_adapter()) f.load_into(p.name, p.value);
  }
  const fs::path opt_path = checkpoint / "optimizer.safetensors";
  const io::SafeTensorsFile f = io::SafeTensorsFile::open(opt_path);
  const auto& meta = f.metadata();
  const auto it = meta.find("trainable");
  if (it == meta.end()) fail("{}: missing metadata 'trainable'", opt_path.string());
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    fail("{}: metadata 'trainable' is not valid JSON ({}); the checkpoint is damaged", opt_path.string(), e.what());
  }
  if (!saved.is_array()) fail("{}: metadata 'trainable' is not a list of names; the checkpoint is damaged", opt_path.string());
  const nlohmann::json now = trainable_names(model);
  if (saved != now)
    fail("{}: the checkpoint was trained with a different set of trainable parameters ({} then, {} now); "
         "resume with the same freezing options",
         opt_path.string(), saved.size(), now.size());
  if (optimizer.sharded()) {  // the whole moments are in the file; this shard keeps its block
    const int64_t n = model.params().flat_grads().numel();
    for (const auto& [name, mine] : {std::pair{"adamw.m", optimizer.first_moment()}, {"adamw.v", optimizer.second_moment()}}) {
      const Tensor whole = f.load_as(name, DType::F32);
      if (whole.numel() != n) fail("{}: {} has {} values for {} trainable ones", opt_path.string(), name, whole.numel(), n);
      const int64_t a = optimizer.shard_begin(), b = optimizer.shard_end();
      if (b > a) mine.reshape({mine.numel()}).slice_rows(0, b - a).copy_from(whole.reshape({n}).slice_rows(a, b));
    }
  } else if (optimizer.first_moment().defined()) {
    f.load_into("adamw.m", optimizer.first_moment());
    f.load_into("adamw.v", optimizer.second_moment());
  }
  const auto steps = meta.find("steps_taken");
  int64_t steps_taken = -1;
  if (steps != meta.end()) {
    const std::string& text = steps->second;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), steps_taken);
    if (error != std::errc() || end != text.data() + text.size()) steps_taken = -1;
  }
  if (steps_taken < 0)
    fail("{}: metadata 'steps_taken' is {}, not a count of steps; the checkpoint is damaged", opt_path.string(),
         steps == meta.end() ? "missing" : "'" + steps->second + "'");
  optimizer.set_steps_taken(steps_taken);
  // The bf16 copy the interrupted run read: its last update's stochastic rounding, redrawn.
  model.params().refresh_compute(optimizer.options().rounding_seed, steps_taken);
  return state;
}

void save_trained_model(const Transformer& model, const fs::path& dir, const std::string& base_model) {
  if (model.adapters().empty()) {
    save_model_dir(model, dir);
    return;
  }
  std::error_code ec;
  save_adapter_dir(model, dir, fs::absolute(base_model, ec).lexically_normal().string());
  if (!adapters_only(model)) save_model_dir(model, dir);
}

void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(from, to, ec)) return;
  const auto copy = [&](const char* name, const char* as) {
    if (fs::is_regular_file(from / name, ec)) io::write_file_atomic(to / as, data::read_text_file(from / name));
  };
  copy("tokenizer.json", "tokenizer.json");
  copy("tokenizer_config.json", "tokenizer_config.json");
  copy("special_tokens_map.json", "special_tokens_map.json");
  copy("generation_config.json", "generation_config.json");
  copy("vocab.json", "vocab.json");
  copy("merges.txt", "merges.txt");
  copy("encoder.json", "vocab.json");  // OpenAI's names for the same files
  copy("vocab.bpe", "merges.txt");
}

}  // namespace gptrain
