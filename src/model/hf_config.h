// Inside the model folder: config.json and the checkpoint tensor layout of each family a model dir
// can hold (model_dir.h is the public side). A family is Hugging Face's model_type:
//   gpt2    GPT2Config keys; tensors transformer.{wte,wpe,h.N.*,ln_f}, Conv1D [in, out] layouts
//   llama   LlamaConfig keys; tensors model.{embed_tokens,layers.N.*,norm}, nn.Linear layouts
//   qwen3   Qwen3Config keys; as llama plus self_attn.{q,k}_norm
//   gptrain our own: any ModelConfig (gptrain.architecture), GPT-2's tensor names in our layouts
// Our parameters fuse q | k | v (and gate | up) rows; the Hugging Face tensors fill row ranges.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/tensor.h"

namespace gptrain::hf {

using json = nlohmann::json;

struct HfTensor {
  std::string name;        // as a save_pretrained of the ...ForCausalLM class spells it, prefix removed
  std::string param;       // our parameter; empty: a tensor that must be zero (GPT-2's c_attn.bias without qkv bias)
  Shape shape;             // in the file
  bool transpose = false;  // Conv1D [in, out] in the file, [out, in] in our model (GPT-2)
  bool head = false;       // outside the body (lm_head, score): skipped by body-only loads, never prefixed
  int64_t row_offset = 0;  // the first row of `param` this tensor fills (fused q | k | v, gate | up)
};

// The family a config is written as: its own when that family's keys can describe it, else gptrain.
std::string family_of(const ModelConfig& c);
// The body prefix of the family's checkpoints ("transformer.", "model."); files may omit it.
std::string body_prefix(const std::string& family);
std::vector<HfTensor> layout(const ModelConfig& c);
// Tensors a checkpoint may carry that are not parameters (GPT-2's causal-mask buffers, an old
// Llama's rotary inv_freq).
bool ignorable(const std::string& name);

ModelConfig parse_config(const json& root, const std::string& file);
json config_json(const ModelConfig& c, const std::vector<std::string>& class_names);

// Short JSON for messages.
std::string brief(const json& value);

}  // namespace gptrain::hf
