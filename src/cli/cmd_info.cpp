// gptrain info: a model's configuration, parameter counts and memory, without allocating it: the
// counts come from the model's parameter layout, the memory from the same layout code that plans
// its buffers (training activations for a batch, the KV cache and decode buffers of a sequence).
#include <fmt/core.h>

#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "cli/train_options_cli.h"
#include "model/config.h"
#include "model/model_dir.h"
#include "model/transformer.h"
#include "train/classifier_model.h"
#include "util/error.h"
#include "util/format.h"

namespace gptrain::cli {

namespace {

struct InfoOptions {
  std::string init = "gpt2-small";
  std::string model;
  ShapeOverrides shape;
  int64_t context_length = 0;
  int64_t batch_size = 2;
  int64_t classes = 0;
  std::string trainable = "all";
};

constexpr double kMiB = 1024.0 * 1024.0;

std::string mib(double bytes) { return fmt::format("{:>12.2f} MB", bytes / kMiB); }

int run_info(const InfoOptions& o) {
  ModelConfig config;
  std::string name = o.init;
  if (!o.model.empty()) {
    if (!std::filesystem::is_directory(o.model)) fail("--model {}: not a model directory", o.model);
    config = read_model_config(o.model);
    name = o.model;
    if (o.shape.any()) fail("{} shape a preset; --model {} fixes them", o.shape.given(), o.model);
  } else {
    if (!preset_config(o.init, config))
      fail("--init '{}' is not a preset ({})", o.init, preset_list());
    o.shape.apply(config);
  }
  if (o.classes > 0) {  // the classifier finetune-cls would build on this body
    if (o.classes < 2) fail("--classes must be at least 2, got {}", o.classes);
    config.head = HeadType::Classifier;
    config.n_classes = o.classes;
    config.tie_weights = false;
  }
  // The context a run uses: the model's unless shorter is asked for (or longer for a preset).
  const int64_t T = o.context_length > 0 ? o.context_length : config.context_length;
  if (o.context_length > 0 && o.model.empty()) config.context_length = o.context_length;
  if (T > config.context_length)
    fail("--context-length {} exceeds the model's context length {}", T, config.context_length);
  if (o.batch_size <= 0) fail("--batch-size must be positive, got {}", o.batch_size);
  config.validate();

  ParameterSet params = parameter_layout(config);
  const ParameterCounts counts = count_parameters(config);
  const std::string trainable_what = mark_trainable(params, config.n_layers, o.trainable);
  const int64_t trainable = params.trainable_numel();

  fmt::print("model: {}\n", name);
  fmt::print("  vocab_size {}  context_length {}  emb_dim {}  n_layers {}  n_heads {}  n_kv_heads {}  head_size {}\n",
             config.vocab_size, config.context_length, config.emb_dim, config.n_layers, config.n_heads,
             config.kv_heads(), config.head_size());
  fmt::print("  mlp {} x {}  norm {}{} eps {}  positions {}\n", mlp_name(config.mlp), config.mlp_width(),
             norm_name(config.norm), config.norm == NormKind::LayerNorm && !config.norm_bias ? " (no bias)" : "",
             config.norm_eps, positions_name(config.positions));
  fmt::print("  drop_rate {}  qkv_bias {}  output head {}\n", config.drop_rate, config.qkv_bias,
             config.head == HeadType::Classifier
                 ? fmt::format("{} classes ({} pooling)", config.n_classes, pooling_name(config.pooling))
             : config.tie_weights ? std::string("tied to tok_emb")
                                  : std::string("separate"));
  fmt::print("parameters:\n");
  fmt::print("  total                {:>15}\n", with_commas(counts.total));
  fmt::print("  without output head  {:>15}\n", with_commas(counts.without_head));
  fmt::print("  trainable            {:>15}  (--trainable {}: {})\n", with_commas(trainable), o.trainable,
             trainable_what);

  // float32 everywhere; AdamW keeps two moments per trainable parameter.
  const double weights = static_cast<double>(counts.total) * 4;
  const double grads = static_cast<double>(trainable) * 4, moments = static_cast<double>(trainable) * 8;
  const double activations = static_cast<double>(activation_bytes(config, o.batch_size, T, /*training=*/true));
  fmt::print("memory (float32):\n");
  fmt::print("  parameters           {}\n", mib(weights));
  fmt::print("  training, batch {} x {} tokens:\n", o.batch_size, T);
  fmt::print("    gradients          {}\n", mib(grads));
  fmt::print("    AdamW moments      {}\n", mib(moments));
  fmt::print("    activations        {}  (kept for backward, with its gradient buffers)\n", mib(activations));
  fmt::print("    total              {}\n", mib(weights + grads + moments + activations));
  const double kv = static_cast<double>(kv_cache_bytes(config, T));
  const double step = static_cast<double>(decode_workspace_bytes(config, 1, 1));
  fmt::print("  decoding, per sequence of {} positions:\n", T);
  fmt::print("    KV cache           {}\n", mib(kv));
  fmt::print("    decode step        {}  (one row; shared by the sequences of an engine)\n", mib(step));
  fmt::print("  evaluation, batch {} x {} tokens: activations {}\n", o.batch_size, T,
             mib(static_cast<double>(activation_bytes(config, o.batch_size, T, /*training=*/false))));
  return 0;
}

}  // namespace

Command register_info(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Print a model's configuration, parameter counts and memory");
  sub->add_option("--init", options->init, "Model preset: " + preset_list())->capture_default_str();
  sub->add_option("--model", options->model, "A model dir instead of a preset (its config.json)");
  add_shape_options(sub, options->shape);
  sub->add_option("--context-length", options->context_length,
                  "Sequence length of the memory figures (a preset's context is set to it) [default: the model's]");
  sub->add_option("--batch-size", options->batch_size, "Batch of the training and evaluation memory figures")
      ->capture_default_str();
  sub->add_option("--classes", options->classes, "Count a classifier head of N classes (as finetune-cls builds)");
  sub->add_option("--trainable", options->trainable,
                  "Which parameters train, as finetune-cls: all, head, last-block, last-N")
      ->capture_default_str();
  return [options] { return run_info(*options); };
}

}  // namespace gptrain::cli
