#include "cli/model_options.h"

#include "cli/device_option.h"
#include "model/adapter_dir.h"
#include "util/error.h"

namespace gptrain::cli {

namespace fs = std::filesystem;

void add_model_options(CLI::App* s, ModelChoice& o, const char* model_help, bool with_device) {
  s->add_option("--model", o.model, model_help);
  s->add_option("--adapter", o.adapter,
                "LoRA adapter dir (adapter_config.json + adapter_model.safetensors, from gptrain or PEFT) applied to "
                "--model without merging [--model default: the adapter's base_model_name_or_path]");
  if (!with_device) return;
  add_device_option(s, o.device, o.tf32);
  s->add_option("--dtype", o.dtype,
                "What the passes compute in: f32, or bf16 (the float32 weights' bf16 copy, bf16 activations and KV "
                "caches; the bf16 mode of training)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16"}));
}

void resolve_model_choice(ModelChoice& c) {
  // A device, or a --dtype it has no kernels of, is refused before any file is read.
  activate_device(c.device, c.dtype, c.tf32);
  if (!c.adapter.empty()) {
    if (!is_adapter_dir(c.adapter))
      fail("--adapter {}: no adapter_config.json there; give a LoRA adapter dir (a LoRA run's final/, or PEFT's "
           "save_pretrained)",
           c.adapter);
    if (c.model.empty()) {
      c.model = adapter_base_model(c.adapter);
      if (c.model.empty())
        fail("--adapter {}: its adapter_config.json names no base_model_name_or_path; give the base with --model",
             c.adapter);
      if (!fs::is_directory(c.model))
        fail("--adapter {}: its base {} is not a directory here; give the base model dir with --model", c.adapter,
             c.model);
    }
  }
  if (c.model.empty()) fail("--model DIR is required (or --adapter DIR, whose base it then is)");
  if (!fs::is_directory(c.model))
    fail("--model {}: not a directory; give a model dir (config.json + model.safetensors), e.g. one from "
         "`gptrain download gpt2` or a run's final/",
         c.model);
}

ModelLoadOptions load_options(const ModelChoice& c) {
  ModelLoadOptions lo;
  lo.adapter = c.adapter;
  return lo;
}

std::unique_ptr<Transformer> load_chosen_model(const ModelChoice& c, const std::string& weights_dtype) {
  const Device device = device_named(c.device);  // made ready by resolve_model_choice
  if (c.dtype == "bf16" && weights_dtype != "f32")
    fail("--dtype bf16 with --weights-dtype {}: the bf16 mode reads its own bf16 copy of the weights; give one of "
         "the two",
         weights_dtype);
  std::unique_ptr<Transformer> model = load_model_dir(c.model, load_options(c));
  apply_weights_dtype(*model, weights_dtype);
  if (c.dtype == "bf16") model->set_compute_dtype(DType::BF16);
  model->to_device(device);
  return model;
}

fs::path prompt_dir(const ModelChoice& c) {
  if (!c.adapter.empty() &&
      (fs::exists(fs::path(c.adapter) / "tokenizer_config.json") || fs::exists(fs::path(c.adapter) / "generation_config.json")))
    return c.adapter;
  return c.model;
}

void add_weights_dtype_option(CLI::App* s, std::string& dtype) {
  s->add_option("--weights-dtype", dtype,
                "Weights of the decode steps: f32, or f16 / bf16 (half the memory read per token; the model is rounded "
                "to that type)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
}

void apply_weights_dtype(Transformer& model, const std::string& dtype) {
  if (dtype == "f16") model.set_decode_weights(DType::F16);
  if (dtype == "bf16") model.set_decode_weights(DType::BF16);
}

}  // namespace gptrain::cli
