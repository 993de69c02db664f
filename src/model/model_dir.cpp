#include "model/model_dir.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/adapter_dir.h"
#include "model/hf_config.h"
#include "util/error.h"

namespace gptrain {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using hf::brief;
using hf::HfTensor;

constexpr const char* kConfigFile = "config.json";
constexpr const char* kGenerationFile = "generation_config.json";
constexpr const char* kWeightsFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

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
    std::string stored_name;  // as spelled in the file, possibly with the body prefix
  };
  std::map<std::string, Entry> tensors;  // by canonical (unprefixed) name
};

// A shard named in the index must be a plain file name in the model dir: no directories, no "..".
void check_shard_name(const std::string& shard, const std::string& index) {
  if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
      shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
    fail("{}: weight_map names shard \"{}\"; shards must be plain file names inside the model dir", index, shard);
}

// `prefix`: the family's body prefix ("transformer.", "model."), removed from the names it starts.
Checkpoint open_checkpoint(const fs::path& dir, const std::string& prefix) {
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
      const std::string canonical = info.name.starts_with(prefix) ? info.name.substr(prefix.size()) : info.name;
      const auto [it, inserted] = ck.tensors.emplace(canonical, Checkpoint::Entry{f, info.name});
      if (!inserted)
        fail("{}: tensor '{}' appears twice (as '{}' in {} and as '{}' in {})", ck.where, canonical,
             it->second.stored_name, ck.files[it->second.file].label(), info.name, ck.files[f].label());
    }
  for (const auto& [tensor, shard] : expected_shard) {
    const std::string canonical = tensor.starts_with(prefix) ? tensor.substr(prefix.size()) : tensor;
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
  if (hf::family_of(c) != "gpt2")
    s += fmt::format(", n_kv_heads {}, head_dim {}, mlp_dim {}", c.kv_heads(), c.head_size(), c.mlp_width());
  return s;
}

}  // namespace

