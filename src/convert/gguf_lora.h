// A Hugging Face PEFT LoRA adapter dir (adapter_config.json + adapter_model.safetensors) as a GGUF
// LoRA adapter for llama.cpp's --lora, for a base model dir exported with export_model_gguf.
//
// PEFT keys: base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r] (nn.Linear
// layouts even over GPT-2's Conv1D, whatever fan_in_fan_out says: it only transposes PEFT's merged
// delta). Modules, with or without the body prefix ("transformer." / "model."):
//   gpt2         h.N.attn.c_attn -> blk.N.attn_qkv, h.N.attn.c_proj -> attn_output,
//                h.N.mlp.c_fc -> ffn_up, h.N.mlp.c_proj -> ffn_down
//   llama/qwen3  layers.N.self_attn.{q,k,v,o}_proj -> attn_q/attn_k/attn_v/attn_output,
//                layers.N.mlp.{gate,up,down}_proj -> ffn_gate/ffn_up/ffn_down
//   lm_head      -> output (only when the base has its own head; a tied head has no tensor to adapt)
// GGUF: <base tensor>.weight.lora_a ne [in, r] (= lora_A as stored), .lora_b ne [r, out] (= lora_B);
// general.type "adapter", adapter.type "lora", adapter.lora.alpha. llama.cpp scales a pair by
// alpha / r (r = that pair's rank). PEFT's own scaling of a module is alpha_m / r_m, or
// alpha_m / sqrt(r_m) with use_rslora, where alpha_m and r_m come from alpha_pattern and
// rank_pattern (the first key that matches the module name as a suffix, as PEFT's
// get_pattern_key), else lora_alpha and r. One global alpha cannot say all of them, so the file's
// alpha is lora_alpha and each lora_b is multiplied by scaling_m * r_m / lora_alpha (exactly 1, and
// lora_b untouched, for a module at the default scaling). Llama's q/k lora_b rows take the base's
// rotary permutation. DoRA, lora biases, modules_to_save, trainable tokens and embedding adapters
// have no GGUF form: each is an error naming the file and key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "convert/gguf_model.h"
#include "model/config.h"

namespace gptrain::convert {

// One adapted module of the adapter file, resolved against the base.
struct LoraModulePlan {
  std::string module;       // PEFT's module name (key without base_model.model. and .lora_X.weight)
  std::string base_tensor;  // llama.cpp's weight it adapts, e.g. "blk.0.attn_qkv.weight"
  int64_t in = 0, out = 0, rank = 0;
  double peft_scaling = 0;  // alpha_m / r_m (or / sqrt(r_m))
  double lora_b_factor = 1;  // peft_scaling * r_m / file alpha (1 when the file's alpha says it)
  int64_t permute_heads = 0;  // Llama q/k: the base's rotary permutation of lora_b's rows
};

struct LoraPlan {
  std::string architecture;
  float alpha = 0;  // adapter.lora.alpha
  std::vector<LoraModulePlan> modules;  // in base tensor order
};

// Reads adapter_config.json and the safetensors header (no tensor data) and checks every key,
// shape and setting against `base`.
LoraPlan plan_lora_adapter(const ModelConfig& base, const std::filesystem::path& adapter_dir);

// Writes the adapter as GGUF (F32, or F16/Q8_0 by gguf_tensor_type's rules), atomically.
GgufExportSummary export_lora_gguf(const ModelConfig& base, const std::filesystem::path& adapter_dir,
                                   const std::filesystem::path& out, GgufFileType type);

}  // namespace gptrain::convert
