// The model side of classification finetuning: the book's "surgery" (a GPT-2 body from a model
// dir or a preset, a new N-class linear head with bias), the freezing modes, and the classifier
// model dir (weights, class names, the padded length it was trained with, the vocabulary).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tokenizer/bpe.h"

namespace gptrain {

struct ClassifierModelOptions {
  std::string init = "gpt2-small";  // a model dir, a preset, or "scratch" (= gpt2-small)
  int64_t context_length = 0;       // presets: 0 = 1024
  ShapeOverrides shape;             // presets only (--tie-weights does not apply: the head is new)
  std::string pool = "last";  // last | first | mean
  double drop_rate = 0.0;
  uint64_t seed = 123;  // initialisation of the new head (and of a preset's body) and of LoRA's A
  LoraOptions lora;     // adapters on every Linear it targets, the new head included
};

// A classifier of n_classes: from a model dir, its body (the dir's head is left out) and a newly
// initialised head (nn.Linear's U(+-1/sqrt(C)) with bias, as the book's torch.nn.Linear); from a
// preset, everything initialised from the seed.
std::unique_ptr<Transformer> build_classifier(const ClassifierModelOptions& options, int64_t n_classes);
// The body's configuration (the dir's or the reshaped preset's), language-model head as read.
ModelConfig classifier_body_config(const ClassifierModelOptions& options);

// Freezes the model but for `mode`: "head" (the output layer only), "last-block" (the book: the
// last transformer block, the final norm and the head), "last-N" (the last N blocks, the final
// norm and the head), "all", "none". A model's LoRA adapters always train (with "none" they alone,
// the book's appendix E). Rebuilds the gradient buffer; returns a description.
std::string apply_trainable(Transformer& model, const std::string& mode);
// The same marks on a parameter layout (nothing allocated); returns the description.
std::string mark_trainable(ParameterSet& params, int64_t n_layers, const std::string& mode);


// The tokenizer's ids and the pad id must be rows of the model's embedding.
void check_vocabulary(const ModelConfig& config, const Tokenizer& tokenizer, int64_t pad_token_id,
                      const std::string& model_name);

// Writes a classifier model dir: config.json (with gptrain.class_names, gptrain.max_length and
// gptrain.pad_token_id, which `gptrain classify` reads), model.safetensors, vocab.json and
// merges.txt (copied from tokenizer_dir).
void save_classifier_dir(const Transformer& model, const std::filesystem::path& dir,
                         const std::vector<std::string>& class_names,
                         int64_t max_length, int32_t pad_token_id, const std::filesystem::path& tokenizer_dir);
// The part beyond save_model_dir: max_length and pad_token_id into config.json (when the dir has
// one: a LoRA checkpoint of adapters alone has none) and the tokenizer's files.
void write_classifier_extras(const std::filesystem::path& dir, int64_t max_length, int32_t pad_token_id,
                             const std::filesystem::path& tokenizer_dir);

// gptrain.max_length and gptrain.pad_token_id of a classifier dir's config.json (0 and 50256 when
// absent, as in a training checkpoint).
struct ClassifierInputs {
  int64_t max_length = 0;
  int32_t pad_token_id = 50256;
};
ClassifierInputs read_classifier_inputs(const std::filesystem::path& dir);

}  // namespace gptrain
