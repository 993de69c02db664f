#include "model/hf_gpt2.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace gptrain {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kConfigFile = "config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kPrefix = "transformer.";  // GPT2LMHeadModel's base_model_prefix

// ---------------------------------------------------------------------------------------------
// config.json

std::string brief(const json& value) {
  std::string text = value.dump(-1, ' ', true, json::error_handler_t::replace);
  return text.size() > 60 ? text.substr(0, 60) + "..." : text;
}

json read_json_file(const fs::path& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) fail("{}: not found; a model dir needs {} (is {} a model dir?)", path.string(), what,
                                path.parent_path().string());
    fail("cannot read {}", path.string());
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
}

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

// What HF's GPT-2 config.json cannot say (grouped-query heads, a head size other than width / heads,
// another norm or MLP, rotary positions, missing biases, query/key norms): the gptrain object's
// "architecture", written complete whenever one of these differs from GPT-2.
bool gpt2_expressible(const ModelConfig& c) {
  const ModelConfig r = c.resolved();
  return r.family == "gpt2" && r.n_kv_heads == r.n_heads && r.head_dim * r.n_heads == r.emb_dim &&
         r.norm == NormKind::LayerNorm && r.norm_bias && r.mlp == MlpKind::GeluTanh &&
         r.positions == PositionKind::Learned && r.out_bias && r.mlp_bias && !r.qk_norm;
}

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

// Reads the architecture object into c (every key required: it is written complete).
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

