// PEFT LoRA adapter -> GGUF LoRA adapter: config checks, key mapping against the base, per-module
// scaling baked into lora_b, Llama's rotary permutation of q/k rows.
#include "convert/gguf_lora.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/peft_pattern.h"
#include "util/error.h"

namespace gptrain::convert {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // pattern keys are tried in file order, as PEFT does

namespace {

constexpr std::string_view kPrefix = "base_model.model.";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read", path.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct AdapterConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  // rank_pattern / alpha_pattern: the keys compiled once, in file order, beside their values.
  std::vector<PeftPattern> rank_keys, alpha_keys;
  std::vector<int64_t> ranks;
  std::vector<double> alphas;
};

AdapterConfig read_adapter_config(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    fail("{}: missing; a PEFT adapter dir holds adapter_config.json and adapter_model.safetensors (save_pretrained)",
         file.string());
  json j;
  try {
    j = json::parse(read_text(file));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file.string(), e.what());
  }
  if (!j.is_object()) fail("{}: expected a JSON object", file.string());
  const std::string f = file.string();
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  if (present("peft_type") && j["peft_type"] != "LORA")
    fail("{}: key 'peft_type' is {}; only LoRA adapters (\"LORA\") have a GGUF form", f, j["peft_type"].dump());
  AdapterConfig c;
  if (present("r")) {
    if (!j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0) fail("{}: key 'r' must be a positive integer, got {}", f, j["r"].dump());
    c.r = j["r"].get<int64_t>();
  }
  if (present("lora_alpha")) {
    if (!j["lora_alpha"].is_number()) fail("{}: key 'lora_alpha' must be a number, got {}", f, j["lora_alpha"].dump());
    c.lora_alpha = j["lora_alpha"].get<double>();
  }
  const auto flag = [&](const char* key) {  // (get<bool> would throw nlohmann's type_error on a string)
    if (!present(key)) return false;
    if (!j[key].is_boolean()) fail("{}: key '{}' must be true or false, got {}", f, key, j[key].dump());
    return j[key].get<bool>();
  };
  c.use_rslora = flag("use_rslora");
  // Settings whose effect no GGUF LoRA pair can carry.
  if (flag("use_dora"))
    fail("{}: key 'use_dora' is true; DoRA's magnitude vectors have no GGUF LoRA form", f);
  if (flag("lora_bias"))
    fail("{}: key 'lora_bias' is true; a bias on lora_B has no GGUF LoRA form", f);
  if (present("bias") && j["bias"] != "none")
    fail("{}: key 'bias' is {}; trained base biases have no GGUF LoRA form (only \"none\")", f, j["bias"].dump());
  if (present("modules_to_save") && !(j["modules_to_save"].is_array() && j["modules_to_save"].empty()))
    fail("{}: key 'modules_to_save' is {}; those full module copies have no GGUF LoRA form (llama.cpp adapters hold "
         "only lora_a/lora_b pairs)",
         f, j["modules_to_save"].dump());
  if (present("trainable_token_indices"))
    fail("{}: key 'trainable_token_indices' is set; trained token rows have no GGUF LoRA form", f);
  if (present("layer_replication")) fail("{}: key 'layer_replication' is set; llama.cpp cannot replicate layers", f);
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (!present(key)) continue;
    if (!j[key].is_object()) fail("{}: key '{}' must be an object of module pattern -> value, got {}", f, key, j[key].dump());
    const bool ranks = std::string(key) == "rank_pattern";
    for (const auto& [pattern, value] : j[key].items()) {
      try {  // a key the matcher refuses is named with the file
        (ranks ? c.rank_keys : c.alpha_keys).emplace_back(pattern);
      } catch (const Error& e) {
        fail("{}: {}: {}", f, key, e.what());
      }
      if (ranks) {
        if (!value.is_number_integer() || value.get<int64_t>() <= 0)
          fail("{}: rank_pattern['{}'] must be a positive integer, got {}", f, pattern, value.dump());
        c.ranks.push_back(value.get<int64_t>());
      } else {
        if (!value.is_number()) fail("{}: alpha_pattern['{}'] must be a number, got {}", f, pattern, value.dump());
        c.alphas.push_back(value.get<double>());
      }
    }
  }
  return c;
}