ModelConfig read_model_config(const fs::path& model_dir) {
  const fs::path path = model_dir / kConfigFile;
  return hf::parse_config(read_json_file(path, kConfigFile), path.string());
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
  const ModelConfig config = hf::parse_config(root, path.string());
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
  for (const HfTensor& t : hf::layout(config)) {
    if (t.head && !include_head) continue;
    const auto it = ck.tensors.find(t.name);
    if (it == ck.tensors.end()) {
      missing.push_back(t.name);
      continue;
    }
    used.insert(t.name);
    const io::SafeTensorsFile& file = ck.files[it->second.file];
    const io::TensorInfo& info = file.at(it->second.stored_name);
    if (info.shape != t.shape)
      fail("{}: tensor '{}' has shape {} but {} was expected; {}", file.label(), info.name, shape_string(info.shape),
           shape_string(t.shape), hint());
  }
  if (!missing.empty())
    fail("{}: missing {} tensor{}: {}; {}", ck.where, missing.size(), missing.size() == 1 ? "" : "s",
         name_list(missing), hint());
  std::vector<std::string> unexpected;
  for (const auto& [name, entry] : ck.tensors) {
    if (used.count(name) || hf::ignorable(name)) continue;
    // A tied head is the token embedding (transformers ignores a stored lm_head then), and a
    // body-only load ignores whatever head the file has.
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

// The part of a parameter that one file tensor fills: all of it, or rows [row_offset,
// row_offset + rows) of a fused one (a transposed tensor is always a whole parameter).
Tensor rows_of(const Tensor& param, const HfTensor& t) {
  if (t.transpose || (t.row_offset == 0 && shape_numel(t.shape) == param.numel())) return param;
  return param.slice_rows(t.row_offset, t.row_offset + t.shape[0]);
}

// A model without qkv bias: the stored bias must be zero.
void check_zero_bias(const io::SafeTensorsFile& file, const std::string& stored_name) {
  const std::vector<float> bias = file.load(stored_name).to_vector();
  if (std::any_of(bias.begin(), bias.end(), [](float v) { return v != 0.0f; }))
    fail("{}: tensor '{}' is not zero but the model has no qkv bias (gptrain.qkv_bias false); set qkv_bias to "
         "true in config.json to use it",
         file.label(), stored_name);
}

// The checked checkpoint's data into the model's parameters (f32, f16 and bf16 files alike).
void copy_weights(const Checkpoint& ck, Transformer& model, bool include_head) {
  Tensor scratch;
  for (const HfTensor& t : hf::layout(model.config())) {
    if (t.head && !include_head) continue;
    const Checkpoint::Entry& entry = ck.tensors.at(t.name);
    const io::SafeTensorsFile& file = ck.files[entry.file];
    if (t.param.empty()) {
      check_zero_bias(file, entry.stored_name);
      continue;
    }
    const Tensor& dst = model.params().at(t.param).value;
    if (t.transpose) {
      scratch = file.load(entry.stored_name);
      // A model on a device: transposed on the host, then copied.
      const Tensor out = dst.device() == Device::CPU ? dst : Tensor::empty(dst.shape(), dst.dtype());
      transpose_into(out.data(), scratch.data(), t.shape[0], t.shape[1]);
      if (out.raw() != dst.raw()) dst.copy_from(out);
    } else {
      file.load_into(entry.stored_name, rows_of(dst, t));
    }
  }
}

}  // namespace

void load_model_weights(Transformer& model, const fs::path& model_dir, bool include_head) {
  const Checkpoint ck = open_checkpoint(model_dir, hf::body_prefix(hf::family_of(model.config())));
  check_checkpoint(ck, model.config(), include_head);
  copy_weights(ck, model, include_head);
}

void check_model_weights(const ModelConfig& config, const fs::path& model_dir, bool include_head) {
  check_checkpoint(open_checkpoint(model_dir, hf::body_prefix(hf::family_of(config))), config, include_head);
}

std::unique_ptr<Transformer> load_model_dir(const fs::path& model_dir, const ModelLoadOptions& options) {
  ModelConfig config = read_model_config(model_dir);
  if (options.drop_rate) {
    config.drop_rate = *options.drop_rate;
    config.validate();
  }
  const Checkpoint ck = open_checkpoint(model_dir, hf::body_prefix(hf::family_of(config)));
  check_checkpoint(ck, config, true);
  if (!options.adapter.empty() && options.lora.enabled())
    fail("{}: an adapter to apply (--adapter) and new adapters to train (--lora-rank) at once", model_dir.string());
  const AdapterPlan adapters = !options.adapter.empty() ? read_adapter_plan(options.adapter, config)
                                                        : plan_adapters(config, options.lora);
  // No random init: every weight is loaded.
  auto model = std::make_unique<Transformer>(config, std::nullopt, DType::F32, adapters);
  copy_weights(ck, *model, true);
  if (!options.adapter.empty()) load_adapter_weights(*model, options.adapter);
  if (options.lora.enabled()) model->init_adapters(options.lora_seed);
  return model;
}

struct ModelDirWeights::Impl {
  ModelConfig config;
  Checkpoint checkpoint;
  std::vector<HfTensor> layout;
};

ModelDirWeights::ModelDirWeights(const fs::path& model_dir) : impl_(std::make_unique<Impl>()) {
  impl_->config = read_model_config(model_dir);
  impl_->checkpoint = open_checkpoint(model_dir, hf::body_prefix(hf::family_of(impl_->config)));
  check_checkpoint(impl_->checkpoint, impl_->config, true);
  impl_->layout = hf::layout(impl_->config);
  for (const HfTensor& t : impl_->layout)
    if (t.param.empty()) {
      const Checkpoint::Entry& entry = impl_->checkpoint.tensors.at(t.name);
      check_zero_bias(impl_->checkpoint.files[entry.file], entry.stored_name);
    }
}

ModelDirWeights::~ModelDirWeights() = default;

const ModelConfig& ModelDirWeights::config() const { return impl_->config; }

std::vector<float> ModelDirWeights::rows(const std::string& param, int64_t row_begin, int64_t row_end) const {
  std::vector<float> out;
  int64_t covered = 0, row_len = 0;
  for (const HfTensor& t : impl_->layout) {
    if (t.param != param) continue;
    // The rows of our parameter this file tensor fills, and their length.
    const int64_t first = t.transpose ? 0 : t.row_offset;
    const int64_t count = t.transpose ? t.shape[1] : t.shape[0];
    row_len = t.transpose ? t.shape[0] : (t.shape.size() == 2 ? t.shape[1] : 1);
    const int64_t from = std::max(first, row_begin), to = std::min(first + count, row_end);
    if (from >= to) continue;
    out.resize(static_cast<size_t>((row_end - row_begin) * row_len));
    const Checkpoint::Entry& entry = impl_->checkpoint.tensors.at(t.name);
    const Tensor stored = impl_->checkpoint.files[entry.file].load(entry.stored_name);
    const float* src = stored.data<float>();
    std::vector<float> transposed;
    if (t.transpose) {  // Conv1D [in, out] -> [out, in]
      transposed.resize(static_cast<size_t>(stored.numel()));
      transpose_into(transposed.data(), src, t.shape[0], t.shape[1]);
      src = transposed.data();
    }
    std::copy_n(src + (from - first) * row_len, (to - from) * row_len, out.data() + (from - row_begin) * row_len);
    covered += to - from;
  }
  if (row_len == 0) fail("{}: the model has no parameter '{}'", impl_->checkpoint.where, param);
  GPTRAIN_CHECK(covered == row_end - row_begin, "rows [{}, {}) of {}: the checkpoint fills {}", row_begin, row_end,
                param, covered);
  return out;
}

std::string model_config_text(const ModelConfig& config, const std::vector<std::string>& class_names) {
  return hf::config_json(config, class_names).dump(2) + "\n";
}

ModelConfig parse_model_config_text(const std::string& text, const std::string& file) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file, e.what());
  }
  return hf::parse_config(root, file);
}

