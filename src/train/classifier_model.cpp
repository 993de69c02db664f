#include "train/classifier_model.h"

#include <fmt/core.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "data/data_dir.h"
#include "data/text_file.h"
#include "io/atomic_file.h"
#include "model/model_dir.h"
#include "train/checkpoint.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;

ModelConfig classifier_body_config(const ClassifierModelOptions& o) {
  ModelConfig cfg;
  if (fs::is_directory(o.init)) {
    if (o.shape.any() || o.context_length)
      fail("{}{}{} shape a preset; --init {} is a model dir whose config.json fixes them", o.shape.given(),
           o.shape.any() && o.context_length ? ", " : "", o.context_length ? "--context-length" : "", o.init);
    return read_model_config(o.init);
  }
  if (!preset_config(o.init == "scratch" ? "gpt2-small" : o.init, cfg))
    fail("--init '{}' is neither a model directory nor a preset ({}, scratch)", o.init, preset_list());
  if (o.shape.tie_weights) fail("--tie-weights: a classifier's head is new, so it cannot be tied to the embedding");
  if (o.context_length) cfg.context_length = o.context_length;
  o.shape.apply(cfg);
  return cfg;
}

std::unique_ptr<Transformer> build_classifier(const ClassifierModelOptions& o, int64_t n_classes) {
  ModelConfig cfg = classifier_body_config(o);
  const bool from_dir = fs::is_directory(o.init);
  cfg.head = HeadType::Classifier;
  cfg.n_classes = n_classes;
  cfg.tie_weights = false;
  cfg.drop_rate = static_cast<float>(o.drop_rate);
  if (o.pool == "last") cfg.pooling = Pooling::Last;
  else if (o.pool == "first") cfg.pooling = Pooling::First;
  else if (o.pool == "mean") cfg.pooling = Pooling::Mean;
  else fail("--pool '{}': expected last (the book), first or mean", o.pool);
  // Every weight is initialised (the head as torch.nn.Linear, adapters as the book's LoRALayer),
  // then the body is replaced by the dir's, whose names and shapes are checked before anything is
  // allocated (F8).
  if (from_dir) check_model_weights(cfg, o.init, /*include_head=*/false);
  auto model = std::make_unique<Transformer>(cfg, o.seed, DType::F32, plan_adapters(cfg, o.lora));
  if (from_dir) load_model_weights(*model, o.init, /*include_head=*/false);
  return model;
}

std::string mark_trainable(ParameterSet& params, int64_t n_layers, const std::string& mode) {
  const int64_t L = n_layers;
  // A tied head is the embedding's matrix: it has no parameter of its own to thaw.
  const bool tied_head = !params.find("head.weight");
  const auto set_prefix = [&](const std::string& prefix) {
    bool any = false;
    for (Parameter& p : params.all())
      if (p.name.starts_with(prefix) && !p.is_adapter()) p.trainable = any = true;
    if (!any && !(prefix == "head." && tied_head)) fail("no parameter of the model starts with '{}'", prefix);
  };
  if (mode == "all") {
    for (Parameter& p : params.all()) p.trainable = true;
    return "every parameter";
  }
  if (mode == "none") {  // with LoRA: only the adapters
    for (Parameter& p : params.all()) p.trainable = false;
    return "no base weight";
  }
  int64_t blocks = 0;
  if (mode == "head") {
    blocks = 0;
  } else if (mode == "last-block") {
    blocks = 1;
  } else if (mode.starts_with("last-") && mode.size() > 5 && mode.size() < 10 &&
             mode.find_first_not_of("0123456789", 5) == std::string::npos) {
    blocks = std::stoll(mode.substr(5));
    if (blocks < 1 || blocks > L)
      fail("--trainable {}: the model has {} blocks; use last-1 to last-{}, head, or all", mode, L, L);
  } else {
    fail("--trainable '{}': expected head, last-block (the book), last-N (the last N blocks), all, or none (with "
         "--lora-rank: only the adapters)",
         mode);
  }
  if (blocks > L) fail("--trainable {}: the model has no transformer block", mode);
  for (Parameter& p : params.all()) p.trainable = false;
  set_prefix("head.");
  if (blocks > 0) {
    set_prefix("ln_f.");
    for (int64_t l = L - blocks; l < L; ++l) set_prefix(fmt::format("blocks.{}.", l));
  }
  return blocks == 0   ? "the head"
         : blocks == 1 ? "the last block, the final norm and the head"
                       : fmt::format("the last {} blocks, the final norm and the head", blocks);
}

