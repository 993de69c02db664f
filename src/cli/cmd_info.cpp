// gptrain info: a model's configuration, parameter counts and memory, without allocating it.
#include <fmt/core.h>

#include <string>

#include "cli/commands.h"
#include "model/config.h"
#include "util/error.h"

namespace gptrain::cli {

namespace {

struct InfoOptions {
  std::string init = "gpt2-small";
  bool qkv_bias = false;
  bool tie_weights = false;
  int64_t context_length = 0;
  int64_t batch_size = 2;
  int64_t sequence_length = 256;
};

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

int run_info(const InfoOptions& o) {
  GPT2Config config;
  if (!preset_config(o.init, config))
    fail("--init '{}' is not a preset (gpt2-small, gpt2-medium, gpt2-large, gpt2-xl)", o.init);
  config.qkv_bias = o.qkv_bias;
  config.tie_weights = o.tie_weights;
  if (o.context_length > 0) config.context_length = o.context_length;
  config.validate();
  const ParameterCounts counts = count_parameters(config);
  const double mib = 1024.0 * 1024.0;
  fmt::print("model: {}\n", o.init);
  fmt::print("  vocab_size {}  context_length {}  emb_dim {}  n_layers {}  n_heads {}  head_size {}\n",
             config.vocab_size, config.context_length, config.emb_dim, config.n_layers, config.n_heads,
             config.head_size());
  fmt::print("  drop_rate {}  qkv_bias {}  output head {}\n", config.drop_rate, config.qkv_bias,
             config.tie_weights ? "tied to tok_emb" : "separate");
  fmt::print("parameters:\n");
  fmt::print("  total                {:>15}\n", with_commas(counts.total));
  fmt::print("  without output head  {:>15}\n", with_commas(counts.without_head));
  fmt::print("  trainable            {:>15}\n", with_commas(counts.total));
  fmt::print("memory (float32):\n");
  fmt::print("  parameters           {:>12.2f} MB\n", static_cast<double>(counts.total) * 4 / mib);
  // Training holds parameters, gradients and AdamW's two moments: four floats per parameter.
  fmt::print("  params+grads+AdamW   {:>12.2f} MB\n", static_cast<double>(counts.total) * 16 / mib);
  return 0;
}

}  // namespace

Command register_info(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* sub = app.add_subcommand("info", "Print a model's configuration, parameter counts and memory");
  sub->add_option("--init", options->init, "Model preset: gpt2-small, gpt2-medium, gpt2-large, gpt2-xl")
      ->capture_default_str();
  sub->add_flag("--qkv-bias", options->qkv_bias, "Biases on the query/key/value projections (OpenAI GPT-2)");
  sub->add_flag("--tie-weights", options->tie_weights, "Share the output head with the token embedding");
  sub->add_option("--context-length", options->context_length, "Override the preset's context length");
  return [options] { return run_info(*options); };
}

}  // namespace gptrain::cli
