#include "model/hf_config.h"

#include <charconv>
#include <cctype>
#include <cmath>

#include "util/error.h"

namespace gptrain::hf {

std::string brief(const json& value) {
  std::string text = value.dump(-1, ' ', true, json::error_handler_t::replace);
  return text.size() > 60 ? text.substr(0, 60) + "..." : text;
}

namespace {

// Typed access to config.json keys; every error names the file and the key.
class ConfigKeys {
 public:
  ConfigKeys(const json& root, std::string file) : root_(root), file_(std::move(file)) {}

  // The first of `names` present (HF aliases such as hidden_size for n_embd), or nullptr.
  const json* find(std::initializer_list<const char*> names, const char** found = nullptr) const {
    for (const char* name : names)
      if (root_.contains(name) && !root_.at(name).is_null()) {
        if (found) *found = name;
        return &root_.at(name);
      }
    return nullptr;
  }
  int64_t positive_int(std::initializer_list<const char*> names, int64_t fallback) const {
    const char* key = *names.begin();
    const json* v = find(names, &key);
    if (!v) return fallback;
    if (!v->is_number_integer() || v->get<int64_t>() <= 0)
      fail("{}: key '{}' must be a positive integer, got {}", file_, key, brief(*v));
    return v->get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_number()) fail("{}: key '{}' must be a number, got {}", file_, key, brief(*v));
    return v->get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_boolean()) fail("{}: key '{}' must be true or false, got {}", file_, key, brief(*v));
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find({key});
    if (!v) return fallback;
    if (!v->is_string()) fail("{}: key '{}' must be a string, got {}", file_, key, brief(*v));
    return v->get<std::string>();
  }
  const std::string& file() const { return file_; }

 private:
  const json& root_;
  std::string file_;
};

float dropout_value(double p, const std::string& file, const char* key) {
  if (!(p >= 0.0 && p < 1.0)) fail("{}: key '{}' must be in [0, 1), got {}", file, key, p);
  return static_cast<float>(p);
}

float eps_value(double eps, const std::string& file, const char* key) {
  if (!(eps > 0.0 && eps < 1.0)) fail("{}: key '{}' must be in (0, 1), got {}", file, key, eps);
  return static_cast<float>(eps);
}

// The shortest decimal that reads back as the same float ("1e-05", not 9.999999747378752e-06),
// parsed with from_chars so that no locale can turn the point into a comma.
double float_for_json(float value) {
  const std::string text = fmt::format("{}", value);
  double result = 0;
  std::from_chars(text.data(), text.data() + text.size(), result);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Which family can describe a config

bool gpt2_expressible(const ModelConfig& c) {
  const ModelConfig r = c.resolved();
  return r.family == "gpt2" && r.n_kv_heads == r.n_heads && r.head_dim * r.n_heads == r.emb_dim &&
         r.norm == NormKind::LayerNorm && r.norm_bias && r.mlp == MlpKind::GeluTanh &&
         r.positions == PositionKind::Learned && r.out_bias && r.mlp_bias && !r.qk_norm;
}

// Llama and Qwen3 (LlamaConfig, Qwen3Config): RMSNorm, SwiGLU, rotary positions; one
// attention_bias for q, k, v and o; Qwen3 always has query/key norms and no MLP bias.
bool llama_like_expressible(const ModelConfig& c, bool qwen3) {
  const ModelConfig r = c.resolved();
  return r.family == (qwen3 ? "qwen3" : "llama") && r.norm == NormKind::RMSNorm && r.mlp == MlpKind::SwiGLU &&
         r.positions == PositionKind::Rotary && r.qkv_bias == r.out_bias && r.qk_norm == qwen3 &&
         (!qwen3 || !r.mlp_bias);
}

}  // namespace

std::string family_of(const ModelConfig& c) {
  if (gpt2_expressible(c)) return "gpt2";
  if (llama_like_expressible(c, false)) return "llama";
  if (llama_like_expressible(c, true)) return "qwen3";
  return "gptrain";
}

std::string body_prefix(const std::string& family) {
  if (family == "llama" || family == "qwen3") return "model.";
  return "transformer.";
}