// The llama.cpp weight a PEFT module adapts, with its in/out widths; false when the base has none.
bool base_linear(const ModelConfig& base, const std::string& arch, const std::string& module, LoraModulePlan& plan,
                 const std::string& file) {
  const ModelConfig c = base.resolved();
  const int64_t C = c.emb_dim, M = c.mlp_width(), Q = c.q_width(), KV = c.kv_width();
  if (module == "lm_head") {
    if (c.tie_weights)
      fail("{}: key base_model.model.lm_head.lora_A.weight: the base's head is tied to its token embedding, so llama.cpp "
           "has no output tensor to adapt (an adapter of the tied head would also change the embedding)",
           file);
    plan.base_tensor = "output.weight";
    plan.in = C;
    plan.out = c.vocab_size;
    return true;
  }
  std::string name = module;
  const std::string body = arch == "gpt2" ? "transformer." : "model.";
  if (name.starts_with(body)) name = name.substr(body.size());
  std::smatch m;
  static const std::regex gpt2_re(R"(h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj))");
  static const std::regex llama_re(R"(layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj))");
  if (!std::regex_match(name, m, arch == "gpt2" ? gpt2_re : llama_re)) return false;
  const int64_t layer = std::stoll(m[1].str());
  if (layer >= c.n_layers)
    fail("{}: module {} is in block {}, but the base has {} blocks (0..{})", file, module, layer, c.n_layers, c.n_layers - 1);
  const std::string kind = m[2].str(), g = "blk." + std::to_string(layer) + ".";
  struct Target {
    const char* kind;
    const char* tensor;
    int64_t in, out, permute_heads;
  };
  const bool permute = arch == "llama";
  const Target targets[] = {
      {"attn.c_attn", "attn_qkv", C, Q + 2 * KV, 0},
      {"attn.c_proj", "attn_output", Q, C, 0},
      {"mlp.c_fc", "ffn_up", C, M, 0},
      {"mlp.c_proj", "ffn_down", M, C, 0},
      {"self_attn.q_proj", "attn_q", C, Q, permute ? c.n_heads : 0},
      {"self_attn.k_proj", "attn_k", C, KV, permute ? c.kv_heads() : 0},
      {"self_attn.v_proj", "attn_v", C, KV, 0},
      {"self_attn.o_proj", "attn_output", Q, C, 0},
      {"mlp.gate_proj", "ffn_gate", C, M, 0},
      {"mlp.up_proj", "ffn_up", C, M, 0},
      {"mlp.down_proj", "ffn_down", M, C, 0},
  };
  for (const Target& t : targets)
    if (kind == t.kind) {
      plan.base_tensor = g + t.tensor + ".weight";
      plan.in = t.in;
      plan.out = t.out;
      plan.permute_heads = t.permute_heads;
      return true;
    }
  return false;
}

const char* known_modules(const std::string& arch) {
  return arch == "gpt2" ? "transformer.h.N.attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, lm_head"
                        : "model.layers.N.self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, lm_head";
}

}  // namespace

