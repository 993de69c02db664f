// Model dirs (docs/DESIGN.md §5): Hugging Face's layout, in and out, for three families, and our
// own for any other ModelConfig. A model dir holds config.json (the family's Hugging Face keys
// plus a "gptrain" object for what they lack) and model.safetensors (f32, f16 or bf16; HF tensor
// names), or a sharded checkpoint (model.safetensors.index.json + shards), and optionally
// generation_config.json. Names are read with or without the body prefix ("transformer.",
// "model.") and written as the ...ForCausalLM class's save_pretrained spells them.
//
// GPT-2 (model_type gpt2; "T" = transposed: HF's Conv1D stores [in, out], we store [out, in]):
//   tok_emb.weight [V,C] = wte.weight          pos_emb.weight [P,C] = wpe.weight
//   blocks.i.ln1.*  = h.i.ln_1.*               blocks.i.ln2.* = h.i.ln_2.*
//   blocks.i.attn.qkv.weight [3C,C] = T h.i.attn.c_attn.weight [C,3C]   (bias = c_attn.bias;
//       HF always has it: zeros are written for a model without qkv bias, and on import a
//       model without qkv bias requires them to be zero)
//   blocks.i.attn.proj.weight [C,C] = T h.i.attn.c_proj.weight
//   blocks.i.mlp.fc.weight [4C,C]   = T h.i.mlp.c_fc.weight [C,4C]
//   blocks.i.mlp.proj.weight [C,4C] = T h.i.mlp.c_proj.weight [4C,C]
//   ln_f.* = ln_f.*     head.weight [V,C] = lm_head.weight (absent when tied)
//   h.i.attn.bias / h.i.attn.masked_bias (causal-mask buffers in older checkpoints) are skipped.
// Llama and Qwen3 (model_type llama, qwen3; nn.Linear layouts, nothing transposed):
//   tok_emb.weight = model.embed_tokens.weight      ln_f.weight = model.norm.weight
//   blocks.i.ln1.weight = model.layers.i.input_layernorm.weight, ln2 = post_attention_layernorm
//   blocks.i.attn.qkv.weight [Q+2KV, C] = rows q_proj | k_proj | v_proj (biases alike with attention_bias)
//   blocks.i.attn.{q,k}_norm.weight = model.layers.i.self_attn.{q,k}_norm.weight (Qwen3)
//   blocks.i.attn.proj.weight = o_proj      blocks.i.mlp.fc.weight [2M, C] = rows gate_proj | up_proj
//   blocks.i.mlp.proj.weight = down_proj    head.weight = lm_head.weight (absent when tied)
// Classifier heads: head.weight [N,C], head.bias [N] = score.weight, score.bias. transformers'
// ...ForSequenceClassification has no bias and pools differently, so a classifier dir declares the
// body class (GPT2Model, LlamaModel, Qwen3Model): transformers loads its body; gptrain all of it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/lora.h"
#include "model/transformer.h"

namespace gptrain {

// <model_dir>/config.json as a ModelConfig. HF defaults apply to absent keys, as transformers does
// (a plain HF GPT-2: qkv bias on, tied head, dropout from resid_pdrop). Both rope spellings are read
// (rope_theta + rope_scaling, transformers 5's rope_parameters). Errors name the file and the key.
// A model no family's keys can describe is written with model_type "gptrain" and the full
// description in gptrain.architecture.
ModelConfig read_model_config(const std::filesystem::path& model_dir);

// The ids generation stops at and starts with: generation_config.json's, else config.json's
// (eos_token_id may be one id or a list, as Llama 3 Instruct's three). Empty when neither says.
// The tensors a model dir of `config` holds, in file order, as save_model_dir names them, and the
// rows of our parameter each one fills (all of it unless fused; GPT-2's Conv1D ones transposed).
struct CheckpointTensor {
  std::string name, param;
  Shape shape;
  int64_t row_offset = 0;
  bool transpose = false;
};
std::vector<CheckpointTensor> checkpoint_tensors(const ModelConfig& config);

struct GenerationConfig {
  std::vector<int32_t> eos_ids;
  int32_t bos_id = -1, pad_id = -1;
};
GenerationConfig read_generation_config(const std::filesystem::path& model_dir);
// config.json's text for a config, and back (`file` names the source in errors): a round trip
// gives the same model (ModelConfig::same_model).
std::string model_config_text(const ModelConfig& config, const std::vector<std::string>& class_names = {});
ModelConfig parse_model_config_text(const std::string& text, const std::string& file);
// gptrain.class_names of a classifier dir; empty when absent.
std::vector<std::string> read_class_names(const std::filesystem::path& model_dir);

struct ModelLoadOptions {
  std::optional<float> drop_rate;  // replaces the dir's dropout (finetuning a pretrained model often uses 0)
  std::filesystem::path adapter;   // a LoRA adapter dir (model/adapter_dir.h) applied without merging
  LoraOptions lora;                // or new adapters to train (A as the book's, from lora_seed; B zero)
  uint64_t lora_seed = 123;
};

// A model built from the dir's config.json with its weights.
std::unique_ptr<Transformer> load_model_dir(const std::filesystem::path& model_dir, const ModelLoadOptions& options = {});

// The dir's weights into an existing model, after checking every name and shape against the
// model's config before any data is read. include_head = false loads only the body (embeddings,
// blocks, final norm) and leaves the model's output head as it is: a new classifier head over a
// pretrained language model.
void load_model_weights(Transformer& model, const std::filesystem::path& model_dir, bool include_head = true);
// load_model_weights's checks alone, for a model of `config` not built yet: a caller that allocates
// the model itself checks first, so that a hostile config.json cannot make it allocate.
void check_model_weights(const ModelConfig& config, const std::filesystem::path& model_dir, bool include_head = true);

// A model dir's weights one parameter (or a row range of one) at a time, straight from its
// memory-mapped checkpoint, without building the model: an exporter streams a large model this
// way with one tensor in memory. Names and shapes (and GPT-2's zero qkv bias) are checked when it
// opens, as load_model_dir checks them.
class ModelDirWeights {
 public:
  explicit ModelDirWeights(const std::filesystem::path& model_dir);
  ~ModelDirWeights();
  ModelDirWeights(const ModelDirWeights&) = delete;
  ModelDirWeights& operator=(const ModelDirWeights&) = delete;
  const ModelConfig& config() const;
  // Rows [row_begin, row_end) of our parameter `param` (its [out, in] layout; a 1-D parameter has
  // rows of one value), as float32, whatever the file stores.
  std::vector<float> rows(const std::string& param, int64_t row_begin, int64_t row_end) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes config.json and model.safetensors (each atomically; the directory is created).
// class_names: the label of each class of a classifier (optional).
void save_model_dir(const Transformer& model, const std::filesystem::path& model_dir,
                    const std::vector<std::string>& class_names = {});

}  // namespace gptrain
