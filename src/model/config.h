// ModelConfig: a decoder-only pre-norm transformer, described by its parts (the way gemma.cpp's
// configs describe a layer): vocabulary, context, width, layers, query and key/value heads, head
// size, MLP width, the norm and its epsilon, the MLP kind, learned or rotary positions, which
// projections have biases, per-head query/key norms, a tied or separate output head, dropout, and
// the head type (language model, or N classes read at pooled positions). GPT-2's four presets are
// instances. Derived sizes (head size = width / heads, MLP width = 4 x width, key/value heads =
// query heads) are stored as 0 and read through the accessors, so overriding the width of a preset
// keeps them consistent; resolved() fills them in. Every combination runs: LayerNorm or RMSNorm,
// GELU or SwiGLU, learned or rotary positions, grouped-query heads, per-head query/key norms.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptrain {

enum class HeadType { LanguageModel, Classifier };
enum class Pooling { Last, First, Mean };  // which positions a classifier head reads
enum class NormKind { LayerNorm, RMSNorm };
enum class MlpKind { GeluTanh, SwiGLU };
enum class PositionKind { Learned, Rotary };

// Rotary embeddings: frequency theta^(-2i/d) per pair of channels (Hugging Face's rotate-half
// layout), optionally rescaled by Llama 3's rule ("llama3": factor, low/high frequency factors and
// the original context).
struct RopeConfig {
  double theta = 10000.0;
  std::string scaling;  // "" (none) or "llama3"
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_context = 0;
  bool operator==(const RopeConfig&) const = default;
};

struct ModelConfig {
  std::string family = "gpt2";  // gpt2 (the book's GPTModel and OpenAI's GPT-2), or a custom stack
  int64_t vocab_size = 50257;
  int64_t context_length = 1024;
  int64_t emb_dim = 768;
  int64_t n_layers = 12;
  int64_t n_heads = 12;
  int64_t n_kv_heads = 0;  // 0: n_heads (multi-head attention)
  int64_t head_dim = 0;    // 0: emb_dim / n_heads
  int64_t mlp_dim = 0;     // 0: 4 * emb_dim
  NormKind norm = NormKind::LayerNorm;
  bool norm_bias = true;  // LayerNorm's shift
  float norm_eps = 1e-5f;
  MlpKind mlp = MlpKind::GeluTanh;
  PositionKind positions = PositionKind::Learned;
  RopeConfig rope;
  bool qkv_bias = false;  // the book's default; OpenAI's GPT-2 has it
  bool out_bias = true;   // attention output projection
  bool mlp_bias = true;
  bool qk_norm = false;   // a norm of each query and key head before attention (Qwen3)
  bool tie_weights = false;  // output head shares tok_emb (GPT-2 original); the book keeps them apart
  float drop_rate = 0.1f;
  HeadType head = HeadType::LanguageModel;
  int64_t n_classes = 0;  // classifier head only
  Pooling pooling = Pooling::Last;

  int64_t kv_heads() const { return n_kv_heads ? n_kv_heads : n_heads; }
  int64_t head_size() const { return head_dim ? head_dim : (n_heads ? emb_dim / n_heads : 0); }
  int64_t mlp_width() const { return mlp_dim ? mlp_dim : 4 * emb_dim; }
  int64_t q_width() const { return n_heads * head_size(); }
  int64_t kv_width() const { return kv_heads() * head_size(); }
  int64_t qkv_width() const { return q_width() + 2 * kv_width(); }
  bool learned_positions() const { return positions == PositionKind::Learned; }
  // The same model with every derived size written out.
  ModelConfig resolved() const;
  // Throws gptrain::Error naming the offending field when the values cannot form a model.
  void validate() const;
  // Equal as models (derived sizes compared resolved).
  bool same_model(const ModelConfig& other) const;
};

// "gpt2-small" (124M), "gpt2-medium" (355M), "gpt2-large" (774M), "gpt2-xl" (1558M), with the
// book's GPT_CONFIG_124M defaults otherwise (context 1024, dropout 0.1, no qkv bias, untied head);
// also "124M", "355M", "774M", "1558M". "llama-3.2-1b", "llama-3.2-3b", "qwen3-0.6b", "qwen3-1.7b"
// as their Hugging Face configs; "llama-tiny" and "qwen3-tiny" (width 256, 4 blocks, 4 query heads
// over 2 key/value heads of 64; llama-tiny with plain rotary theta) for pretraining on a small machine. Returns false for an unknown name.
bool preset_config(const std::string& name, ModelConfig& config);
std::vector<std::string> preset_names();
// "gpt2-small, gpt2-medium, ..." for messages.
std::string preset_list();

// A preset reshaped from the command line (--emb-dim, --n-layers, --n-heads, --n-kv-heads,
// --head-dim, --mlp-dim, --qkv-bias, --tie-weights): 0 and false keep the preset's value; the
// flags only turn a feature on, so Llama and Qwen3 presets keep their tied heads.
struct ShapeOverrides {
  int64_t emb_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, mlp_dim = 0;
  bool qkv_bias = false, tie_weights = false;
  bool any() const;
  void apply(ModelConfig& config) const;
  // "--emb-dim, --n-layers, ..." of the options that are set, for "only a preset takes" errors.
  std::string given() const;
};

const char* norm_name(NormKind k);          // "layernorm", "rmsnorm"
const char* mlp_name(MlpKind k);            // "gelu_tanh", "swiglu"
const char* positions_name(PositionKind k);  // "learned", "rotary"
const char* pooling_name(Pooling p);        // "last", "first", "mean"

}  // namespace gptrain
