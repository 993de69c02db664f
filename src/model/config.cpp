#include "model/config.h"

#include "util/error.h"

namespace gptrain {

const char* norm_name(NormKind k) { return k == NormKind::LayerNorm ? "layernorm" : "rmsnorm"; }
const char* mlp_name(MlpKind k) { return k == MlpKind::GeluTanh ? "gelu_tanh" : "swiglu"; }
const char* positions_name(PositionKind k) { return k == PositionKind::Learned ? "learned" : "rotary"; }
const char* pooling_name(Pooling p) { return p == Pooling::Last ? "last" : p == Pooling::First ? "first" : "mean"; }

ModelConfig ModelConfig::resolved() const {
  ModelConfig c = *this;
  c.n_kv_heads = kv_heads();
  c.head_dim = head_size();
  c.mlp_dim = mlp_width();
  return c;
}

bool ModelConfig::same_model(const ModelConfig& other) const {
  const ModelConfig a = resolved(), b = other.resolved();
  return a.family == b.family && a.vocab_size == b.vocab_size && a.context_length == b.context_length &&
         a.emb_dim == b.emb_dim && a.n_layers == b.n_layers && a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads &&
         a.head_dim == b.head_dim && a.mlp_dim == b.mlp_dim && a.norm == b.norm && a.norm_bias == b.norm_bias &&
         a.norm_eps == b.norm_eps && a.mlp == b.mlp && a.positions == b.positions &&
         (a.positions != PositionKind::Rotary || a.rope == b.rope) && a.qkv_bias == b.qkv_bias &&
         a.out_bias == b.out_bias && a.mlp_bias == b.mlp_bias && a.qk_norm == b.qk_norm &&
         a.tie_weights == b.tie_weights && a.drop_rate == b.drop_rate && a.head == b.head &&
         (a.head != HeadType::Classifier || (a.n_classes == b.n_classes && a.pooling == b.pooling));
}

void ModelConfig::validate() const {
  if (vocab_size <= 0) fail("config: vocab_size must be positive, got {}", vocab_size);
  if (context_length <= 0) fail("config: context_length must be positive, got {}", context_length);
  if (emb_dim <= 0) fail("config: emb_dim must be positive, got {}", emb_dim);
  if (n_heads <= 0) fail("config: n_heads must be positive, got {}", n_heads);
  if (n_layers < 0) fail("config: n_layers must not be negative, got {}", n_layers);
  if (n_kv_heads < 0 || head_dim < 0 || mlp_dim < 0)
    fail("config: n_kv_heads, head_dim and mlp_dim must not be negative (0: derived), got {}, {}, {}", n_kv_heads,
         head_dim, mlp_dim);
  // Far beyond any real model, and small enough that no shape, width or parameter count computed
  // from the sizes overflows int64 (a config.json is untrusted input).
  constexpr int64_t kMaxWidth = int64_t{1} << 20, kMaxContext = int64_t{1} << 24, kMaxLayers = 4096;
  const struct {
    const char* name;
    int64_t value, limit;
  } sizes[] = {{"vocab_size", vocab_size, kMaxWidth}, {"context_length", context_length, kMaxContext},
               {"emb_dim", emb_dim, kMaxWidth},       {"n_layers", n_layers, kMaxLayers},
               {"n_heads", n_heads, kMaxWidth},       {"n_kv_heads", n_kv_heads, kMaxWidth},
               {"head_dim", head_dim, kMaxWidth},     {"mlp_dim", mlp_dim, kMaxWidth},
               {"n_classes", n_classes, kMaxWidth}};
  for (const auto& s : sizes)
    if (s.value > s.limit) fail("config: {} {} is more than gptrain supports ({})", s.name, s.value, s.limit);
  if (q_width() > kMaxWidth || kv_width() > kMaxWidth || mlp_width() > kMaxWidth)
    fail("config: attention width {} (n_heads x head size), key/value width {} or MLP width {} is more than gptrain "
         "supports ({})",
         q_width(), kv_width(), mlp_width(), kMaxWidth);
  if (head_dim == 0 && emb_dim % n_heads != 0)
    fail("config: emb_dim {} is not divisible by n_heads {} (or give head_dim)", emb_dim, n_heads);
  if (n_heads % kv_heads() != 0)
    fail("config: n_heads {} is not a multiple of n_kv_heads {} (each key/value head serves a group of query heads)",
         n_heads, kv_heads());
  if (!(drop_rate >= 0.0f && drop_rate < 1.0f)) fail("config: drop_rate must be in [0, 1), got {}", drop_rate);
  if (!(norm_eps > 0.0f)) fail("config: norm_eps must be positive, got {}", norm_eps);
  if (positions == PositionKind::Rotary) {
    if (!(rope.theta > 0)) fail("config: rope theta must be positive, got {}", rope.theta);
    if (head_size() % 2 != 0) fail("config: rotary positions need an even head size, got {}", head_size());
    if (!rope.scaling.empty() && rope.scaling != "llama3")
      fail("config: rope scaling '{}' is not known (expected none or llama3)", rope.scaling);
    if (rope.scaling == "llama3" && !(rope.factor > 0 && rope.original_context > 0 && rope.low_freq_factor > 0 &&
                                      rope.high_freq_factor > rope.low_freq_factor))
      fail("config: llama3 rope scaling needs factor > 0, original_context > 0 and high_freq_factor > "
           "low_freq_factor > 0");
  }
  if (head == HeadType::Classifier) {
    if (n_classes < 2) fail("config: a classifier needs at least 2 classes, got {}", n_classes);
    if (tie_weights) fail("config: a classifier head cannot be tied to the token embedding");
  }
}

namespace {

// Llama 3.2 and Qwen3 as their Hugging Face config.json describe them (no dropout, tied heads, no
// biases); the small ones keep the families' parts at a width a 2-core machine can pretrain.
ModelConfig llama3(int64_t emb, int64_t layers, int64_t heads, int64_t kv, int64_t head_dim, int64_t mlp) {
  ModelConfig c;
  c.family = "llama";
  c.vocab_size = 128256;
  c.context_length = 131072;
  c.emb_dim = emb;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.head_dim = head_dim;
  c.mlp_dim = mlp;
  c.norm = NormKind::RMSNorm;
  c.norm_bias = false;
  c.norm_eps = 1e-5f;
  c.mlp = MlpKind::SwiGLU;
  c.positions = PositionKind::Rotary;
  c.rope = RopeConfig{500000.0, "llama3", 32.0, 1.0, 4.0, 8192};
  c.qkv_bias = c.out_bias = c.mlp_bias = false;
  c.tie_weights = true;
  c.drop_rate = 0.0f;
  return c;
}

ModelConfig qwen3(int64_t emb, int64_t layers, int64_t heads, int64_t kv, int64_t head_dim, int64_t mlp) {
  ModelConfig c = llama3(emb, layers, heads, kv, head_dim, mlp);
  c.family = "qwen3";
  c.vocab_size = 151936;
  c.context_length = 40960;
  c.norm_eps = 1e-6f;
  c.rope = RopeConfig{1000000.0, "", 1.0, 1.0, 4.0, 0};
  c.qk_norm = true;
  return c;
}

}  // namespace

bool preset_config(const std::string& name, ModelConfig& config) {
  struct Row {
    const char* name;
    const char* alias;
    int64_t emb_dim, n_layers, n_heads;
  };
  static const Row rows[] = {{"gpt2-small", "124M", 768, 12, 12},
                             {"gpt2-medium", "355M", 1024, 24, 16},
                             {"gpt2-large", "774M", 1280, 36, 20},
                             {"gpt2-xl", "1558M", 1600, 48, 25}};
  for (const Row& row : rows)
    if (name == row.name || name == row.alias || (name == "gpt2" && row.emb_dim == 768)) {
      config = ModelConfig{};
      config.emb_dim = row.emb_dim;
      config.n_layers = row.n_layers;
      config.n_heads = row.n_heads;
      return true;
    }
  if (name == "llama-3.2-1b") config = llama3(2048, 16, 32, 8, 64, 8192);
  else if (name == "llama-3.2-3b") config = llama3(3072, 28, 24, 8, 128, 8192);
  else if (name == "llama-tiny") {
    // Plain theta: llama3 scaling stretches a context trained at 8192, and this one starts at 256
    // (transformers warns when original_max_position_embeddings exceeds the context).
    config = llama3(256, 4, 4, 2, 64, 768);
    config.rope = RopeConfig{500000.0, "", 1.0, 1.0, 4.0, 0};
  }
  else if (name == "qwen3-0.6b") config = qwen3(1024, 28, 16, 8, 128, 3072);
  else if (name == "qwen3-1.7b") config = qwen3(2048, 28, 16, 8, 128, 6144);
  else if (name == "qwen3-tiny") config = qwen3(256, 4, 4, 2, 64, 768);
  else return false;
  return true;
}

std::vector<std::string> preset_names() {
  return {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "llama-3.2-1b", "llama-3.2-3b",
          "llama-tiny", "qwen3-0.6b",  "qwen3-1.7b",  "qwen3-tiny"};
}

std::string preset_list() {
  std::string out;
  for (const std::string& n : preset_names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

bool ShapeOverrides::any() const { return !given().empty(); }

void ShapeOverrides::apply(ModelConfig& c) const {
  if (emb_dim) c.emb_dim = emb_dim;
  if (n_layers) c.n_layers = n_layers;
  if (n_heads) c.n_heads = n_heads;
  if (n_kv_heads) c.n_kv_heads = n_kv_heads;
  if (head_dim) c.head_dim = head_dim;
  if (mlp_dim) c.mlp_dim = mlp_dim;
  if (qkv_bias) c.qkv_bias = true;
  if (tie_weights) c.tie_weights = true;
}

std::string ShapeOverrides::given() const {
  std::string out;
  const auto add = [&](bool set, const char* name) {
    if (set) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(emb_dim != 0, "--emb-dim");
  add(n_layers != 0, "--n-layers");
  add(n_heads != 0, "--n-heads");
  add(n_kv_heads != 0, "--n-kv-heads");
  add(head_dim != 0, "--head-dim");
  add(mlp_dim != 0, "--mlp-dim");
  add(qkv_bias, "--qkv-bias");
  add(tie_weights, "--tie-weights");
  return out;
}

}  // namespace gptrain
