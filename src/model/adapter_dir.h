// LoRA adapter dirs in PEFT's format (docs/DESIGN.md §5): adapter_config.json (peft_type LORA, r,
// lora_alpha, rank_pattern, alpha_pattern, target_modules, ...) and adapter_model.safetensors with
// `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r], the modules
// named as the base family's transformers class names them:
//   gpt2 (and gptrain)  transformer.h.{i}.attn.c_attn (the fused q|k|v), attn.c_proj, mlp.c_fc,
//                       mlp.c_proj; lm_head / score
//   llama, qwen3        model.layers.{i}.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj; lm_head
//                       / score
// Our adapter on GPT-2's fused c_attn has one segment per part (the book's W_query, W_key, W_value
// adapters): it is written as one PEFT module of rank S R whose lora_B is block-diagonal, with
// rank_pattern and alpha_pattern entries so that PEFT's alpha / r is our scaling: the same
// function. Llama and Qwen3 write one module per part. Reading takes any PEFT LoRA adapter of
// these names (per-module ranks and alphas, rsLoRA); a Linear whose parts have different ranks is
// padded with zero rows to the largest and their scalings folded into B, which is exact.
#pragma once

#include <filesystem>
#include <string>

#include "model/lora.h"
#include "model/transformer.h"

namespace gptrain {

// dir holds adapter_config.json.
bool is_adapter_dir(const std::filesystem::path& dir);

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (each atomically; the directory
// is created) for the model's adapters. base_model: the base's name or path, as PEFT records it.
void save_adapter_dir(const Transformer& model, const std::filesystem::path& dir, const std::string& base_model);

// The adapters the dir describes, for a base model of `config`. Errors name the file and the key:
// missing files, not LoRA, DoRA or bias adapters, a module the base does not have (another
// family, more layers), shapes that do not match the base, a rank against its pattern.
AdapterPlan read_adapter_plan(const std::filesystem::path& dir, const ModelConfig& config);

// The dir's tensors into a model built with read_adapter_plan(dir, its config).
void load_adapter_weights(Transformer& model, const std::filesystem::path& dir);

// base_model_name_or_path of the dir's adapter_config.json ("" when absent).
std::string adapter_base_model(const std::filesystem::path& dir);

}  // namespace gptrain