LoraPlan plan_lora_adapter(const ModelConfig& base, const fs::path& adapter_dir) {
  LoraPlan plan;
  plan.architecture = gguf_architecture(base);
  const fs::path config_file = adapter_dir / "adapter_config.json";
  const AdapterConfig config = read_adapter_config(config_file);
  const fs::path weights_file = adapter_dir / "adapter_model.safetensors";
  std::error_code ec;
  if (!fs::is_regular_file(weights_file, ec)) {
    if (fs::is_regular_file(adapter_dir / "adapter_model.bin", ec))
      fail("{}: missing; this adapter is a pickled adapter_model.bin, which gptrain does not read: save it with "
           "save_pretrained(safe_serialization=True)",
           weights_file.string());
    fail("{}: missing; a PEFT adapter dir holds adapter_config.json and adapter_model.safetensors", weights_file.string());
  }
  const io::SafeTensorsFile weights = io::SafeTensorsFile::open(weights_file);
  const std::string file = weights_file.string();

  struct Pair {
    const io::TensorInfo* a = nullptr;
    const io::TensorInfo* b = nullptr;
  };
  std::map<std::string, Pair> pairs;
  for (const io::TensorInfo& t : weights.tensors()) {
    if (!t.name.starts_with(kPrefix))
      fail("{}: key {} does not start with {}; expected PEFT's save_pretrained keys", file, t.name, kPrefix);
    const std::string rest = t.name.substr(kPrefix.size());
    auto strip = [&](std::string_view suffix, std::string& module) {
      if (!rest.ends_with(suffix)) return false;
      module = rest.substr(0, rest.size() - suffix.size());
      return true;
    };
    std::string module;
    if (strip(".lora_A.weight", module)) {
      pairs[module].a = &t;
    } else if (strip(".lora_B.weight", module)) {
      pairs[module].b = &t;
    } else if (rest.ends_with(".base_layer.weight")) {
      // PEFT saves the untouched base weight of an adapted lm_head (save_embedding_layers, for a
      // resized vocabulary); the base model file already holds it.
      continue;
    } else if (rest.find(".lora_embedding_") != std::string::npos) {
      fail("{}: key {} is an embedding adapter; llama.cpp's GGUF adapters of embeddings are not written by gptrain", file,
           t.name);
    } else if (rest.find(".lora_magnitude_vector") != std::string::npos) {
      fail("{}: key {} is a DoRA magnitude vector, which has no GGUF LoRA form", file, t.name);
    } else {
      fail("{}: key {} is not a lora_A/lora_B weight (a modules_to_save copy or a trained bias?); a GGUF LoRA adapter "
           "holds only the pairs",
           file, t.name);
    }
  }
  if (pairs.empty()) fail("{}: no lora_A/lora_B tensors", file);

  // The file's alpha is the config's: modules at the default scaling keep lora_b bit for bit.
  plan.alpha = static_cast<float>(config.lora_alpha);
  for (const auto& [module, pair] : pairs) {
    const std::string key_a = std::string(kPrefix) + module + ".lora_A.weight";
    const std::string key_b = std::string(kPrefix) + module + ".lora_B.weight";
    if (!pair.a) fail("{}: key {} has no {}", file, key_b, key_a);
    if (!pair.b) fail("{}: key {} has no {}", file, key_a, key_b);
    LoraModulePlan m;
    m.module = module;
    if (!base_linear(base, plan.architecture, module, m, file))
      fail("{}: key {}: the {} base has no linear module {} (its LoRA targets: {})", file, key_a, plan.architecture,
           module, known_modules(plan.architecture));
    const Shape& sa = pair.a->shape;
    const Shape& sb = pair.b->shape;
    if (sa.size() != 2 || sa[1] != m.in)
      fail("{}: key {} has shape [{}]; the base's {} takes {} inputs, so lora_A must be [r, {}]", file, key_a,
           fmt::join(sa, ", "), m.base_tensor, m.in, m.in);
    if (sb.size() != 2 || sb[0] != m.out)
      fail("{}: key {} has shape [{}]; the base's {} has {} outputs, so lora_B must be [{}, r]", file, key_b,
           fmt::join(sb, ", "), m.base_tensor, m.out, m.out);
    if (sa[0] != sb[1])
      fail("{}: keys {} [{}] and {} [{}] disagree on the rank", file, key_a, fmt::join(sa, ", "), key_b, fmt::join(sb, ", "));
    m.rank = sa[0];
    const int ri = first_match(config.rank_keys, module), ai = first_match(config.alpha_keys, module);
    const std::string rank_key = ri < 0 ? "" : config.rank_keys[static_cast<size_t>(ri)].key();
    const int64_t r = ri < 0 ? config.r : config.ranks[static_cast<size_t>(ri)];
    const double alpha = ai < 0 ? config.lora_alpha : config.alphas[static_cast<size_t>(ai)];
    if (r != m.rank)
      fail("{}: {} says module {} has rank {} ({}), but {} has rank {}; PEFT could not load this adapter", config_file.string(),
           rank_key.empty() ? "key 'r'" : "rank_pattern['" + rank_key + "']", module, r,
           rank_key.empty() ? "no rank_pattern key matches it" : "the first rank_pattern key that matches", key_a, m.rank);
    m.peft_scaling = config.use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
    // llama.cpp applies alpha_file / r (or 1 when alpha_file is 0); the rest goes into lora_b.
    if (config.lora_alpha != 0)
      m.lora_b_factor = (alpha / config.lora_alpha) * (config.use_rslora ? std::sqrt(static_cast<double>(r)) : 1.0);
    else
      m.lora_b_factor = m.peft_scaling;
    plan.modules.push_back(m);
  }
  // Base tensor order (blocks ascending, then the head), as the model file lists them.
  const std::vector<GgufTensorPlan> base_plan = plan_model_tensors(base, GgufFileType::F32);
  auto position = [&](const std::string& name) {
    for (size_t i = 0; i < base_plan.size(); ++i)
      if (base_plan[i].decl.name == name) return i;
    GPTRAIN_CHECK(false, "LoRA target {} is not a tensor of the base plan", name);
    return size_t{0};
  };
  std::stable_sort(plan.modules.begin(), plan.modules.end(), [&](const LoraModulePlan& x, const LoraModulePlan& y) {
    return position(x.base_tensor) < position(y.base_tensor);
  });
  for (size_t i = 1; i < plan.modules.size(); ++i)
    if (plan.modules[i].base_tensor == plan.modules[i - 1].base_tensor)
      fail("{}: modules {} and {} both adapt {}", file, plan.modules[i - 1].module, plan.modules[i].module,
           plan.modules[i].base_tensor);
  return plan;
}