bool ignorable(const std::string& name) {
  // h.{i}.attn.bias and h.{i}.attn.masked_bias: GPT-2's causal mask buffers in older checkpoints
  if (name.starts_with("h.")) {
    size_t i = 2;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
    if (i > 2) {
      const std::string_view rest = std::string_view(name).substr(i);
      if (rest == ".attn.bias" || rest == ".attn.masked_bias") return true;
    }
  }
  // layers.{i}.self_attn.rotary_emb.inv_freq: a buffer older Llama checkpoints saved
  return name.ends_with(".rotary_emb.inv_freq");
}

// ---------------------------------------------------------------------------------------------
// gptrain.architecture: everything, written complete whenever the family's keys cannot say it

namespace {

json architecture_json(const ModelConfig& c) {
  const ModelConfig r = c.resolved();
  json a = {{"family", r.family},       {"n_kv_heads", r.n_kv_heads},           {"head_dim", r.head_dim},
            {"mlp_dim", r.mlp_dim},     {"norm", norm_name(r.norm)},            {"norm_bias", r.norm_bias},
            {"mlp", mlp_name(r.mlp)},   {"positions", positions_name(r.positions)}, {"qkv_bias", r.qkv_bias},
            {"out_bias", r.out_bias},   {"mlp_bias", r.mlp_bias},               {"qk_norm", r.qk_norm}};
  if (r.positions == PositionKind::Rotary) {
    json rope = {{"theta", r.rope.theta}};
    if (!r.rope.scaling.empty())
      rope.update({{"scaling", r.rope.scaling},
                   {"factor", r.rope.factor},
                   {"low_freq_factor", r.rope.low_freq_factor},
                   {"high_freq_factor", r.rope.high_freq_factor},
                   {"original_context", r.rope.original_context}});
    a["rope"] = rope;
  }
  return a;
}

void read_architecture(const json& a, const std::string& file, ModelConfig& c) {
  if (!a.is_object()) fail("{}: key 'architecture' must be an object, got {}", file, brief(a));
  const ConfigKeys k(a, file);
  for (const char* key : {"family", "n_kv_heads", "head_dim", "mlp_dim", "norm", "norm_bias", "mlp", "positions",
                          "qkv_bias", "out_bias", "mlp_bias", "qk_norm"})
    if (!k.find({key})) fail("{}: key '{}' is missing", file, key);
  c.family = k.string("family", "gpt2");
  c.n_kv_heads = k.positive_int({"n_kv_heads"}, 0);
  c.head_dim = k.positive_int({"head_dim"}, 0);
  c.mlp_dim = k.positive_int({"mlp_dim"}, 0);
  const std::string norm = k.string("norm", "layernorm");
  if (norm == "layernorm") c.norm = NormKind::LayerNorm;
  else if (norm == "rmsnorm") c.norm = NormKind::RMSNorm;
  else fail("{}: key 'norm' is \"{}\"; expected \"layernorm\" or \"rmsnorm\"", file, norm);
  c.norm_bias = k.boolean("norm_bias", true);
  const std::string mlp = k.string("mlp", "gelu_tanh");
  if (mlp == "gelu_tanh") c.mlp = MlpKind::GeluTanh;
  else if (mlp == "swiglu") c.mlp = MlpKind::SwiGLU;
  else fail("{}: key 'mlp' is \"{}\"; expected \"gelu_tanh\" or \"swiglu\"", file, mlp);
  const std::string positions = k.string("positions", "learned");
  if (positions == "learned") c.positions = PositionKind::Learned;
  else if (positions == "rotary") c.positions = PositionKind::Rotary;
  else fail("{}: key 'positions' is \"{}\"; expected \"learned\" or \"rotary\"", file, positions);
  c.qkv_bias = k.boolean("qkv_bias", false);
  c.out_bias = k.boolean("out_bias", true);
  c.mlp_bias = k.boolean("mlp_bias", true);
  c.qk_norm = k.boolean("qk_norm", false);
  if (c.positions == PositionKind::Rotary) {
    const json* rope = k.find({"rope"});
    if (!rope || !rope->is_object()) fail("{}: rotary positions need a 'rope' object", file);
    const std::string sub = file + " (object 'rope')";
    const ConfigKeys r(*rope, sub);
    c.rope.theta = r.number("theta", 10000.0);
    c.rope.scaling = r.string("scaling", "");
    if (!c.rope.scaling.empty()) {
      c.rope.factor = r.number("factor", 1.0);
      c.rope.low_freq_factor = r.number("low_freq_factor", 1.0);
      c.rope.high_freq_factor = r.number("high_freq_factor", 4.0);
      c.rope.original_context = r.positive_int({"original_context"}, 0);
    }
  }
}

// The gptrain object of any family: dropout, the classifier head, and the architecture.
void read_gptrain_object(const json& ours, const std::string& file, ModelConfig& c, bool gpt2_keys) {
  if (!ours.is_object()) fail("{}: key 'gptrain' must be an object, got {}", file, brief(ours));
  const std::string sub = file + " (object 'gptrain')";
  const ConfigKeys g(ours, sub);
  if (gpt2_keys) c.qkv_bias = g.boolean("qkv_bias", true);
  c.drop_rate = dropout_value(g.number("drop_rate", c.drop_rate), sub, "drop_rate");
  if (const json* a = g.find({"architecture"})) read_architecture(*a, file + " (object 'gptrain.architecture')", c);
  const std::string head = g.string("head", "lm");
  if (head == "classifier") {
    c.head = HeadType::Classifier;
    c.tie_weights = false;
    c.n_classes = g.positive_int({"n_classes"}, 0);
    if (c.n_classes < 2) fail("{}: key 'n_classes' must be at least 2 for a classifier, got {}", sub, c.n_classes);
    const std::string pooling = g.string("pooling", "last");
    if (pooling == "last") c.pooling = Pooling::Last;
    else if (pooling == "first") c.pooling = Pooling::First;
    else if (pooling == "mean") c.pooling = Pooling::Mean;
    else fail("{}: key 'pooling' is \"{}\"; expected \"last\", \"first\" or \"mean\"", sub, pooling);
  } else if (head != "lm") {
    fail("{}: key 'head' is \"{}\"; expected \"lm\" or \"classifier\"", sub, head);
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 (and gptrain, which shares its keys)

ModelConfig parse_gpt2(const ConfigKeys& keys, const std::string& model_type) {
  const std::string& file = keys.file();
  // Absent keys take transformers' GPT2Config defaults, so a dir means the same model here as there.
  ModelConfig c;
  c.emb_dim = keys.positive_int({"n_embd", "hidden_size"}, 768);
  c.n_layers = keys.positive_int({"n_layer", "num_hidden_layers"}, 12);
  c.n_heads = keys.positive_int({"n_head", "num_attention_heads"}, 12);
  c.context_length = keys.positive_int({"n_positions", "max_position_embeddings", "n_ctx"}, 1024);
  c.vocab_size = keys.positive_int({"vocab_size"}, 50257);
  c.norm_eps = eps_value(keys.number("layer_norm_epsilon", 1e-5), file, "layer_norm_epsilon");

  // What our model computes: tanh GELU, attention scaled by 1/sqrt(head size).
  const std::string activation = keys.string("activation_function", "gelu_new");
  if (activation != "gelu_new" && activation != "gelu_pytorch_tanh")
    fail("{}: key 'activation_function' is \"{}\"; gptrain computes the tanh GELU (\"gelu_new\" or "
         "\"gelu_pytorch_tanh\")",
         file, activation);
  if (const json* inner = keys.find({"n_inner"})) {
    if (!inner->is_number_integer() || inner->get<int64_t>() <= 0)
      fail("{}: key 'n_inner' must be a positive integer or null, got {}", file, brief(*inner));
    // (validate() refuses an emb_dim this large; 4 * emb_dim must not overflow before it does)
    if (c.emb_dim > INT64_MAX / 4 || inner->get<int64_t>() != 4 * c.emb_dim) c.mlp_dim = inner->get<int64_t>();
  }
  if (!keys.boolean("scale_attn_weights", true))
    fail("{}: key 'scale_attn_weights' is false; gptrain always scales attention by 1/sqrt(head size)", file);
  if (keys.boolean("scale_attn_by_inverse_layer_idx", false))
    fail("{}: key 'scale_attn_by_inverse_layer_idx' is true; gptrain does not support it", file);
  if (keys.boolean("add_cross_attention", false))
    fail("{}: key 'add_cross_attention' is true; gptrain's GPT-2 has no cross-attention", file);

  c.tie_weights = keys.boolean("tie_word_embeddings", true);
  c.qkv_bias = true;  // HF GPT-2 always has c_attn.bias
  c.drop_rate = dropout_value(keys.number("resid_pdrop", 0.1), file, "resid_pdrop");

  const json* ours = keys.find({"gptrain"});
  if (model_type == "gptrain" && (!ours || !ours->is_object() || !ours->contains("architecture")))
    fail("{}: model_type \"gptrain\" needs 'gptrain.architecture'", file);
  if (ours) {
    read_gptrain_object(*ours, file, c, /*gpt2_keys=*/true);
  } else if (const json* arch = keys.find({"architectures"}); arch && arch->is_array()) {
    for (const json& a : *arch)
      if (!(a == "GPT2LMHeadModel" || a == "GPT2Model"))
        fail("{}: key 'architectures' names {}; gptrain imports GPT2LMHeadModel and GPT2Model checkpoints", file,
             brief(a));
  }
  if (c.head_dim == 0 && c.emb_dim % c.n_heads != 0)
    fail("{}: key 'n_embd' ({}) must be divisible by 'n_head' ({})", file, c.emb_dim, c.n_heads);
  return c;
}

json gpt2_json(const ModelConfig& c, bool classifier, double dropout) {
  const int64_t eos = std::min<int64_t>(50256, c.vocab_size - 1);
  return {
      {"activation_function", "gelu_new"},
      {"architectures", {classifier ? "GPT2Model" : "GPT2LMHeadModel"}},
      {"attn_pdrop", dropout},
      {"bos_token_id", eos},
      {"embd_pdrop", dropout},
      {"eos_token_id", eos},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", float_for_json(c.norm_eps)},
      {"model_type", "gpt2"},
      {"n_embd", c.emb_dim},
      {"n_head", c.n_heads},
      {"n_inner", c.mlp_width() == 4 * c.emb_dim ? json(nullptr) : json(c.mlp_width())},
      {"n_layer", c.n_layers},
      {"n_positions", c.context_length},
      {"reorder_and_upcast_attn", false},
      {"resid_pdrop", dropout},
      {"scale_attn_by_inverse_layer_idx", false},
      {"scale_attn_weights", true},
      {"tie_word_embeddings", !classifier && c.tie_weights},
      {"use_cache", true},
      {"vocab_size", c.vocab_size},
  };
}

// ---------------------------------------------------------------------------------------------
// Llama and Qwen3

// rope_theta + rope_scaling (transformers 4), or rope_parameters (transformers 5).
RopeConfig parse_rope(const ConfigKeys& keys) {
  const std::string& file = keys.file();
  RopeConfig r;
  r.theta = keys.number("rope_theta", 10000.0);
  const json* scaling = keys.find({"rope_parameters"});
  const char* where = "rope_parameters";
  if (scaling) {
    if (!scaling->is_object()) fail("{}: key 'rope_parameters' must be an object, got {}", file, brief(*scaling));
    const ConfigKeys p(*scaling, file + " (object 'rope_parameters')");
    r.theta = p.number("rope_theta", r.theta);
  } else {
    scaling = keys.find({"rope_scaling"});
    where = "rope_scaling";
  }
  if (!scaling) return r;
  if (!scaling->is_object()) fail("{}: key '{}' must be an object or null, got {}", file, where, brief(*scaling));
  const ConfigKeys s(*scaling, file + " (object '" + where + "')");
  const std::string type = s.string("rope_type", s.string("type", "default"));
  if (type == "default") return r;
  if (type != "llama3")
    fail("{}: key '{}.rope_type' is \"{}\"; gptrain computes the default rotary frequencies and \"llama3\"'s "
         "scaling",
         file, where, type);
  r.scaling = "llama3";
  r.factor = s.number("factor", 8.0);
  r.low_freq_factor = s.number("low_freq_factor", 1.0);
  r.high_freq_factor = s.number("high_freq_factor", 4.0);
  r.original_context = s.positive_int({"original_max_position_embeddings"}, 8192);
  return r;
}

ModelConfig parse_llama_like(const ConfigKeys& keys, const std::string& model_type) {
  const std::string& file = keys.file();
  const bool qwen3 = model_type == "qwen3";
  ModelConfig c;
  c.family = model_type;
  // Absent keys take transformers' LlamaConfig / Qwen3Config defaults.
  c.vocab_size = keys.positive_int({"vocab_size"}, qwen3 ? 151936 : 32000);
  c.emb_dim = keys.positive_int({"hidden_size"}, 4096);
  c.mlp_dim = keys.positive_int({"intermediate_size"}, qwen3 ? 22016 : 11008);
  c.n_layers = keys.positive_int({"num_hidden_layers"}, 32);
  c.n_heads = keys.positive_int({"num_attention_heads"}, 32);
  c.n_kv_heads = keys.positive_int({"num_key_value_heads"}, c.n_heads);
  c.head_dim = keys.positive_int({"head_dim"}, qwen3 ? 128 : c.emb_dim / c.n_heads);
  if (!qwen3 && !keys.find({"head_dim"}) && c.emb_dim % c.n_heads != 0)
    fail("{}: key 'hidden_size' ({}) must be divisible by 'num_attention_heads' ({}) when 'head_dim' is absent", file,
         c.emb_dim, c.n_heads);
  c.context_length = keys.positive_int({"max_position_embeddings"}, qwen3 ? 32768 : 2048);
  const std::string act = keys.string("hidden_act", "silu");
  if (act != "silu")
    fail("{}: key 'hidden_act' is \"{}\"; gptrain's {} MLP is SwiGLU (\"silu\")", file, act, model_type);
  c.norm = NormKind::RMSNorm;
  c.norm_bias = false;
  c.norm_eps = eps_value(keys.number("rms_norm_eps", 1e-6), file, "rms_norm_eps");
  c.mlp = MlpKind::SwiGLU;
  c.positions = PositionKind::Rotary;
  c.rope = parse_rope(keys);
  c.qkv_bias = c.out_bias = keys.boolean("attention_bias", false);
  c.mlp_bias = qwen3 ? false : keys.boolean("mlp_bias", false);
  c.qk_norm = qwen3;
  c.tie_weights = keys.boolean("tie_word_embeddings", false);
  c.drop_rate = 0.0f;  // transformers' attention_dropout acts on the probabilities only; ours is gptrain.drop_rate
  if (qwen3 && keys.boolean("use_sliding_window", false))
    fail("{}: key 'use_sliding_window' is true; gptrain's attention is full causal attention", file);
  if (const json* ours = keys.find({"gptrain"})) read_gptrain_object(*ours, file, c, /*gpt2_keys=*/false);
  else if (const json* arch = keys.find({"architectures"}); arch && arch->is_array()) {
    const std::string lm = qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM", body = qwen3 ? "Qwen3Model" : "LlamaModel";
    for (const json& a : *arch)
      if (!(a == lm || a == body))
        fail("{}: key 'architectures' names {}; gptrain imports {} and {} checkpoints", file, brief(a), lm, body);
  }
  return c;
}

json llama_like_json(const ModelConfig& c, bool classifier) {
  const bool qwen3 = c.family == "qwen3";
  const ModelConfig r = c.resolved();
  json rope_parameters = {{"rope_type", r.rope.scaling.empty() ? "default" : r.rope.scaling},
                          {"rope_theta", r.rope.theta}};
  json rope_scaling = nullptr;
  if (r.rope.scaling == "llama3") {
    rope_scaling = {{"rope_type", "llama3"},
                    {"factor", r.rope.factor},
                    {"low_freq_factor", r.rope.low_freq_factor},
                    {"high_freq_factor", r.rope.high_freq_factor},
                    {"original_max_position_embeddings", r.rope.original_context}};
    rope_parameters.update(rope_scaling);
  }
  json j = {
      {"architectures", {classifier ? (qwen3 ? "Qwen3Model" : "LlamaModel") : (qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM")}},
      {"attention_bias", r.qkv_bias},
      {"attention_dropout", 0.0},
      {"head_dim", r.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", r.emb_dim},
      {"initializer_range", 0.02},
      {"intermediate_size", r.mlp_dim},
      {"max_position_embeddings", r.context_length},
      {"model_type", r.family},
      {"num_attention_heads", r.n_heads},
      {"num_hidden_layers", r.n_layers},
      {"num_key_value_heads", r.n_kv_heads},
      {"rms_norm_eps", float_for_json(r.norm_eps)},
      // both spellings: transformers 4 reads rope_theta + rope_scaling, transformers 5 rope_parameters
      {"rope_theta", r.rope.theta},
      {"rope_scaling", rope_scaling},
      {"rope_parameters", rope_parameters},
      {"tie_word_embeddings", !classifier && r.tie_weights},
      {"torch_dtype", "float32"},
      {"use_cache", true},
      {"vocab_size", r.vocab_size},
  };
  if (qwen3) {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
  } else {
    j["mlp_bias"] = r.mlp_bias;
    j["pretraining_tp"] = 1;
  }
  return j;
}

}  // namespace

ModelConfig parse_config(const json& root, const std::string& file) {
  if (!root.is_object()) fail("{}: expected a JSON object, got {}", file, brief(root));
  const ConfigKeys keys(root, file);
  const std::string model_type = keys.string("model_type", "gpt2");
  ModelConfig c;
  if (model_type == "gpt2" || model_type == "gptrain") {
    c = parse_gpt2(keys, model_type);
  } else if (model_type == "llama" || model_type == "qwen3") {
    c = parse_llama_like(keys, model_type);
  } else {
    fail("{}: key 'model_type' is \"{}\"; gptrain reads \"gpt2\", \"llama\", \"qwen3\" and its own \"gptrain\" "
         "model dirs",
         file, model_type);
  }
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", file, e.what());
  }
  return c;
}

json config_json(const ModelConfig& c, const std::vector<std::string>& class_names) {
  const bool classifier = c.head == HeadType::Classifier;
  const double dropout = float_for_json(c.drop_rate);
  const std::string family = family_of(c);
  json j = family == "llama" || family == "qwen3" ? llama_like_json(c, classifier) : gpt2_json(c, classifier, dropout);
  json g = {{"drop_rate", dropout}, {"head", classifier ? "classifier" : "lm"}};
  if (family == "gpt2" || family == "gptrain") g["qkv_bias"] = c.qkv_bias;
  if (classifier) {
    g["n_classes"] = c.n_classes;
    g["pooling"] = pooling_name(c.pooling);
    if (!class_names.empty()) g["class_names"] = class_names;
  }
  if (family == "gptrain") {
    j["model_type"] = "gptrain";
    g["architecture"] = architecture_json(c);
    j["architectures"] = {"GptrainModel"};  // not a transformers class: transformers cannot build it
  }
  j["gptrain"] = g;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Tensor layouts

namespace {

// GPT-2's, in the order save_pretrained writes them (also gptrain's own family, in its shapes).
std::vector<HfTensor> gpt2_layout(const ModelConfig& c) {
  const int64_t V = c.vocab_size, P = c.context_length, C = c.emb_dim, M = c.mlp_width(), W = c.qkv_width(),
                Q = c.q_width();
  // HF GPT-2 always has the biases; a gptrain architecture without them stores none.
  const bool hf = gpt2_expressible(c);
  const int64_t H = c.mlp == MlpKind::SwiGLU ? 2 * M : M;
  std::vector<HfTensor> t;
  t.push_back({"wte.weight", "tok_emb.weight", {V, C}});
  if (c.learned_positions()) t.push_back({"wpe.weight", "pos_emb.weight", {P, C}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
    t.push_back({h + "ln_1.weight", b + "ln1.weight", {C}});
    if (c.norm == NormKind::LayerNorm && c.norm_bias) t.push_back({h + "ln_1.bias", b + "ln1.bias", {C}});
    t.push_back({h + "attn.c_attn.weight", b + "attn.qkv.weight", {C, W}, true});
    if (c.qkv_bias || hf) t.push_back({h + "attn.c_attn.bias", c.qkv_bias ? b + "attn.qkv.bias" : "", {W}});
    if (c.qk_norm) {
      t.push_back({h + "attn.q_norm.weight", b + "attn.q_norm.weight", {c.head_size()}});
      t.push_back({h + "attn.k_norm.weight", b + "attn.k_norm.weight", {c.head_size()}});
    }
    t.push_back({h + "attn.c_proj.weight", b + "attn.proj.weight", {Q, C}, true});
    if (c.out_bias) t.push_back({h + "attn.c_proj.bias", b + "attn.proj.bias", {C}});
    t.push_back({h + "ln_2.weight", b + "ln2.weight", {C}});
    if (c.norm == NormKind::LayerNorm && c.norm_bias) t.push_back({h + "ln_2.bias", b + "ln2.bias", {C}});
    t.push_back({h + "mlp.c_fc.weight", b + "mlp.fc.weight", {C, H}, true});
    if (c.mlp_bias) t.push_back({h + "mlp.c_fc.bias", b + "mlp.fc.bias", {H}});
    t.push_back({h + "mlp.c_proj.weight", b + "mlp.proj.weight", {M, C}, true});
    if (c.mlp_bias) t.push_back({h + "mlp.c_proj.bias", b + "mlp.proj.bias", {C}});
  }
  t.push_back({"ln_f.weight", "ln_f.weight", {C}});
  if (c.norm == NormKind::LayerNorm && c.norm_bias) t.push_back({"ln_f.bias", "ln_f.bias", {C}});
  if (c.head == HeadType::Classifier) {
    t.push_back({"score.weight", "head.weight", {c.n_classes, C}, false, true});
    t.push_back({"score.bias", "head.bias", {c.n_classes}, false, true});
  } else if (!c.tie_weights) {
    t.push_back({"lm_head.weight", "head.weight", {V, C}, false, true});
  }
  return t;
}

// Llama's and Qwen3's (model.embed_tokens, model.layers.N.*, model.norm, lm_head): q, k and v
// fill the rows of our fused qkv, gate and up those of our fused fc.
std::vector<HfTensor> llama_layout(const ModelConfig& c) {
  const int64_t V = c.vocab_size, C = c.emb_dim, M = c.mlp_width(), Q = c.q_width(), KV = c.kv_width();
  std::vector<HfTensor> t;
  t.push_back({"embed_tokens.weight", "tok_emb.weight", {V, C}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = "layers." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
    t.push_back({h + "input_layernorm.weight", b + "ln1.weight", {C}});
    t.push_back({h + "self_attn.q_proj.weight", b + "attn.qkv.weight", {Q, C}, false, false, 0});
    t.push_back({h + "self_attn.k_proj.weight", b + "attn.qkv.weight", {KV, C}, false, false, Q});
    t.push_back({h + "self_attn.v_proj.weight", b + "attn.qkv.weight", {KV, C}, false, false, Q + KV});
    if (c.qkv_bias) {
      t.push_back({h + "self_attn.q_proj.bias", b + "attn.qkv.bias", {Q}, false, false, 0});
      t.push_back({h + "self_attn.k_proj.bias", b + "attn.qkv.bias", {KV}, false, false, Q});
      t.push_back({h + "self_attn.v_proj.bias", b + "attn.qkv.bias", {KV}, false, false, Q + KV});
    }
    if (c.qk_norm) {
      t.push_back({h + "self_attn.q_norm.weight", b + "attn.q_norm.weight", {c.head_size()}});
      t.push_back({h + "self_attn.k_norm.weight", b + "attn.k_norm.weight", {c.head_size()}});
    }
    t.push_back({h + "self_attn.o_proj.weight", b + "attn.proj.weight", {C, Q}});
    if (c.out_bias) t.push_back({h + "self_attn.o_proj.bias", b + "attn.proj.bias", {C}});
    t.push_back({h + "post_attention_layernorm.weight", b + "ln2.weight", {C}});
    t.push_back({h + "mlp.gate_proj.weight", b + "mlp.fc.weight", {M, C}, false, false, 0});
    t.push_back({h + "mlp.up_proj.weight", b + "mlp.fc.weight", {M, C}, false, false, M});
    if (c.mlp_bias) {
      t.push_back({h + "mlp.gate_proj.bias", b + "mlp.fc.bias", {M}, false, false, 0});
      t.push_back({h + "mlp.up_proj.bias", b + "mlp.fc.bias", {M}, false, false, M});
    }
    t.push_back({h + "mlp.down_proj.weight", b + "mlp.proj.weight", {C, M}});
    if (c.mlp_bias) t.push_back({h + "mlp.down_proj.bias", b + "mlp.proj.bias", {C}});
  }
  t.push_back({"norm.weight", "ln_f.weight", {C}});
  if (c.head == HeadType::Classifier) {
    t.push_back({"score.weight", "head.weight", {c.n_classes, C}, false, true});
    t.push_back({"score.bias", "head.bias", {c.n_classes}, false, true});
  } else if (!c.tie_weights) {
    t.push_back({"lm_head.weight", "head.weight", {V, C}, false, true});
  }
  return t;
}

}  // namespace

std::vector<HfTensor> layout(const ModelConfig& c) {
  const std::string family = family_of(c);
  return family == "llama" || family == "qwen3" ? llama_layout(c) : gpt2_layout(c);
}

}  // namespace gptrain::hf