ModelConfig parse_config(const json& root, const std::string& file) {
  if (!root.is_object()) fail("{}: expected a JSON object, got {}", file, brief(root));
  const ConfigKeys keys(root, file);
  const std::string model_type = keys.string("model_type", "gpt2");
  if (model_type != "gpt2" && model_type != "gptrain")
    fail("{}: key 'model_type' is \"{}\"; gptrain reads GPT-2 models (model_type \"gpt2\") and its own "
         "(\"gptrain\") only",
         file, model_type);

  // Absent keys take transformers' ModelConfig defaults, so a dir means the same model here as there.
  ModelConfig c;
  c.emb_dim = keys.positive_int({"n_embd", "hidden_size"}, 768);
  c.n_layers = keys.positive_int({"n_layer", "num_hidden_layers"}, 12);
  c.n_heads = keys.positive_int({"n_head", "num_attention_heads"}, 12);
  c.context_length = keys.positive_int({"n_positions", "max_position_embeddings", "n_ctx"}, 1024);
  c.vocab_size = keys.positive_int({"vocab_size"}, 50257);
  const double eps = keys.number("layer_norm_epsilon", 1e-5);
  if (!(eps > 0.0 && eps < 1.0)) fail("{}: key 'layer_norm_epsilon' must be in (0, 1), got {}", file, eps);
  c.norm_eps = static_cast<float>(eps);

  // What our model computes: tanh GELU, attention scaled by 1/sqrt(head size).
  const std::string activation = keys.string("activation_function", "gelu_new");
  if (activation != "gelu_new" && activation != "gelu_pytorch_tanh")
    fail("{}: key 'activation_function' is \"{}\"; gptrain computes the tanh GELU (\"gelu_new\" or "
         "\"gelu_pytorch_tanh\")",
         file, activation);
  if (const json* inner = keys.find({"n_inner"})) {
    if (!inner->is_number_integer() || inner->get<int64_t>() <= 0)
      fail("{}: key 'n_inner' must be a positive integer or null, got {}", file, brief(*inner));
    if (inner->get<int64_t>() != 4 * c.emb_dim) c.mlp_dim = inner->get<int64_t>();
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
  c.head = HeadType::LanguageModel;

  const json* ours = keys.find({"gptrain"});
  if (model_type == "gptrain" && !ours) fail("{}: model_type \"gptrain\" needs the 'gptrain' object", file);
  if (ours) {
    if (!ours->is_object()) fail("{}: key 'gptrain' must be an object, got {}", file, brief(*ours));
    const std::string sub = file + " (object 'gptrain')";
    const ConfigKeys g(*ours, sub);
    c.qkv_bias = g.boolean("qkv_bias", true);
    c.drop_rate = dropout_value(g.number("drop_rate", c.drop_rate), sub, "drop_rate");
    if (const json* a = g.find({"architecture"})) read_architecture(*a, file + " (object 'gptrain.architecture')", c);
    else if (model_type == "gptrain") fail("{}: model_type \"gptrain\" needs 'gptrain.architecture'", file);
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
  } else if (const json* arch = keys.find({"architectures"}); arch && arch->is_array()) {
    for (const json& a : *arch)
      if (!(a == "GPT2LMHeadModel" || a == "GPT2Model"))
        fail("{}: key 'architectures' names {}; gptrain imports GPT2LMHeadModel and GPT2Model checkpoints", file,
             brief(a));
  }
  if (c.head_dim == 0 && c.emb_dim % c.n_heads != 0)
    fail("{}: key 'n_embd' ({}) must be divisible by 'n_head' ({})", file, c.emb_dim, c.n_heads);
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", file, e.what());
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Tensor layout

struct HfTensor {
  std::string hf_name;  // without the "transformer." prefix
  std::string param;    // our parameter; empty for the all-zero c_attn.bias of a model without qkv bias
  Shape hf_shape;
  bool transpose = false;  // Conv1D [in, out] in the file, [out, in] in our model
  bool head = false;       // lm_head / score: outside the "transformer." prefix
};

std::vector<HfTensor> hf_layout(const ModelConfig& c) {
  const int64_t V = c.vocab_size, P = c.context_length, C = c.emb_dim, M = c.mlp_width(), W = c.qkv_width(),
                Q = c.q_width();
  // HF GPT-2 always has the biases; a gptrain architecture without them stores none.
  const bool hf = gpt2_expressible(c);
  std::vector<HfTensor> t;
  t.push_back({"wte.weight", "tok_emb.weight", {V, C}});
  if (c.learned_positions()) t.push_back({"wpe.weight", "pos_emb.weight", {P, C}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string h = "h." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
    t.push_back({h + "ln_1.weight", b + "ln1.weight", {C}});
    if (c.norm_bias) t.push_back({h + "ln_1.bias", b + "ln1.bias", {C}});
    t.push_back({h + "attn.c_attn.weight", b + "attn.qkv.weight", {C, W}, true});
    if (c.qkv_bias || hf) t.push_back({h + "attn.c_attn.bias", c.qkv_bias ? b + "attn.qkv.bias" : "", {W}});
    t.push_back({h + "attn.c_proj.weight", b + "attn.proj.weight", {Q, C}, true});
    if (c.out_bias) t.push_back({h + "attn.c_proj.bias", b + "attn.proj.bias", {C}});
    t.push_back({h + "ln_2.weight", b + "ln2.weight", {C}});
    if (c.norm_bias) t.push_back({h + "ln_2.bias", b + "ln2.bias", {C}});
    t.push_back({h + "mlp.c_fc.weight", b + "mlp.fc.weight", {C, M}, true});
    if (c.mlp_bias) t.push_back({h + "mlp.c_fc.bias", b + "mlp.fc.bias", {M}});
    t.push_back({h + "mlp.c_proj.weight", b + "mlp.proj.weight", {M, C}, true});
    if (c.mlp_bias) t.push_back({h + "mlp.c_proj.bias", b + "mlp.proj.bias", {C}});
  }
  t.push_back({"ln_f.weight", "ln_f.weight", {C}});
  if (c.norm_bias) t.push_back({"ln_f.bias", "ln_f.bias", {C}});
  if (c.head == HeadType::Classifier) {
    t.push_back({"score.weight", "head.weight", {c.n_classes, C}, false, true});
    t.push_back({"score.bias", "head.bias", {c.n_classes}, false, true});
  } else if (!c.tie_weights) {
    t.push_back({"lm_head.weight", "head.weight", {V, C}, false, true});
  }
  return t;
}

// h.{i}.attn.bias and h.{i}.attn.masked_bias: the causal mask buffers of older checkpoints.
bool is_mask_buffer(const std::string& name) {
  if (!name.starts_with("h.")) return false;
  size_t i = 2;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
  if (i == 2) return false;
  const std::string_view rest = std::string_view(name).substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

// dst[cols, rows] = src[rows, cols]^T, in cache-sized tiles.
void transpose_into(float* dst, const float* src, int64_t rows, int64_t cols) {
  constexpr int64_t kTile = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) dst[c * rows + r] = src[r * cols + c];
}

std::string name_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 8) out += fmt::format(" and {} more", names.size() - 8);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint files: model.safetensors, or model.safetensors.index.json and its shards.

struct Checkpoint {
  std::string where;  // the file (or index) named in messages
  std::vector<io::SafeTensorsFile> files;
  struct Entry {
    size_t file;
    std::string stored_name;  // as spelled in the file, possibly "transformer."-prefixed
  };
  std::map<std::string, Entry> tensors;  // by canonical (unprefixed) name
};

// A shard named in the index must be a plain file name in the model dir: no directories, no "..".
void check_shard_name(const std::string& shard, const std::string& index) {
  if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
      shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
    fail("{}: weight_map names shard \"{}\"; shards must be plain file names inside the model dir", index, shard);
}

Checkpoint open_checkpoint(const fs::path& dir) {
  Checkpoint ck;
  std::map<std::string, std::string> expected_shard;  // tensor -> shard, from the index
  if (fs::exists(dir / kWeightsFile)) {  // transformers also prefers the single file
    ck.where = (dir / kWeightsFile).string();
    ck.files.push_back(io::SafeTensorsFile::open(dir / kWeightsFile));
  } else if (fs::exists(dir / kIndexFile)) {
    ck.where = (dir / kIndexFile).string();
    const json index = read_json_file(dir / kIndexFile, kIndexFile);
    if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object())
      fail("{}: expected an object with a 'weight_map' object (tensor name -> shard file)", ck.where);
    std::map<std::string, size_t> shard_index;
    for (const auto& [tensor, shard] : index.at("weight_map").items()) {
      if (!shard.is_string()) fail("{}: weight_map entry '{}' must be a file name, got {}", ck.where, tensor, brief(shard));
      const std::string name = shard.get<std::string>();
      check_shard_name(name, ck.where);
      if (!shard_index.count(name)) {
        if (!fs::exists(dir / name))
          fail("{}: shard {} (holding '{}') is missing from {}; the download is incomplete", ck.where, name, tensor,
               dir.string());
        shard_index[name] = ck.files.size();
        ck.files.push_back(io::SafeTensorsFile::open(dir / name));
      }
      expected_shard[tensor] = name;
    }
    if (ck.files.empty()) fail("{}: weight_map is empty", ck.where);
  } else {
    for (const char* pickle : {"pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json"})
      if (fs::exists(dir / pickle))
        fail("{}: holds {} (PyTorch pickle), which gptrain does not load because unpickling can run code; convert "
             "it with transformers: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, "
             "safe_serialization=True)",
             dir.string(), pickle);
    fail("{}: no {} or {} found; is this a model dir?", dir.string(), kWeightsFile, kIndexFile);
  }
  for (size_t f = 0; f < ck.files.size(); ++f)
    for (const io::TensorInfo& info : ck.files[f].tensors()) {
      const std::string canonical = info.name.starts_with(kPrefix) ? info.name.substr(std::strlen(kPrefix)) : info.name;
      const auto [it, inserted] = ck.tensors.emplace(canonical, Checkpoint::Entry{f, info.name});
      if (!inserted)
        fail("{}: tensor '{}' appears twice (as '{}' in {} and as '{}' in {})", ck.where, canonical,
             it->second.stored_name, ck.files[it->second.file].label(), info.name, ck.files[f].label());
    }
  for (const auto& [tensor, shard] : expected_shard) {
    const std::string canonical = tensor.starts_with(kPrefix) ? tensor.substr(std::strlen(kPrefix)) : tensor;
    const auto it = ck.tensors.find(canonical);
    if (it == ck.tensors.end() || ck.files[it->second.file].label() != (dir / shard).string())
      fail("{}: weight_map puts '{}' in {}, but that shard does not hold it; the checkpoint is inconsistent",
           ck.where, tensor, shard);
  }
  return ck;
}

std::string config_summary(const ModelConfig& c) {
  std::string s = fmt::format("vocab_size {}, n_positions {}, n_embd {}, n_layer {}, n_head {}", c.vocab_size,
                              c.context_length, c.emb_dim, c.n_layers, c.n_heads);
  if (!gpt2_expressible(c))
    s += fmt::format(", n_kv_heads {}, head_dim {}, mlp_dim {}", c.kv_heads(), c.head_size(), c.mlp_width());
  return s;
}

}  // namespace