std::vector<CheckpointTensor> checkpoint_tensors(const ModelConfig& config) {
  const std::string prefix = hf::body_prefix(hf::family_of(config));
  std::vector<CheckpointTensor> out;
  for (const HfTensor& t : hf::layout(config))
    out.push_back({t.head ? t.name : prefix + t.name, t.param, t.shape, t.row_offset, t.transpose});
  return out;
}

GenerationConfig read_generation_config(const fs::path& model_dir) {
  GenerationConfig g;
  // generation_config.json's ids, else config.json's (each an id or a list of ids).
  const auto ids = [](const json& v, const std::string& file, const char* key) {
    std::vector<int32_t> out;
    const auto one = [&](const json& x) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        fail("{}: key '{}' must hold non-negative token ids, got {}", file, key, brief(x));
      out.push_back(static_cast<int32_t>(x.get<int64_t>()));
    };
    if (v.is_array()) {
      for (const json& x : v) one(x);
    } else if (!v.is_null()) {
      one(v);
    }
    return out;
  };
  for (const char* name : {kGenerationFile, kConfigFile}) {
    const fs::path path = model_dir / name;
    if (!fs::exists(path)) continue;
    const json root = read_json_file(path, name);
    if (!root.is_object()) fail("{}: expected a JSON object", path.string());
    if (g.eos_ids.empty() && root.contains("eos_token_id")) g.eos_ids = ids(root["eos_token_id"], path.string(), "eos_token_id");
    if (g.bos_id < 0 && root.contains("bos_token_id")) {
      const auto b = ids(root["bos_token_id"], path.string(), "bos_token_id");
      if (!b.empty()) g.bos_id = b[0];
    }
    if (g.pad_id < 0 && root.contains("pad_token_id")) {
      const auto p = ids(root["pad_token_id"], path.string(), "pad_token_id");
      if (!p.empty()) g.pad_id = p[0];
    }
  }
  return g;
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

  const std::vector<HfTensor> layout = hf::layout(config);
  const std::string prefix = hf::body_prefix(hf::family_of(config));
  std::vector<std::pair<std::string, Shape>> declared;
  for (const HfTensor& t : layout) declared.emplace_back(t.head ? t.name : prefix + t.name, t.shape);
  // transformers refuses safetensors files whose metadata lacks format "pt".
  io::SafeTensorsWriter writer(model_dir / kWeightsFile, declared, {{"format", "pt"}});
  std::vector<float> scratch;
  for (const HfTensor& t : layout) {
    const int64_t n = shape_numel(t.shape);
    if (t.param.empty()) {  // c_attn.bias of a model without qkv bias
      scratch.assign(static_cast<size_t>(n), 0.0f);
      writer.write(scratch);
      continue;
    }
    const Parameter* p = model.params().find(t.param);
    GPTRAIN_CHECK(p != nullptr, "parameter {} for {}", t.param, t.name);
    const Tensor rows = rows_of(p->value, t).host();  // a model on a device: one tensor at a time
    GPTRAIN_CHECK(rows.numel() == n, "parameter {} rows for {}", t.param, t.name);
    if (t.transpose) {
      scratch.resize(static_cast<size_t>(n));
      // ours [out, in] -> Conv1D [in, out]
      transpose_into(scratch.data(), rows.data(), t.shape[1], t.shape[0]);
      writer.write(scratch);
    } else {
      writer.write({rows.data(), static_cast<size_t>(n)});
    }
  }
  writer.commit();
  // config.json last: a first save that is interrupted leaves no config.json, so no half model dir
  // is ever taken for a model.
  io::write_file_atomic(model_dir / kConfigFile, model_config_text(config, class_names));
}

}  // namespace gptrain