GgufExportSummary export_lora_gguf(const ModelConfig& base, const fs::path& adapter_dir, const fs::path& out,
                                   GgufFileType type) {
  const LoraPlan plan = plan_lora_adapter(base, adapter_dir);
  io::GgufMetadata metadata;
  metadata.add_string("general.architecture", plan.architecture);
  metadata.add_string("general.type", "adapter");
  metadata.add_string("general.name", model_name_of(adapter_dir));
  metadata.add_u32("general.alignment", io::kGgufAlignment);
  metadata.add_u32("general.file_type", llama_file_type_id(type));
  metadata.add_u32("general.quantization_version", 2);
  metadata.add_string("adapter.type", "lora");
  metadata.add_f32("adapter.lora.alpha", plan.alpha);

  std::vector<io::GgufTensorDecl> decls;
  for (const LoraModulePlan& m : plan.modules) {
    const std::string a = m.base_tensor + ".lora_a", b = m.base_tensor + ".lora_b";
    decls.push_back({a, {m.rank, m.in}, gguf_tensor_type(a, {m.rank, m.in}, type)});
    decls.push_back({b, {m.out, m.rank}, gguf_tensor_type(b, {m.out, m.rank}, type)});
  }
  GgufExportSummary summary{plan.architecture, static_cast<int64_t>(decls.size()), 0, {}};
  for (const io::GgufTensorDecl& d : decls) ++summary.tensors_by_type[io::ggml_type_name(d.type)];
  io::GgufWriter writer(out, std::move(metadata), std::move(decls));

  const io::SafeTensorsFile weights = io::SafeTensorsFile::open(adapter_dir / "adapter_model.safetensors");
  std::vector<float> values, permuted;
  for (const LoraModulePlan& m : plan.modules) {
    const std::string key = std::string(kPrefix) + m.module;
    const Tensor a = weights.load(key + ".lora_A.weight");  // [r, in] is lora_a's ne [in, r] as stored
    writer.write(std::span<const float>(a.data<float>(), static_cast<size_t>(a.numel())));
    const Tensor b = weights.load(key + ".lora_B.weight");  // [out, r]
    values.assign(b.data<float>(), b.data<float>() + b.numel());
    if (m.lora_b_factor != 1.0)
      for (float& v : values) v = static_cast<float>(static_cast<double>(v) * m.lora_b_factor);
    if (m.permute_heads > 0) {
      permuted.resize(values.size());
      permute_llama_rope_rows(values, permuted, m.permute_heads, m.rank);
      values.swap(permuted);
    }
    writer.write(values);
  }
  writer.commit();
  summary.bytes = writer.bytes_written();
  return summary;
}

}  // namespace gptrain::convert
