// gptrain merge-lora: a base model dir plus a LoRA adapter dir into one merged model dir (each
// adapted weight W + scaling B A), which runs anywhere a model dir does (transformers, export-gguf).
#include <fmt/core.h>

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "model/adapter_dir.h"
#include "model/model_dir.h"
#include "train/checkpoint.h"
#include "train/classifier_model.h"
#include "util/error.h"

namespace gptrain::cli {

namespace {

namespace fs = std::filesystem;

struct MergeOptions {
  ModelChoice choice;
  std::string out;
  bool overwrite = false;
};

int run_merge_lora(MergeOptions o) {
  // A LoRA classifier's final/ holds its base and the adapter: --model alone names both.
  if (o.choice.adapter.empty() && !o.choice.model.empty() && is_adapter_dir(o.choice.model))
    o.choice.adapter = o.choice.model;
  if (o.choice.adapter.empty()) fail("--adapter DIR is required: the LoRA adapter to merge into --model");
  resolve_model_choice(o.choice);
  const fs::path out = o.out;
  std::error_code ec;
  if (fs::equivalent(out, o.choice.model, ec) || fs::equivalent(out, o.choice.adapter, ec))
    fail("--out {}: the merged model needs its own dir (not the base's or the adapter's)", o.out);
  if (fs::exists(out / "config.json") && !o.overwrite)
    fail("--out {}: holds a model already; pass --overwrite to replace it", o.out);

  std::unique_ptr<Transformer> model = load_model_dir(o.choice.model, load_options(o.choice));
  fmt::print("merging {} into {}: {}\n", o.choice.adapter, o.choice.model, describe(model->adapters()));
  model->merge_adapters();
  if (model->config().head == HeadType::Classifier) {
    const ClassifierInputs in = read_classifier_inputs(o.choice.model);
    save_classifier_dir(*model, out, read_class_names(o.choice.model), in.max_length, in.pad_token_id, o.choice.model);
  } else {
    save_model_dir(*model, out);
    copy_tokenizer_files(o.choice.model, out);
    copy_tokenizer_files(o.choice.adapter, out);  // the adapter's prompt format, when it has one
  }
  fmt::print("merged model in {}\n", out.string());
  return 0;
}

}  // namespace

Command register_merge_lora(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* s = app.add_subcommand("merge-lora", "Merge a LoRA adapter into its base: a plain model dir");
  add_model_options(s, o->choice,
                    "Base model dir [default: the adapter's base_model_name_or_path; a LoRA classifier's final/ holds "
                    "its own base and adapter]",
                    /*with_device=*/false);
  s->add_option("--out", o->out, "Dir of the merged model")->required();
  s->add_flag("--overwrite", o->overwrite, "Replace a model already in --out");
  return [o] { return run_merge_lora(*o); };
}

}  // namespace gptrain::cli
