// Model dir -> GGUF: the tensor plan of each architecture, the hyperparameter keys, and the
// streaming write (one tensor's values in memory at a time).
#include "convert/gguf_model.h"

#include <cmath>
#include <numbers>

#include "convert/gguf_vocab.h"
#include "model/hf_config.h"
#include "model/model_dir.h"
#include "util/error.h"

namespace gptrain::convert {

namespace fs = std::filesystem;
using io::GgmlType;

GgufFileType parse_gguf_file_type(const std::string& text) {
  if (text == "f32") return GgufFileType::F32;
  if (text == "f16") return GgufFileType::F16;
  if (text == "q8_0") return GgufFileType::Q8_0;
  fail("--type {}: unknown GGUF type; choose f32, f16 or q8_0", text);
}

const char* gguf_file_type_name(GgufFileType type) {
  switch (type) {
    case GgufFileType::F32: return "f32";
    case GgufFileType::F16: return "f16";
    case GgufFileType::Q8_0: return "q8_0";
  }
  return "?";
}

uint32_t llama_file_type_id(GgufFileType type) {
  switch (type) {
    case GgufFileType::F32: return 0;
    case GgufFileType::F16: return 1;
    case GgufFileType::Q8_0: return 7;
  }
  return 0;
}

std::string gguf_architecture(const ModelConfig& config) {
  if (config.head == HeadType::Classifier)
    fail("a classifier model (a {}-class head) has no GGUF form: llama.cpp's gpt2, llama and qwen3 have only a "
         "language-model head; export the language model it was finetuned from instead",
         config.n_classes);
  const std::string family = hf::family_of(config);
  const ModelConfig c = config.resolved();
  if (family == "gpt2") return "gpt2";
  if (family == "llama") return "llama";
  if (family == "qwen3") {
    // llama.cpp's qwen3 loads no attention output bias and no frequency factors.
    if (c.qkv_bias || c.out_bias)
      fail("a Qwen3 model with attention biases has no GGUF form: llama.cpp's qwen3 has no attn_output bias");
    if (!c.rope.scaling.empty())
      fail("a Qwen3 model with '{}' rope scaling has no GGUF form: llama.cpp's qwen3 reads no rope_freqs", c.rope.scaling);
    return "qwen3";
  }
  fail("this model's architecture (gptrain.architecture in its config.json: {} norm, {} MLP, {} positions{}) is none "
       "of GPT-2, Llama or Qwen3, the architectures a GGUF file can hold for llama.cpp",
       norm_name(c.norm), mlp_name(c.mlp), positions_name(c.positions), c.qk_norm ? ", q/k norms" : "");
}

GgmlType gguf_tensor_type(const std::string& name, const Shape& shape, GgufFileType type) {
  // The converter keeps these F32: 1-D tensors and norms (ggml's kernels take them as F32), learned
  // position embeddings, and anything that is not a weight (biases).
  if (shape.size() <= 1 || name.ends_with("_norm.weight") || name.starts_with("position_embd.") ||
      !(name.ends_with(".weight") || name.ends_with(".lora_a") || name.ends_with(".lora_b")))
    return GgmlType::F32;
  switch (type) {
    case GgufFileType::F32: return GgmlType::F32;
    case GgufFileType::F16: return GgmlType::F16;
    case GgufFileType::Q8_0:
      // Q8_0 blocks run along a row; the converter falls back to F16 for rows it cannot split.
      return shape.back() % io::kQ8BlockSize == 0 ? GgmlType::Q8_0 : GgmlType::F16;
  }
  return GgmlType::F32;
}

void permute_llama_rope_rows(std::span<const float> src, std::span<float> dst, int64_t heads, int64_t row_len) {
  const auto rows = static_cast<int64_t>(src.size()) / row_len;
  GPTRAIN_CHECK(rows % heads == 0 && (rows / heads) % 2 == 0 && src.size() == dst.size(),
                "rope permutation of {} rows over {} heads", rows, heads);
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t s = 0; s < 2; ++s) {
        const int64_t to = h * head_dim + 2 * j + s, from = h * head_dim + s * half + j;
        std::copy_n(src.data() + from * row_len, row_len, dst.data() + to * row_len);
      }
}

std::vector<float> llama3_rope_freq_factors(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  const int64_t dim = c.head_size();
  const RopeConfig& r = c.rope;
  const double low_wavelen = static_cast<double>(r.original_context) / r.low_freq_factor;
  const double high_wavelen = static_cast<double>(r.original_context) / r.high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < dim; i += 2) {
    // float32 as the converter's torch arithmetic (and transformers' frequencies)
    const float freq = 1.0f / std::pow(static_cast<float>(r.theta), static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = static_cast<float>(2 * std::numbers::pi) / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(static_cast<float>(r.factor));
    } else {
      const float smooth = (static_cast<float>(r.original_context) / wavelen - static_cast<float>(r.low_freq_factor)) /
                           static_cast<float>(r.high_freq_factor - r.low_freq_factor);
      factors.push_back(1.0f / ((1.0f - smooth) / static_cast<float>(r.factor) + smooth));
    }
  }
  return factors;
}

