// gptrain serve: a model behind OpenAI- and Ollama-compatible HTTP APIs and a chat page
// (serve/server.h), its requests decoded together by one engine (serve/scheduler.h). SIGINT or
// SIGTERM stops it: requests in flight end, the port closes.
#include <fmt/core.h>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/prompt_options.h"
#include "data/chat_template.h"
#include "generate/instruct.h"
#include "kernels/ops.h"
#include "model/model_dir.h"
#include "serve/server.h"
#include "util/error.h"
#include "util/signals.h"

namespace gptrain::cli {

namespace {

struct ServeOptions {
  ModelChoice choice;
  std::string data_dir;
  PromptOptions prompt;
  std::string names;
  serve::ServerOptions server;
  serve::SchedulerOptions scheduler;
  int64_t max_tokens = 4096;
  std::string weights_dtype = "f32";
  int threads = 0;
};

// The default name: the model dir's, or its parent's for a run's final/ (out/instruct/final -> instruct).
std::string default_name(const std::filesystem::path& dir) {
  std::filesystem::path p = std::filesystem::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "final" && p.has_parent_path()) return p.parent_path().filename().string();
  return p.filename().string();
}

int run_serve(ServeOptions o) {
  if (o.scheduler.parallel < 1) fail("--parallel must be at least 1, got {}", o.scheduler.parallel);
  if (o.scheduler.max_queue < 0) fail("--max-queue must be at least 0, got {}", o.scheduler.max_queue);
  if (o.max_tokens < 1) fail("--max-tokens must be at least 1, got {}", o.max_tokens);
  if (o.server.request_timeout_s <= 0) fail("--timeout must be positive, got {}", o.server.request_timeout_s);
  if (o.server.max_body_bytes < 1024) fail("--max-body-bytes must be at least 1024, got {}", o.server.max_body_bytes);
  ops::set_num_threads(o.threads);
  resolve_model_choice(o.choice);
  const std::unique_ptr<Transformer> model = load_chosen_model(o.choice, o.weights_dtype);
  if (model->config().head != HeadType::LanguageModel)
    fail("--model {}: a classifier model; serve needs a language-model head", o.choice.model);
  const Tokenizer tokenizer = load_tokenizer_for_model(o.choice.model, model->config().family, o.data_dir);

  serve::ServedModel served;
  served.tokenizer = &tokenizer;
  const std::string prompt_line = apply_prompt_options(o.prompt, prompt_dir(o.choice), model->config(), served.prompt);
  for (const std::string& name : CLI::detail::split(o.names, ','))
    if (!name.empty()) served.names.push_back(name);
  if (served.names.empty()) served.names.push_back(default_name(o.choice.adapter.empty() ? o.choice.model : o.choice.adapter));
  served.raw_stop_ids = read_generation_config(prompt_dir(o.choice)).eos_ids;
  if (served.raw_stop_ids.empty()) served.raw_stop_ids = {data::end_of_text_id(tokenizer)};
  served.context_length = model->config().context_length;
  served.max_tokens_limit = o.max_tokens;
  served.family = model->config().family;
  // The weights the passes read: the decode copy, the bf16 mode's copy, or the f32 values.
  const std::string weights = o.choice.dtype == "bf16" ? "bf16" : o.weights_dtype;
  served.dtype = weights == "f32" ? "F32" : weights == "f16" ? "F16" : "BF16";
  served.parameters = model->params().numel();
  served.file_bytes = served.parameters * (weights == "f32" ? 4 : 2);

  serve::Scheduler scheduler(*model, [&tokenizer](int32_t id) { return token_text(tokenizer, id); }, o.scheduler);
  serve::Server server(served, scheduler, o.server);
  server.bind();
  install_stop_handlers("\ngptrain serve: stopping (requests in flight end; signal again to abort)\n");
  std::thread stopper([&server] {
    while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  fmt::print("gptrain serve: {} as '{}' ({} parameters, {} weights, context {}; {}); {} sequences decoded together, {} more may wait\n"
             "listening on http://{}:{} (OpenAI /v1/chat/completions, /v1/completions; Ollama /api/chat, /api/generate; "
             "chat page at /){}\n",
             o.choice.adapter.empty() ? o.choice.model : o.choice.model + " + adapter " + o.choice.adapter,
             fmt::join(served.names, "', '"), served.parameters, weights, served.context_length, prompt_line,
             o.scheduler.parallel, o.scheduler.max_queue, o.server.host, server.port(),
             o.server.api_key.empty() ? "" : "; API key required");
  std::fflush(stdout);
  server.run();
  if (!stop_requested()) {  // the server ended by itself
    server.stop();
    std::raise(SIGTERM);
  }
  stopper.join();
  const serve::SchedulerStats stats = scheduler.stats();
  fmt::print("gptrain serve: stopped after {} requests ({} tokens generated, {} turned away as busy)\n", stats.completed,
             stats.generated_tokens, stats.refused);
  return 0;
}

}  // namespace

Command register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* s = app.add_subcommand("serve", "Serve a model over OpenAI- and Ollama-compatible HTTP APIs, with a chat page");
  add_model_options(s, o->choice, "Model dir (e.g. the final/ dir of finetune-instruct)");
  s->add_option("--host", o->server.host, "Address to listen on (loopback by default)")->capture_default_str();
  s->add_option("--port", o->server.port, "Port (0: any free one)")->capture_default_str();
  s->add_option("--api-key", o->server.api_key, "Require 'Authorization: Bearer KEY' on every API request");
  s->add_option("--model-name", o->names,
                "Names the model answers to, comma-separated (the first is its id; default: the model dir's name). "
                "E.g. --model-name book,llama3 lets the book's judge script, which asks for llama3, use it");
  s->add_option("--parallel", o->scheduler.parallel, "Sequences decoded together (one batched pass per token)")
      ->capture_default_str();
  s->add_option("--max-queue", o->scheduler.max_queue, "Requests that may wait for a place; beyond, 503")
      ->capture_default_str();
  s->add_option("--max-tokens", o->max_tokens, "Most new tokens one request may ask for")->capture_default_str();
  s->add_option("--max-body-bytes", o->server.max_body_bytes, "Largest request body (413 beyond)")->capture_default_str();
  s->add_option("--timeout", o->server.request_timeout_s, "Seconds a request may run before it is cancelled")
      ->capture_default_str();
  s->add_flag("--quiet", [o](int64_t) { o->server.log_requests = false; }, "Do not log each request");
  add_prompt_options(s, o->prompt);
  s->add_option("--data-dir", o->data_dir, "Data directory, for the vocabulary when the model dir has none");
  s->add_option("--threads", o->threads, "CPU threads (0: all cores)");
  add_weights_dtype_option(s, o->weights_dtype);
  return [o] { return run_serve(*o); };
}

}  // namespace gptrain::cli