ModelConfig read_model_config(const fs::path& model_dir) {
  const fs::path path = model_dir / kConfigFile;
  return parse_config(read_json_file(path, kConfigFile), path.string());
}

std::vector<std::string> read_class_names(const fs::path& model_dir) {
  const fs::path path = model_dir / kConfigFile;
  const json root = read_json_file(path, kConfigFile);
  std::vector<std::string> names;
  if (!root.is_object() || !root.contains("gptrain") || !root.at("gptrain").is_object()) return names;
  const json& g = root.at("gptrain");
  if (!g.contains("class_names") || g.at("class_names").is_null()) return names;
  const json& list = g.at("class_names");
  if (!list.is_array()) fail("{}: key 'gptrain.class_names' must be an array of strings", path.string());
  for (const json& name : list) {
    if (!name.is_string()) fail("{}: key 'gptrain.class_names' holds {}, not a string", path.string(), brief(name));
    names.push_back(name.get<std::string>());
  }
  const ModelConfig config = parse_config(root, path.string());
  if (static_cast<int64_t>(names.size()) != config.n_classes)
    fail("{}: key 'gptrain.class_names' has {} names for n_classes {}", path.string(), names.size(), config.n_classes);
  return names;
}

namespace {

// Every name and shape of the checkpoint against what a model of `config` needs, before any
// tensor data is read or the model is allocated (a hostile config.json alone cannot make us
// allocate more than the files justify).
void check_checkpoint(const Checkpoint& ck, const ModelConfig& config, bool include_head) {
  const auto hint = [&] {
    return fmt::format("the model expects {} ({}{}); check that config.json belongs to these weights",
                       config_summary(config), config.tie_weights ? "tied head" : "untied head",
                       config.head == HeadType::Classifier ? ", classifier" : "");
  };
  std::vector<std::string> missing;
  std::set<std::string> used;
  for (const HfTensor& t : hf_layout(config)) {
    if (t.head && !include_head) continue;
    const auto it = ck.tensors.find(t.hf_name);
    if (it == ck.tensors.end()) {
      missing.push_back(t.hf_name);
      continue;
    }
    used.insert(t.hf_name);
    const io::SafeTensorsFile& file = ck.files[it->second.file];
    const io::TensorInfo& info = file.at(it->second.stored_name);
    if (info.shape != t.hf_shape)
      fail("{}: tensor '{}' has shape {} but {} was expected; {}", file.label(), info.name, shape_string(info.shape),
           shape_string(t.hf_shape), hint());
  }
  if (!missing.empty())
    fail("{}: missing {} tensor{}: {}; {}", ck.where, missing.size(), missing.size() == 1 ? "" : "s",
         name_list(missing), hint());
  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : ck.tensors) {
    if (used.count(name) || is_mask_buffer(name)) continue;
    // A tied head is wte (transformers ignores a stored lm_head then), and a body-only load
    // ignores whatever head the file has.
    const bool head_tensor = name == "lm_head.weight" || name == "score.weight" || name == "score.bias";
    if (head_tensor && (!include_head || (name == "lm_head.weight" && config.head == HeadType::LanguageModel &&
                                          config.tie_weights)))
      continue;
    unexpected.push_back(entry.stored_name);
  }
  if (!unexpected.empty())
    fail("{}: {} unexpected tensor{}: {}; {}", ck.where, unexpected.size(), unexpected.size() == 1 ? "" : "s",
         name_list(unexpected), hint());
}