namespace {

struct Planner {
  GgufFileType type;
  std::vector<GgufTensorPlan> plans;

  GgufTensorPlan& add(const std::string& name, Shape shape, const std::string& param, int64_t row_offset = 0,
                      int64_t permute_heads = 0) {
    GgufTensorPlan p;
    p.decl = {name, shape, gguf_tensor_type(name, shape, type)};
    p.param = param;
    p.row_offset = row_offset;
    p.permute_heads = permute_heads;
    plans.push_back(std::move(p));
    return plans.back();
  }
};

}  // namespace

std::vector<GgufTensorPlan> plan_model_tensors(const ModelConfig& config, GgufFileType type) {
  const std::string arch = gguf_architecture(config);
  const ModelConfig c = config.resolved();
  const int64_t V = c.vocab_size, C = c.emb_dim, M = c.mlp_width(), Q = c.q_width(), KV = c.kv_width();
  Planner p{type, {}};
  const bool layernorm_bias = c.norm == NormKind::LayerNorm && c.norm_bias;
  if (arch == "llama" && c.rope.scaling == "llama3") {
    GgufTensorPlan& freqs = p.add("rope_freqs.weight", {c.head_size() / 2}, "");
    freqs.values = llama3_rope_freq_factors(c);
  }
  p.add("token_embd.weight", {V, C}, "tok_emb.weight");
  if (arch == "gpt2") p.add("position_embd.weight", {c.context_length, C}, "pos_emb.weight");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", b = "blocks." + std::to_string(l) + ".";
    p.add(g + "attn_norm.weight", {C}, b + "ln1.weight");
    if (layernorm_bias) p.add(g + "attn_norm.bias", {C}, b + "ln1.bias");
    if (arch == "gpt2") {
      p.add(g + "attn_qkv.weight", {Q + 2 * KV, C}, b + "attn.qkv.weight");
      p.add(g + "attn_qkv.bias", {Q + 2 * KV}, c.qkv_bias ? b + "attn.qkv.bias" : "");  // "": zeros
    } else {
      const bool permute = arch == "llama";
      p.add(g + "attn_q.weight", {Q, C}, b + "attn.qkv.weight", 0, permute ? c.n_heads : 0);
      p.add(g + "attn_k.weight", {KV, C}, b + "attn.qkv.weight", Q, permute ? c.kv_heads() : 0);
      p.add(g + "attn_v.weight", {KV, C}, b + "attn.qkv.weight", Q + KV);
      if (c.qkv_bias) {
        p.add(g + "attn_q.bias", {Q}, b + "attn.qkv.bias", 0, permute ? c.n_heads : 0);
        p.add(g + "attn_k.bias", {KV}, b + "attn.qkv.bias", Q, permute ? c.kv_heads() : 0);
        p.add(g + "attn_v.bias", {KV}, b + "attn.qkv.bias", Q + KV);
      }
      if (c.qk_norm) {
        p.add(g + "attn_q_norm.weight", {c.head_size()}, b + "attn.q_norm.weight");
        p.add(g + "attn_k_norm.weight", {c.head_size()}, b + "attn.k_norm.weight");
      }
    }
    p.add(g + "attn_output.weight", {C, Q}, b + "attn.proj.weight");
    if (c.out_bias) p.add(g + "attn_output.bias", {C}, b + "attn.proj.bias");
    p.add(g + "ffn_norm.weight", {C}, b + "ln2.weight");
    if (layernorm_bias) p.add(g + "ffn_norm.bias", {C}, b + "ln2.bias");
    if (c.mlp == MlpKind::SwiGLU) {
      p.add(g + "ffn_gate.weight", {M, C}, b + "mlp.fc.weight");
      p.add(g + "ffn_up.weight", {M, C}, b + "mlp.fc.weight", M);
      if (c.mlp_bias) {
        p.add(g + "ffn_gate.bias", {M}, b + "mlp.fc.bias");
        p.add(g + "ffn_up.bias", {M}, b + "mlp.fc.bias", M);
      }
    } else {
      p.add(g + "ffn_up.weight", {M, C}, b + "mlp.fc.weight");
      if (c.mlp_bias) p.add(g + "ffn_up.bias", {M}, b + "mlp.fc.bias");
    }
    p.add(g + "ffn_down.weight", {C, M}, b + "mlp.proj.weight");
    if (c.mlp_bias) p.add(g + "ffn_down.bias", {C}, b + "mlp.proj.bias");
  }
  p.add("output_norm.weight", {C}, "ln_f.weight");
  if (layernorm_bias) p.add("output_norm.bias", {C}, "ln_f.bias");
  if (!c.tie_weights) p.add("output.weight", {V, C}, "head.weight");
  return std::move(p.plans);
}