std::string apply_trainable(Transformer& model, const std::string& mode) {
  if (mode == "none" && model.adapters().empty())
    fail("--trainable none leaves nothing to train; it goes with --lora-rank (then only the adapters learn)");
  std::string what = mark_trainable(model.params(), model.config().n_layers, mode);
  if (!model.adapters().empty()) {  // adapters always learn
    for (Parameter& p : model.params().all())
      if (p.is_adapter()) p.trainable = true;
    what = mode == "none" ? "the LoRA adapters alone: " + describe(model.adapters())
                          : "the LoRA adapters (" + describe(model.adapters()) + ") and " + what;
  }
  model.allocate_grads();
  return what;
}

void check_vocabulary(const ModelConfig& config, const Tokenizer& tokenizer, int64_t pad_token_id,
                      const std::string& model_name) {
  if (tokenizer.vocab_size() > config.vocab_size)
    fail("{}: the model's vocab_size is {}, but the tokenizer has {} tokens; use the model's own tokenizer (its "
         "dir's tokenizer.json or vocab.json + merges.txt)",
         model_name, config.vocab_size, tokenizer.vocab_size());
  if (pad_token_id < 0 || pad_token_id >= config.vocab_size)
    fail("--pad-token-id {} is outside the model's vocabulary (0 to {}); the book pads with 50256 (GPT-2's <|endoftext|>)",
         pad_token_id, config.vocab_size - 1);
}

void save_classifier_dir(const Transformer& model, const fs::path& dir, const std::vector<std::string>& class_names,
                         int64_t max_length, int32_t pad_token_id, const fs::path& tokenizer_dir) {
  save_model_dir(model, dir, class_names);
  write_classifier_extras(dir, max_length, pad_token_id, tokenizer_dir);
}

void write_classifier_extras(const fs::path& dir, int64_t max_length, int32_t pad_token_id,
                             const fs::path& tokenizer_dir) {
  // What `classify` needs to pad a text exactly as in training: the pooled position of "last"
  // is max_length - 1.
  const fs::path config_path = dir / "config.json";
  if (fs::exists(config_path)) {
    nlohmann::json config = nlohmann::json::parse(data::read_text_file(config_path));
    config["gptrain"]["max_length"] = max_length;
    config["gptrain"]["pad_token_id"] = pad_token_id;
    io::write_file_atomic(config_path, config.dump(2) + "\n");
  }
  copy_tokenizer_files(tokenizer_dir, dir);
}

ClassifierInputs read_classifier_inputs(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(data::read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  ClassifierInputs in;
  if (!config.contains("gptrain") || !config["gptrain"].is_object()) return in;
  const nlohmann::json& g = config["gptrain"];
  if (g.contains("max_length")) {
    if (!g["max_length"].is_number_integer() || g["max_length"].get<int64_t>() <= 0)
      fail("{}: key 'gptrain.max_length' must be a positive integer, got {}", path.string(), g["max_length"].dump());
    in.max_length = g["max_length"].get<int64_t>();
  }
  if (g.contains("pad_token_id")) {
    if (!g["pad_token_id"].is_number_integer() || g["pad_token_id"].get<int64_t>() < 0)
      fail("{}: key 'gptrain.pad_token_id' must be a non-negative integer, got {}", path.string(),
           g["pad_token_id"].dump());
    in.pad_token_id = static_cast<int32_t>(g["pad_token_id"].get<int64_t>());
  }
  return in;
}

}  // namespace gptrain