// The checked checkpoint's data into the model's parameters.
void copy_weights(const Checkpoint& ck, Transformer& model, bool include_head) {
  Tensor scratch;
  for (const HfTensor& t : hf_layout(model.config())) {
    if (t.head && !include_head) continue;
    const Checkpoint::Entry& entry = ck.tensors.at(t.hf_name);
    const io::SafeTensorsFile& file = ck.files[entry.file];
    if (t.param.empty()) {  // a model without qkv bias: the stored bias must be zero
      const std::vector<float> bias = file.load(entry.stored_name).to_vector();
      if (std::any_of(bias.begin(), bias.end(), [](float v) { return v != 0.0f; }))
        fail("{}: tensor '{}' is not zero but the model has no qkv bias (gptrain.qkv_bias false); set qkv_bias to "
             "true in config.json to use it",
             file.label(), entry.stored_name);
      continue;
    }
    const Tensor& dst = model.params().at(t.param).value;
    if (t.transpose) {
      scratch = file.load(entry.stored_name);
      transpose_into(dst.data(), scratch.data(), t.hf_shape[0], t.hf_shape[1]);
    } else {
      file.load_into(entry.stored_name, dst);
    }
  }
}

}  // namespace

void load_model_weights(Transformer& model, const fs::path& model_dir, bool include_head) {
  const Checkpoint ck = open_checkpoint(model_dir);
  check_checkpoint(ck, model.config(), include_head);
  copy_weights(ck, model, include_head);
}

