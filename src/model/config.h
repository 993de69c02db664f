// GPT-2 configuration: the book's config keys (vocab_size, context_length, emb_dim, n_heads,
// n_layers, drop_rate, qkv_bias) plus the head and weight tying, and the four named presets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/params.h"

namespace gptrain {

enum class HeadType { LanguageModel, Classifier };
using Pooling = kernels::PoolMode;  // which positions a classifier head reads

struct GPT2Config {
  int64_t vocab_size = 50257;
  int64_t context_length = 1024;
  int64_t emb_dim = 768;
  int64_t n_heads = 12;
  int64_t n_layers = 12;
  float drop_rate = 0.1f;
  bool qkv_bias = false;
  bool tie_weights = false;  // output head shares tok_emb (GPT-2 original); the book keeps them apart
  float layer_norm_eps = 1e-5f;
  HeadType head = HeadType::LanguageModel;
  int64_t n_classes = 0;  // classifier head only
  Pooling pooling = Pooling::Last;

  int64_t head_size() const { return emb_dim / n_heads; }
  // Throws gptrain::Error naming the offending key when the values cannot form a model.
  void validate() const;
};

// "gpt2-small" (124M), "gpt2-medium" (355M), "gpt2-large" (774M), "gpt2-xl" (1558M), with the
// book's GPT_CONFIG_124M defaults otherwise (context 1024, dropout 0.1, no qkv bias, untied head).
// Also accepts "124M", "355M", "774M", "1558M". Returns false for an unknown name.
bool preset_config(const std::string& name, GPT2Config& config);
std::vector<std::string> preset_names();

struct ParameterCounts {
  int64_t total;        // every parameter, the output head included unless tied
  int64_t without_head; // total minus the output head (the book's "tied" count for LM heads)
  int64_t head;
};
ParameterCounts count_parameters(const GPT2Config& config);

}  // namespace gptrain
