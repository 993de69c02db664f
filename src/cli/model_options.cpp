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
  if (with_device) add_device_option(s, o.device);
}

void resolve_model_choice(ModelChoice& c) {
  activate_device(c.device);  // a device that cannot be used is refused before any file is read
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
  std::unique_ptr<Transformer> model = load_model_dir(c.model, load_options(c));
  apply_weights_dtype(*model, weights_dtype);
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
