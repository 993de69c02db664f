// --model and --adapter of the commands that run a model (generate, answer, chat): a base model
// dir and, optionally, a LoRA adapter dir (PEFT's format, model/adapter_dir.h) applied without
// merging. Without --model the adapter's base_model_name_or_path is the base.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>

#include "model/model_dir.h"

namespace gptrain::cli {

struct ModelChoice {
  std::string model;         // the base model dir
  std::string adapter;       // a LoRA adapter dir, or ""
  std::string device = "cpu";  // --device (cli/device_option.h)
  std::string dtype = "f32";   // --dtype: what the passes compute in (bf16: activations and KV caches too)
  bool tf32 = false;           // --tf32 (cli/device_option.h)
};

// --model, --adapter and (with_device) --device and --dtype.
void add_model_options(CLI::App* s, ModelChoice& o, const char* model_help, bool with_device = true);

// Fills --model from the adapter when it was omitted; checks that both are directories. Errors
// name the option.
void resolve_model_choice(ModelChoice& c);

ModelLoadOptions load_options(const ModelChoice& c);

// The chosen model on its device (after resolve_model_choice, which makes the device ready before
// any file is read): the model and adapter loaded, its decode weights rounded to `weights_dtype`
// (f32: none) or its compute type set (--dtype bf16: the bf16 mode's copy of the f32 weights,
// read by every pass), then moved.
std::unique_ptr<Transformer> load_chosen_model(const ModelChoice& c, const std::string& weights_dtype = "f32");

// --weights-dtype f32|f16|bf16 of the decoding commands: decode rows read the weights in that type
// (Transformer::set_decode_weights; the model becomes its rounding).
void add_weights_dtype_option(CLI::App* s, std::string& dtype);
void apply_weights_dtype(Transformer& model, const std::string& dtype);

// The dir whose prompt format (tokenizer_config.json) and generation_config.json describe the
// model as trained: the adapter's when it has them (finetune-instruct writes them there), else the
// model's.
std::filesystem::path prompt_dir(const ModelChoice& c);

}  // namespace gptrain::cli
