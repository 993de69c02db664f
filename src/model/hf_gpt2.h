// Model dirs: Hugging Face GPT-2 import and export (docs/DESIGN.md §5). A model dir holds
// config.json (Hugging Face GPT-2 keys plus a "gptrain" object for what HF lacks) and
// model.safetensors (HF tensor names, Conv1D [in, out] weights), or a sharded checkpoint
// (model.safetensors.index.json + shards). We read both spellings of the names: bare `wte.weight`,
// `h.0.attn.c_attn.weight` as the Hub serves GPT-2, and `transformer.`-prefixed as
// GPT2LMHeadModel.save_pretrained writes; we write the save_pretrained spelling.
//
// Mapping (ours = HF; "T" = transposed, since HF's Conv1D stores [in, out] and we store [out, in]):
//   tok_emb.weight [V,C] = wte.weight          pos_emb.weight [P,C] = wpe.weight
//   blocks.i.ln1.*  = h.i.ln_1.*               blocks.i.ln2.* = h.i.ln_2.*
//   blocks.i.attn.qkv.weight [3C,C] = T h.i.attn.c_attn.weight [C,3C]   (bias = c_attn.bias;
//       HF always has it: zeros are written for a model without qkv bias, and on import a
//       model without qkv bias requires them to be zero)
//   blocks.i.attn.proj.weight [C,C] = T h.i.attn.c_proj.weight
//   blocks.i.mlp.fc.weight [4C,C]   = T h.i.mlp.c_fc.weight [C,4C]
//   blocks.i.mlp.proj.weight [C,4C] = T h.i.mlp.c_proj.weight [4C,C]
//   ln_f.* = ln_f.*     head.weight [V,C] = lm_head.weight (absent when tied)
//   classifier head.weight [N,C], head.bias [N] = score.weight, score.bias
// The classifier names follow HF's GPT2ForSequenceClassification (`score.weight`, nn.Linear
// layout) but that class has no bias and pools differently, so a classifier dir declares
// architectures ["GPT2Model"]: transformers loads its body; gptrain loads all of it.
// h.i.attn.bias / h.i.attn.masked_bias (causal-mask buffers in older checkpoints) are skipped.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/transformer.h"

namespace gptrain {

// <model_dir>/config.json as a ModelConfig. HF defaults apply to absent keys, as transformers does
// (a plain HF GPT-2: qkv bias on, tied head, dropout from resid_pdrop). Errors name the file and
// the key. A model GPT-2's keys cannot describe (grouped-query heads, other norms, ...) is written
// with model_type "gptrain" and the full description in gptrain.architecture.
ModelConfig read_model_config(const std::filesystem::path& model_dir);
// config.json's text for a config, and back (`file` names the source in errors): a round trip
// gives the same model (ModelConfig::same_model).
std::string model_config_text(const ModelConfig& config, const std::vector<std::string>& class_names = {});
ModelConfig parse_model_config_text(const std::string& text, const std::string& file);
// gptrain.class_names of a classifier dir; empty when absent.
std::vector<std::string> read_class_names(const std::filesystem::path& model_dir);

struct ModelLoadOptions {
  std::optional<float> drop_rate;  // replaces the dir's dropout (finetuning a pretrained model often uses 0)
};

// A model built from the dir's config.json with its weights.
std::unique_ptr<Transformer> load_model_dir(const std::filesystem::path& model_dir, const ModelLoadOptions& options = {});

// The dir's weights into an existing model, after checking every name and shape against the
// model's config before any data is read. include_head = false loads only the body (embeddings,
// blocks, final norm) and leaves the model's output head as it is: a new classifier head over a
// pretrained language model.
void load_model_weights(Transformer& model, const std::filesystem::path& model_dir, bool include_head = true);

// Writes config.json and model.safetensors (each atomically; the directory is created).
// class_names: the label of each class of a classifier (optional).
void save_model_dir(const Transformer& model, const std::filesystem::path& model_dir,
                    const std::vector<std::string>& class_names = {});

}  // namespace gptrain
