// gptrain download: OpenAI's GPT-2 weights from the Hugging Face Hub (openai-community/<name>) as a
// model dir that every gptrain command reads: config.json, model.safetensors, vocab.json,
// merges.txt. Resumable; each file is checked against the size (and, for model.safetensors, the
// sha256) the Hub sends, and only then renamed into place.
#include <fmt/core.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "data/data_dir.h"
#include "model/model_dir.h"
#include "net/hub.h"
#include "util/error.h"

namespace gptrain::cli {

namespace {

struct DownloadCliOptions {
  std::string model;
  std::string dir;
  std::string data_dir;
  std::string endpoint;
  std::string revision = "main";
  int retries = 5;
  double retry_delay = 1.0;
  bool quiet = false;
};

const std::vector<std::string> kFiles = {"config.json", "vocab.json", "merges.txt", "model.safetensors"};

int run_download(const DownloadCliOptions& o) {
  // gptrain's preset names (gpt2-small) and the Hub's (gpt2) both work.
  const std::string name = o.model == "gpt2-small" ? "gpt2" : o.model;
  const std::string repo = "openai-community/" + name;
  const std::filesystem::path dir =
      o.dir.empty() ? data::resolve_data_dir(o.data_dir) / "models" / name : std::filesystem::path(o.dir);
  const std::string endpoint = net::hub_endpoint(o.endpoint);
  if (!o.quiet) fmt::print("gptrain download: {} (revision {}) from {} into {}\n", repo, o.revision, endpoint, dir.string());
  std::fflush(stdout);
  net::DownloadOptions options;
  options.max_attempts = o.retries;
  options.retry_delay_s = o.retry_delay;
  options.progress = !o.quiet && ::isatty(2);
  net::download_hub_files(endpoint, repo, o.revision, kFiles, dir, options, [&](const net::HubFileReport& r) {
    if (o.quiet) return;
    const std::string check = r.sha256.empty() ? "size checked" : "size and sha256 " + r.sha256.substr(0, 12) + "... checked";
    std::string how = r.already_present ? "already present" : fmt::format("downloaded {} bytes", r.download.bytes_received);
    if (r.download.resumed) how += ", resumed";
    if (r.download.transfers > 1) how += fmt::format(", {} transfers", r.download.transfers);
    if (r.download.restarted) how += ", restarted after a corrupt download";
    fmt::print("  {:<18} {:>13} bytes  {}; {}\n", r.name, r.size, check, how);
    std::fflush(stdout);
  });
  const ModelConfig config = read_model_config(dir);  // the dir must be usable as --model / --init
  if (!o.quiet)
    fmt::print("done: {} layers, {} heads, emb_dim {}, context {}. Try: gptrain generate --model {} --prompt "
               "\"Every effort moves you\"\n",
               config.n_layers, config.n_heads, config.emb_dim, config.context_length, dir.string());
  return 0;
}

}  // namespace

Command register_download(CLI::App& app) {
  auto o = std::make_shared<DownloadCliOptions>();
  CLI::App* s = app.add_subcommand("download", "Download OpenAI's GPT-2 weights from the Hugging Face Hub as a model dir");
  s->add_option("model", o->model, "gpt2 (= gpt2-small, 124M), gpt2-medium (355M), gpt2-large (774M), gpt2-xl (1558M)")
      ->required()
      ->check(CLI::IsMember({"gpt2", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"}));
  s->add_option("--dir", o->dir, "Directory to write [default: <data dir>/models/<model>]");
  s->add_option("--data-dir", o->data_dir, "Data directory [default: $GPTRAIN_DATA_DIR, ../shared/data, ~/.cache/gptrain]");
  s->add_option("--endpoint", o->endpoint, "Hub address [default: $HF_ENDPOINT or https://huggingface.co]");
  s->add_option("--revision", o->revision, "Branch, tag or commit of the repository")->capture_default_str();
  s->add_option("--retries", o->retries, "Transfers per file before giving up (each resumes the last)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  s->add_option("--retry-delay", o->retry_delay, "Seconds before the first retry; doubles each time")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  s->add_flag("--quiet", o->quiet, "Print nothing but errors");
  return [o] { return run_download(*o); };
}

}  // namespace gptrain::cli
