// gptrain export-gguf: a model dir as a GGUF file for llama.cpp (llama-cli -m FILE), or with
// --adapter a PEFT LoRA adapter dir as a GGUF adapter for it (llama-cli -m MODEL --lora FILE).
#include <fmt/core.h>

#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "convert/gguf_lora.h"
#include "convert/gguf_model.h"
#include "data/data_dir.h"
#include "data/datasets.h"
#include "model/model_dir.h"
#include "util/error.h"
#include "util/timer.h"

namespace gptrain::cli {

namespace {

namespace fs = std::filesystem;

struct ExportGgufOptions {
  std::string model;
  std::string out;
  std::string type = "f32";
  std::string adapter;
  std::string tokenizer;
  std::string data_dir;
};

void print_summary(const convert::GgufExportSummary& s, const std::string& what, const std::string& out,
                   double seconds) {
  std::string types;
  for (const auto& [type, count] : s.tensors_by_type) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", count, type);
  fmt::print("gptrain export-gguf: wrote {} ({} {}): {} tensors ({}), {:.1f} MB in {:.2f} s\n", out, s.architecture, what,
             s.tensors, types, static_cast<double>(s.bytes) / 1e6, seconds);
}

int run_export_gguf(const ExportGgufOptions& o) {
  if (!fs::is_directory(o.model))
    fail("--model {}: not a directory; give a model dir (config.json + model.safetensors)", o.model);
  const convert::GgufFileType type = convert::parse_gguf_file_type(o.type);
  Timer timer;
  if (!o.adapter.empty()) {
    if (!fs::is_directory(o.adapter))
      fail("--adapter {}: not a directory; give a PEFT adapter dir (adapter_config.json + adapter_model.safetensors)",
           o.adapter);
    // Only the base's config matters: the adapter's shapes and names are checked against it.
    const ModelConfig base = read_model_config(o.model);
    const convert::GgufExportSummary s = convert::export_lora_gguf(base, o.adapter, o.out, type);
    print_summary(s, "LoRA adapter of " + o.adapter, o.out, timer.seconds());
    return 0;
  }
  const ModelConfig config = read_model_config(o.model);
  convert::gguf_architecture(config);  // refuse before loading the weights
  const fs::path tokenizer_dir =
      data::resolve_tokenizer_dir(o.tokenizer, o.model, config.family, data::resolve_data_dir(o.data_dir));
  // Straight from the checkpoint: one tensor in memory at a time, never the whole model.
  const convert::GgufExportSummary s = convert::export_model_dir_gguf(o.model, tokenizer_dir, o.out, type);
  print_summary(s, fmt::format("model {}, tokenizer {}", o.model, tokenizer_dir.string()), o.out, timer.seconds());
  return 0;
}

}  // namespace

Command register_export_gguf(CLI::App& app) {
  auto o = std::make_shared<ExportGgufOptions>();
  CLI::App* s = app.add_subcommand(
      "export-gguf", "Write a model dir as a GGUF file for llama.cpp, or with --adapter a PEFT LoRA adapter as a GGUF adapter");
  s->add_option("--model", o->model, "Model dir (gpt2, llama or qwen3; with --adapter: the adapter's base)")->required();
  s->add_option("--out", o->out, "GGUF file to write (atomically: a temporary file renamed into place)")->required();
  s->add_option("--type", o->type, "Weight type: f32 (exact), f16, or q8_0 (ggml's 8-bit blocks; F16 where a row is "
                                   "no multiple of 32); norms, biases and position embeddings stay F32")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}));
  s->add_option("--adapter", o->adapter, "PEFT LoRA adapter dir (adapter_config.json + adapter_model.safetensors): "
                                         "write it as a GGUF LoRA adapter (llama.cpp's --lora) instead of the model");
  s->add_option("--tokenizer", o->tokenizer, "Tokenizer dir [default: the model dir's, else its family's in the data dir]");
  s->add_option("--data-dir", o->data_dir, "Data directory with the families' tokenizers (gpt2_tokenizer/, "
                                           "tokenizers/llama3/, tokenizers/qwen/) [default: $GPTRAIN_DATA_DIR or "
                                           "../shared/data]");
  return [o] { return run_export_gguf(*o); };
}

}  // namespace gptrain::cli