std::unique_ptr<Transformer> load_model_dir(const fs::path& model_dir, const ModelLoadOptions& options) {
  ModelConfig config = read_model_config(model_dir);
  if (options.drop_rate) {
    config.drop_rate = *options.drop_rate;
    config.validate();
  }
  const Checkpoint ck = open_checkpoint(model_dir);
  check_checkpoint(ck, config, true);
  auto model = std::make_unique<Transformer>(config, std::nullopt);  // no random init: every weight is loaded
  copy_weights(ck, *model, true);
  return model;
}

namespace {

// The shortest decimal that reads back as the same float ("1e-05", not 9.999999747378752e-06),
// parsed with from_chars so that no locale can turn the point into a comma.
double float_for_json(float value) {
  const std::string text = fmt::format("{}", value);
  double result = 0;
  std::from_chars(text.data(), text.data() + text.size(), result);
  return result;
}

json config_json(const ModelConfig& c, const std::vector<std::string>& class_names) {
  const bool classifier = c.head == HeadType::Classifier;
  const double dropout = float_for_json(c.drop_rate);
  const int64_t eos = std::min<int64_t>(50256, c.vocab_size - 1);
  json j = {
      {"activation_function", "gelu_new"},
      {"architectures", {classifier ? "GPT2Model" : "GPT2LMHeadModel"}},
      {"attn_pdrop", dropout},
      {"bos_token_id", eos},
      {"embd_pdrop", dropout},
      {"eos_token_id", eos},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", float_for_json(c.norm_eps)},
      {"model_type", gpt2_expressible(c) ? "gpt2" : "gptrain"},
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
  json g = {{"qkv_bias", c.qkv_bias}, {"drop_rate", dropout}, {"head", classifier ? "classifier" : "lm"}};
  if (classifier) {
    g["n_classes"] = c.n_classes;
    g["pooling"] = pooling_name(c.pooling);
    if (!class_names.empty()) g["class_names"] = class_names;
  }
  if (!gpt2_expressible(c)) {
    g["architecture"] = architecture_json(c);
    j["architectures"] = {"GptrainModel"};  // not a transformers class: transformers cannot build it
  }
  j["gptrain"] = g;
  return j;
}

}  // namespace

std::string model_config_text(const ModelConfig& config, const std::vector<std::string>& class_names) {
  return config_json(config, class_names).dump(2) + "\n";
}

ModelConfig parse_model_config_text(const std::string& text, const std::string& file) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file, e.what());
  }
  return parse_config(root, file);
}

void save_model_dir(const Transformer& model, const fs::path& model_dir, const std::vector<std::string>& class_names) {
  const ModelConfig& config = model.config();
  if (!class_names.empty() &&
      (config.head != HeadType::Classifier || static_cast<int64_t>(class_names.size()) != config.n_classes))
    fail("save_model_dir {}: {} class names for a model with {} classes", model_dir.string(), class_names.size(),
         config.head == HeadType::Classifier ? config.n_classes : 0);
  std::error_code error;
  fs::create_directories(model_dir, error);
  if (error) fail("cannot create model dir {}: {}", model_dir.string(), error.message());

  const std::vector<HfTensor> layout = hf_layout(config);
  std::vector<std::pair<std::string, Shape>> declared;
  for (const HfTensor& t : layout) declared.emplace_back(t.head ? t.hf_name : kPrefix + t.hf_name, t.hf_shape);
  // transformers refuses safetensors files whose metadata lacks format "pt".
  io::SafeTensorsWriter writer(model_dir / kWeightsFile, declared, {{"format", "pt"}});
  std::vector<float> scratch;
  for (const HfTensor& t : layout) {
    const int64_t n = shape_numel(t.hf_shape);
    if (t.param.empty()) {  // c_attn.bias of a model without qkv bias
      scratch.assign(static_cast<size_t>(n), 0.0f);
      writer.write(scratch);
      continue;
    }
    const Parameter* p = model.params().find(t.param);
    GPTRAIN_CHECK(p != nullptr && p->value.numel() == n, "parameter {} for {}", t.param, t.hf_name);
    if (t.transpose) {
      scratch.resize(static_cast<size_t>(n));
      // ours [out, in] -> Conv1D [in, out]
      transpose_into(scratch.data(), p->value.data(), t.hf_shape[1], t.hf_shape[0]);
      writer.write(scratch);
    } else {
      writer.write({p->value.data(), static_cast<size_t>(n)});
    }
  }
  writer.commit();
  // config.json last: a first save that is interrupted leaves no config.json, so no half model dir
  // is ever taken for a model.
  io::write_file_atomic(model_dir / kConfigFile, model_config_text(config, class_names));
}

}  // namespace gptrain