io::GgufMetadata model_metadata(const ModelConfig& config, const std::string& name, GgufFileType type) {
  const std::string arch = gguf_architecture(config);
  const ModelConfig c = config.resolved();
  io::GgufMetadata m;
  m.add_string("general.architecture", arch);
  m.add_string("general.type", "model");
  m.add_string("general.name", name);
  m.add_u32("general.alignment", io::kGgufAlignment);
  m.add_u32("general.file_type", llama_file_type_id(type));
  m.add_u32("general.quantization_version", 2);  // GGML_QNT_VERSION, as the converter writes
  const std::string a = arch + ".";
  m.add_u32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  m.add_u32(a + "context_length", static_cast<uint32_t>(c.context_length));
  m.add_u32(a + "embedding_length", static_cast<uint32_t>(c.emb_dim));
  m.add_u32(a + "block_count", static_cast<uint32_t>(c.n_layers));
  m.add_u32(a + "feed_forward_length", static_cast<uint32_t>(c.mlp_width()));
  m.add_u32(a + "attention.head_count", static_cast<uint32_t>(c.n_heads));
  m.add_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.kv_heads()));
  if (arch == "gpt2") {
    m.add_f32(a + "attention.layer_norm_epsilon", c.norm_eps);
  } else {
    m.add_f32(a + "attention.layer_norm_rms_epsilon", c.norm_eps);
    m.add_f32(a + "rope.freq_base", static_cast<float>(c.rope.theta));
    m.add_u32(a + "rope.dimension_count", static_cast<uint32_t>(c.head_size()));
    m.add_u32(a + "attention.key_length", static_cast<uint32_t>(c.head_size()));
    m.add_u32(a + "attention.value_length", static_cast<uint32_t>(c.head_size()));
  }
  return m;
}

std::string model_name_of(const fs::path& model_dir) {
  fs::path p = fs::absolute(model_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

GgufExportSummary write_model_gguf(const ModelConfig& config, const ParameterRows& rows, const fs::path& model_dir,
                                   const fs::path& tokenizer_dir, const fs::path& out, GgufFileType type) {
  const std::vector<GgufTensorPlan> plans = plan_model_tensors(config, type);
  io::GgufMetadata metadata = model_metadata(config, model_name_of(model_dir), type);
  add_vocab_metadata(metadata, read_gguf_vocab(tokenizer_dir, config.vocab_size, model_dir));
  std::vector<io::GgufTensorDecl> decls;
  for (const GgufTensorPlan& p : plans) decls.push_back(p.decl);
  io::GgufWriter writer(out, std::move(metadata), std::move(decls));

  GgufExportSummary summary{gguf_architecture(config), static_cast<int64_t>(plans.size()), 0, {}};
  std::vector<float> values, permuted;
  for (const GgufTensorPlan& p : plans) {
    const int64_t rows_n = p.decl.shape.front();
    if (!p.values.empty()) {
      values = p.values;
    } else if (p.param.empty()) {
      values.assign(static_cast<size_t>(shape_numel(p.decl.shape)), 0.0f);
    } else {
      values = rows(p.param, p.row_offset, p.row_offset + rows_n);
      GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(p.decl.shape),
                    "GGUF tensor {}: {} values from parameter {}", p.decl.name, values.size(), p.param);
      if (p.permute_heads > 0) {
        permuted.resize(values.size());
        permute_llama_rope_rows(values, permuted, p.permute_heads, static_cast<int64_t>(values.size()) / rows_n);
        values.swap(permuted);
      }
    }
    writer.write(values);
    ++summary.tensors_by_type[io::ggml_type_name(p.decl.type)];
  }
  writer.commit();
  summary.bytes = writer.bytes_written();
  return summary;
}

GgufExportSummary export_model_dir_gguf(const fs::path& model_dir, const fs::path& tokenizer_dir, const fs::path& out,
                                        GgufFileType type) {
  const ModelDirWeights weights(model_dir);
  gguf_architecture(weights.config());  // refuse before reading the tokenizer
  return write_model_gguf(
      weights.config(), [&](const std::string& param, int64_t begin, int64_t end) { return weights.rows(param, begin, end); },
      model_dir, tokenizer_dir, out, type);
}

GgufExportSummary export_model_gguf(const Transformer& model, const fs::path& model_dir, const fs::path& tokenizer_dir,
                                    const fs::path& out, GgufFileType type) {
  const ParameterSet& params = model.params();
  if (params.dtype() != DType::F32) fail("GGUF export reads float32 parameters; this model holds {}", dtype_name(params.dtype()));
  auto rows = [&](const std::string& name, int64_t begin, int64_t end) {
    const Parameter* param = params.find(name);
    GPTRAIN_CHECK(param != nullptr, "the model has no parameter {}", name);
    const Shape& shape = param->value.shape();
    const int64_t row_len = shape.size() == 1 ? 1 : shape[1];
    GPTRAIN_CHECK(begin >= 0 && end <= shape[0] && begin <= end, "rows [{}, {}) of {} {}", begin, end, name, shape[0]);
    const float* src = param->value.data<float>();
    return std::vector<float>(src + begin * row_len, src + end * row_len);
  };
  return write_model_gguf(model.config(), rows, model_dir, tokenizer_dir, out, type);
}

}  // namespace gptrain::convert
