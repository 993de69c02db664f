// gptrain generate: text from a model dir with the book's generate() (top-k, then temperature;
// temperature 0 is greedy; stop at <|endoftext|>), plus top-p and a seed. Tokens are printed as
// they are produced; statistics go to standard error so that standard output is the text alone.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "data/data_dir.h"
#include "data/datasets.h"
#include "data/chat_template.h"
#include "generate/engine.h"
#include "generate/instruct.h"
#include "generate/text_stream.h"
#include "kernels/ops.h"
#include "cli/model_options.h"
#include "model/model_dir.h"
#include "tokenizer/bpe.h"
#include "util/error.h"
#include "util/timer.h"

namespace gptrain::cli {

namespace {

namespace fs = std::filesystem;

struct GenerateCliOptions {
  ModelChoice choice;
  std::string prompt;
  int64_t max_new_tokens = 50;
  double temperature = 0.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 123;
  bool no_kv_cache = false;
  bool ignore_eos = false;
  std::string weights_dtype = "f32";
  bool no_echo = false;
  bool print_ids = false;
  int threads = 0;
  std::string data_dir;
};

void write_out(const std::string& text) {
  if (text.empty()) return;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) fail("cannot write to standard output");
  std::fflush(stdout);
}

int run_generate(const GenerateCliOptions& o_in) {
  GenerateCliOptions o = o_in;
  resolve_model_choice(o.choice);
  const std::string& model_dir = o.choice.model;
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("--top-p must be in (0, 1], got {}", o.top_p);
  ops::set_num_threads(o.threads);
  std::unique_ptr<Transformer> model = load_chosen_model(o.choice, o.weights_dtype);
  const ModelConfig& config = model->config();
  const Tokenizer tokenizer = load_tokenizer_for_model(model_dir, config.family, o.data_dir);

  const std::vector<int32_t> prompt = tokenizer.encode(o.prompt, /*allow_special=*/true);
  if (prompt.empty()) fail("--prompt is empty; generation needs at least one token");
  for (int32_t id : prompt)
    if (id >= config.vocab_size)
      fail("the prompt's token {} is outside the model's vocabulary of {} (is the tokenizer the model's?)", id,
           config.vocab_size);

  GenerateOptions g;
  g.max_new_tokens = o.max_new_tokens;
  g.sampling.temperature = o.temperature;
  g.sampling.top_k = o.top_k;
  g.sampling.top_p = o.top_p;
  g.sampling.seed = o.seed;
  g.kv_cache = !o.no_kv_cache;
  // The model's eos ids (generation_config.json), else the tokenizer's end-of-text.
  if (!o.ignore_eos) {
    g.stop_ids = read_generation_config(prompt_dir(o.choice)).eos_ids;
    if (g.stop_ids.empty()) g.stop_ids = {data::end_of_text_id(tokenizer)};
  }

  fmt::print(stderr, "gptrain generate: {} ({} layers, emb_dim {}, context {}), {}, kv cache {}, {} threads\n", o.choice.adapter.empty() ? model_dir : model_dir + " + adapter " + o.choice.adapter,
             config.n_layers, config.emb_dim, config.context_length,
             o.temperature > 0 ? fmt::format("temperature {} top-k {} top-p {} seed {}", o.temperature, o.top_k, o.top_p, o.seed)
                               : std::string("greedy"),
             g.kv_cache ? "on" : "off", ops::num_threads());
  std::fflush(stderr);
  if (!o.no_echo) write_out(o.prompt);

  Utf8Stream stream;
  std::vector<int32_t> generated;
  double first_token_s = 0;
  Timer timer;
  const std::vector<int32_t> ids = generate(*model, prompt, g, [&](int32_t id) {
    if (generated.empty()) first_token_s = timer.seconds();
    generated.push_back(id);
    // A model whose vocabulary is padded past the tokenizer's may pick an id with no text.
    write_out(id < tokenizer.vocab_size() ? stream.push(tokenizer.decode_token(id)) : stream.push("\xEF\xBF\xBD"));
  });
  const double seconds = timer.seconds();
  write_out(stream.finish() + "\n");

  const bool stopped = static_cast<int64_t>(generated.size()) < o.max_new_tokens;
  if (o.print_ids) {
    std::string line;
    for (int32_t id : generated) line += (line.empty() ? "" : " ") + std::to_string(id);
    fmt::print(stderr, "generated ids: {}\n", line);
  }
  fmt::print(stderr,
             "gptrain generate: {} prompt tokens, {} new tokens in {:.3f} s: {:.2f} tokens/s (first token after {:.0f} "
             "ms){}\n",
             prompt.size(), generated.size(), seconds,
             static_cast<double>(generated.size()) / std::max(seconds, 1e-9), first_token_s * 1000,
             !stopped ? std::string()
             : g.stop_ids.size() == 1 ? "; stopped at " + utf8_lossy(tokenizer.decode_token(g.stop_ids[0]))
                                      : std::string("; stopped at an eos token"));
  if (std::getenv("GPTRAIN_PROFILE"))  // where the time went, per op (kernels/ops.h)
    for (const ops::ProfileEntry& e : ops::profile())
      fmt::print(stderr, "  {:<28} {:>7} calls {:>9.3f} s\n", e.op, e.calls, e.seconds);
  return 0;
}

}  // namespace

Command register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* s = app.add_subcommand("generate", "Generate text from a model dir (the book's generate(), streamed)");
  add_model_options(s, o->choice, "Model dir: written by gptrain, `gptrain download`, or Hugging Face's save_pretrained");
  s->add_option("--prompt", o->prompt, "Text to continue (<|endoftext|> in it is the special token)")->required();
  s->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate at most")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  s->add_option("--temperature", o->temperature, "Softmax temperature; 0 is greedy (argmax), even with --top-k")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  s->add_option("--top-k", o->top_k, "Keep the k largest logits (and ties with the k-th) before temperature; 0: off")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  s->add_option("--top-p", o->top_p, "Nucleus sampling after temperature: keep the most likely tokens up to this "
                                     "probability mass; 1: off")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  s->add_option("--seed", o->seed, "Seed of the sampling draws (the same seed gives the same text)")->capture_default_str();
  s->add_flag("--no-kv-cache", o->no_kv_cache, "Recompute the whole window for every token (slower; same tokens)");
  s->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at <|endoftext|> (always --max-new-tokens tokens)");
  s->add_flag("--no-echo", o->no_echo, "Print only the generated text, not the prompt before it");
  s->add_flag("--print-ids", o->print_ids, "Also print the generated token ids on standard error");
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)")->capture_default_str();
  add_weights_dtype_option(s, o->weights_dtype);
  s->add_option("--data-dir", o->data_dir, "Data directory with gpt2_tokenizer/, used when the model dir has no "
                                           "vocab.json + merges.txt [default: $GPTRAIN_DATA_DIR or ../shared/data]");
  return [o] { return run_generate(*o); };
}

}  // namespace gptrain::cli
