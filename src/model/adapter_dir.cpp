#include "model/adapter_dir.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/hf_config.h"
#include "model/peft_pattern.h"
#include "util/error.h"

namespace gptrain {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;  // adapter_config.json as read: pattern keys in file order, as PEFT tries them

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kKeyPrefix = "base_model.model.";

// A module an adapter can sit on: a whole Linear, or one part of a fused one.
struct Module {
  std::string name;  // as the family's transformers class names it, body prefix included
  const LinearUnit* unit = nullptr;
  int part = -1;  // index into unit->parts; -1: the whole Linear
  int64_t out() const { return part < 0 ? unit->out : unit->parts[static_cast<size_t>(part)].columns.width; }
};

bool split_family(const std::string& family) { return family == "llama" || family == "qwen3"; }

std::vector<Module> modules_of(const ModelConfig& c, const std::vector<LinearUnit>& units) {
  const std::string family = hf::family_of(c);
  const bool split = split_family(family);
  std::vector<Module> out;
  for (const LinearUnit& u : units) {
    if (u.name == "head") {
      out.push_back({c.head == HeadType::Classifier ? "score" : "lm_head", &u, -1});
      continue;
    }
    // blocks.{i}.<unit>
    const size_t dot = u.name.find('.', 7);
    const std::string layer = u.name.substr(7, dot - 7), unit = u.name.substr(dot + 1);
    if (!split) {
      const std::string base = "transformer.h." + layer + ".";
      const char* hf = unit == "attn.qkv" ? "attn.c_attn" : unit == "attn.proj" ? "attn.c_proj"
                       : unit == "mlp.fc" ? "mlp.c_fc" : "mlp.c_proj";
      out.push_back({base + hf, &u, -1});
      continue;
    }
    const std::string base = "model.layers." + layer + ".";
    if (unit == "attn.qkv") {
      out.push_back({base + "self_attn.q_proj", &u, 0});
      out.push_back({base + "self_attn.k_proj", &u, 1});
      out.push_back({base + "self_attn.v_proj", &u, 2});
    } else if (unit == "attn.proj") {
      out.push_back({base + "self_attn.o_proj", &u, -1});
    } else if (unit == "mlp.fc") {
      out.push_back({base + "mlp.gate_proj", &u, 0});
      out.push_back({base + "mlp.up_proj", &u, 1});
    } else {
      out.push_back({base + "mlp.down_proj", &u, -1});
    }
  }
  return out;
}

ordered_json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot read it (an adapter dir holds adapter_config.json and adapter_model.safetensors)", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return ordered_json::parse(ss.str());
  } catch (const ordered_json::exception& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
}

// A rank_pattern / alpha_pattern object, tried in the file's order (PEFT's pattern match,
// model/peft_pattern.h). A key is compiled when a module first reaches it, and once: like
// Python's re, a key after the one that matches every module is never looked at.
class PatternTable {
 public:
  PatternTable(const ordered_json& patterns, std::string file, const char* field)
      : patterns_(patterns), file_(std::move(file)), field_(field) {
    if (patterns.is_object())
      for (const auto& [key, value] : patterns.items()) entries_.push_back({key, &value, std::nullopt});
  }
  // The value of the first key that applies to `module`, or null.
  const ordered_json* value_for(const std::string& module) const {
    if (patterns_.is_null()) return nullptr;
    if (!patterns_.is_object())
      fail("{}: key '{}' must be an object, got {}", file_, field_, hf::brief(json(patterns_)));
    for (Entry& e : entries_) {
      if (!e.pattern) compile(e);
      if (e.pattern->matches(module)) return e.value;
    }
    return nullptr;
  }

 private:
  struct Entry {
    std::string key;
    const ordered_json* value;
    std::optional<PeftPattern> pattern;
  };
  void compile(Entry& e) const {
    try {
      e.pattern.emplace(e.key);
    } catch (const Error& error) {
      fail("{}: {}: {}", file_, field_, error.what());
    }
  }
  const ordered_json& patterns_;
  std::string file_;
  const char* field_;
  mutable std::vector<Entry> entries_;
};

// One module of the dir: where its tensors go and its scaling.
struct StoredModule {
  Module module;
  std::string key_a, key_b;
  int64_t rank = 0;
  double scaling = 1.0;
};

struct StoredAdapter {
  std::vector<StoredModule> modules;
  io::SafeTensorsFile file;
};

StoredAdapter read_adapter(const fs::path& dir, const ModelConfig& config, const std::vector<LinearUnit>& units) {
  const fs::path config_path = dir / kConfigFile;
  const std::string cfile = config_path.string();
  const ordered_json cfg = read_json(config_path);
  if (!cfg.is_object()) fail("{}: expected a JSON object", cfile);
  // Typed reads: json::value() throws nlohmann's type_error on a value of another type.
  const auto typed = [&](const char* key, bool (ordered_json::*is)() const noexcept, const char* what) -> const ordered_json* {
    if (!cfg.contains(key) || cfg[key].is_null()) return nullptr;
    if (!(cfg[key].*is)()) fail("{}: key '{}' must be {}, got {}", cfile, key, what, hf::brief(json(cfg[key])));
    return &cfg[key];
  };
  const auto flag = [&](const char* key) {
    const ordered_json* v = typed(key, &ordered_json::is_boolean, "true or false");
    return v && v->get<bool>();
  };
  const ordered_json* peft_type = typed("peft_type", &ordered_json::is_string, "a string");
  const std::string type = peft_type ? peft_type->get<std::string>() : "LORA";
  if (type != "LORA") fail("{}: key 'peft_type' is '{}'; gptrain reads LoRA adapters (LORA)", cfile, type);
  const auto number = [&](const char* key) -> double {
    if (!cfg.contains(key) || !cfg[key].is_number()) fail("{}: missing or non-numeric key '{}'", cfile, key);
    return cfg[key].get<double>();
  };
  const double r = number("r"), alpha = number("lora_alpha");
  if (!(r >= 1) || r != std::floor(r)) fail("{}: key 'r' must be a positive integer, got {}", cfile, hf::brief(json(cfg["r"])));
  if (!(alpha > 0)) fail("{}: key 'lora_alpha' must be positive, got {}", cfile, hf::brief(json(cfg["lora_alpha"])));
  if (flag("use_dora")) fail("{}: key 'use_dora' is true; DoRA adapters are not supported", cfile);
  const bool rslora = flag("use_rslora");
  if (cfg.contains("bias") && cfg["bias"].is_string() && cfg["bias"] != "none")
    fail("{}: key 'bias' is '{}'; adapters that train biases are not supported (bias must be none)", cfile,
         cfg["bias"].get<std::string>());
  if (cfg.contains("modules_to_save") && cfg["modules_to_save"].is_array() && !cfg["modules_to_save"].empty())
    fail("{}: key 'modules_to_save' lists {}; adapters with fully saved modules are not supported", cfile,
         hf::brief(json(cfg["modules_to_save"])));
  const ordered_json rank_json = cfg.value("rank_pattern", ordered_json()),
                     alpha_json = cfg.value("alpha_pattern", ordered_json());
  const PatternTable rank_pattern(rank_json, cfile, "rank_pattern"), alpha_pattern(alpha_json, cfile, "alpha_pattern");

  StoredAdapter a{{}, io::SafeTensorsFile::open(dir / kWeightsFile)};
  const std::string wfile = a.file.label();
  const std::string family = hf::family_of(config), body = hf::body_prefix(family);
  std::map<std::string, Module> by_name;
  for (const Module& m : modules_of(config, units)) by_name[m.name] = m;
  std::map<std::string, StoredModule> found;
  for (const io::TensorInfo& t : a.file.tensors()) {
    const std::string& key = t.name;
    const bool is_a = key.ends_with(".lora_A.weight"), is_b = key.ends_with(".lora_B.weight");
    if (!key.starts_with(kKeyPrefix) || (!is_a && !is_b))
      fail("{}: tensor '{}' is not a LoRA matrix (base_model.model.<module>.lora_A.weight / .lora_B.weight)", wfile,
           key);
    std::string name = key.substr(std::string(kKeyPrefix).size(), key.size() - std::string(kKeyPrefix).size() - 14);
    // PEFT on the bare body class names modules without the body prefix (h.0.attn.c_attn).
    if (!by_name.count(name) && by_name.count(body + name)) name = body + name;
    const auto it = by_name.find(name);
    if (it == by_name.end())
      fail("{}: tensor '{}' adapts '{}', which the base model ({} family, {} layers, {} head) does not have; the "
           "adapter was made for another base",
           wfile, key, name, family, config.n_layers,
           config.head == HeadType::Classifier ? "classifier" : "language-model");
    StoredModule& s = found[name];
    s.module = it->second;
    (is_a ? s.key_a : s.key_b) = key;
  }
  if (found.empty()) fail("{}: no LoRA tensors", wfile);
  for (auto& [name, s] : found) {
    if (s.key_a.empty() || s.key_b.empty())
      fail("{}: module '{}' has {} but not {}", wfile, name, s.key_a.empty() ? "lora_B" : "lora_A",
           s.key_a.empty() ? "lora_A" : "lora_B");
    const Shape& sa = a.file.at(s.key_a).shape;
    const Shape& sb = a.file.at(s.key_b).shape;
    s.rank = sa.size() == 2 ? sa[0] : 0;
    const int64_t in = s.module.unit->in, out = s.module.out();
    if (sa.size() != 2 || sa[1] != in || sa[0] < 1)
      fail("{}: tensor '{}' has shape {} but the base's {} takes {} inputs ([r, {}] expected); the adapter was made "
           "for another base",
           wfile, s.key_a, shape_string(sa), name, in, in);
    if (sb != Shape{out, s.rank})
      fail("{}: tensor '{}' has shape {} but [{}, {}] was expected (the base's {} has {} outputs); the adapter was "
           "made for another base",
           wfile, s.key_b, shape_string(sb), out, s.rank, name, out);
    double r_m = r, alpha_m = alpha;
    if (const ordered_json* v = rank_pattern.value_for(name)) {
      if (!v->is_number_integer()) fail("{}: rank_pattern entry for '{}' is not an integer", cfile, name);
      r_m = v->get<double>();
    }
    if (const ordered_json* v = alpha_pattern.value_for(name)) {
      if (!v->is_number()) fail("{}: alpha_pattern entry for '{}' is not a number", cfile, name);
      alpha_m = v->get<double>();
    }
    if (r_m != static_cast<double>(s.rank))  // (casting r_m instead overflows for r = 1e300)
      fail("{}: module '{}' has rank {} in {} but {} by adapter_config.json's r / rank_pattern", wfile, name, s.rank,
           s.key_a, r_m);
    s.scaling = rslora ? alpha_m / std::sqrt(r_m) : alpha_m / r_m;
    a.modules.push_back(s);
  }
  return a;
}

// The plan of the stored modules: per Linear, its parts in column order, padded to one rank.
AdapterPlan plan_of(const StoredAdapter& a) {
  AdapterPlan plan;
  std::map<std::string, std::vector<const StoredModule*>> per_linear;
  for (const StoredModule& s : a.modules) per_linear[s.module.unit->name].push_back(&s);
  for (auto& [linear, mods] : per_linear) {
    std::sort(mods.begin(), mods.end(), [](const StoredModule* x, const StoredModule* y) { return x->module.part < y->module.part; });
    LinearAdapter la;
    la.scaling = static_cast<float>(mods.front()->scaling);
    for (const StoredModule* s : mods) {
      la.rank = std::max(la.rank, s->rank);
      const LinearUnit& u = *s->module.unit;
      if (s->module.part < 0) {
        la.parts.push_back(u.parts.size() == 1 ? u.parts[0].target : "all");
        la.segments.push_back({0, u.out});
      } else {
        const LinearPart& p = u.parts[static_cast<size_t>(s->module.part)];
        la.parts.push_back(p.target);
        la.segments.push_back(p.columns);
      }
    }
    plan.linears.emplace(linear, std::move(la));
  }
  return plan;
}

std::string dump_json(const json& j) { return j.dump(2) + "\n"; }

}  // namespace

bool is_adapter_dir(const fs::path& dir) { return fs::is_regular_file(dir / kConfigFile); }

std::string adapter_base_model(const fs::path& dir) {
  const ordered_json cfg = read_json(dir / kConfigFile);
  return cfg.is_object() && cfg.contains("base_model_name_or_path") && cfg["base_model_name_or_path"].is_string()
             ? cfg["base_model_name_or_path"].get<std::string>()
             : "";
}

AdapterPlan read_adapter_plan(const fs::path& dir, const ModelConfig& config) {
  const std::vector<LinearUnit> units = linear_units(config);
  return plan_of(read_adapter(dir, config, units));
}

void load_adapter_weights(Transformer& model, const fs::path& dir) {
  const std::vector<LinearUnit> units = linear_units(model.config());
  const StoredAdapter a = read_adapter(dir, model.config(), units);
  const AdapterPlan plan = plan_of(a);
  ParameterSet& P = model.params();
  for (const auto& [linear, la] : plan.linears) {
    const LinearAdapter* ours = model.adapters().find(linear);
    if (!ours || ours->rank != la.rank || ours->segments.size() != la.segments.size())
      fail("{}: the model was not built with this adapter's plan for {}", (dir / kWeightsFile).string(), linear);
    P.at(linear + ".lora_A").value.zero();
    P.at(linear + ".lora_B").value.zero();
  }
  for (const StoredModule& s : a.modules) {
    const std::string& linear = s.module.unit->name;
    const LinearAdapter& la = *model.adapters().find(linear);
    // The segment this module fills, and where its rows of B start.
    const int64_t col = s.module.part < 0 ? 0 : s.module.unit->parts[static_cast<size_t>(s.module.part)].columns.col;
    size_t seg = 0;
    int64_t b_row = 0;
    while (seg < la.segments.size() && la.segments[seg].col != col) b_row += la.segments[seg++].width;
    GPTRAIN_CHECK(seg < la.segments.size(), "adapter segment of {} not found", s.module.name);
    const Tensor A = a.file.load_as(s.key_a, DType::F32), B = a.file.load_as(s.key_b, DType::F32);
    Tensor& dstA = P.at(linear + ".lora_A").value;
    Tensor& dstB = P.at(linear + ".lora_B").value;
    const int64_t R = la.rank, in = s.module.unit->in, width = s.module.out();
    const float ratio = static_cast<float>(s.scaling / la.scaling);  // exact when 1 (every adapter gptrain writes)
    // A's rows [seg R, seg R + r) and B's columns [0, r) of the segment's rows; the padding stays zero.
    const float* a_src = A.data<float>();
    const float* b_src = B.data<float>();
    if (dstA.dtype() == DType::F64) {
      double* da = dstA.data<double>();
      double* db = dstB.data<double>();
      for (int64_t r = 0; r < s.rank; ++r)
        for (int64_t i = 0; i < in; ++i) da[(static_cast<int64_t>(seg) * R + r) * in + i] = a_src[r * in + i];
      for (int64_t o = 0; o < width; ++o)
        for (int64_t r = 0; r < s.rank; ++r) db[(b_row + o) * R + r] = static_cast<double>(ratio) * b_src[o * s.rank + r];
    } else {
      float* da = dstA.data<float>();
      float* db = dstB.data<float>();
      for (int64_t r = 0; r < s.rank; ++r)
        std::copy(a_src + r * in, a_src + (r + 1) * in, da + (static_cast<int64_t>(seg) * R + r) * in);
      for (int64_t o = 0; o < width; ++o)
        for (int64_t r = 0; r < s.rank; ++r) db[(b_row + o) * R + r] = ratio * b_src[o * s.rank + r];
    }
  }
}

void save_adapter_dir(const Transformer& model, const fs::path& dir, const std::string& base_model) {
  const AdapterPlan& plan = model.adapters();
  if (plan.empty()) fail("save_adapter_dir: the model has no adapters");
  const ModelConfig& config = model.config();
  const std::vector<LinearUnit> units = linear_units(config);
  const std::vector<Module> modules = modules_of(config, units);
  const std::string family = hf::family_of(config);
  const ParameterSet& P = model.params();

  struct Out {
    std::string module;
    int64_t rank;
    double scaling;
    std::vector<float> A, B;
    Shape shape_a, shape_b;
  };
  std::vector<Out> outs;
  for (const LinearUnit& u : units) {
    const LinearAdapter* la = plan.find(u.name);
    if (!la) continue;
    const std::vector<float> A = P.find(u.name + ".lora_A")->value.to_vector();
    const std::vector<float> B = P.find(u.name + ".lora_B")->value.to_vector();
    const int64_t R = la->rank, S = static_cast<int64_t>(la->segments.size());
    std::vector<const Module*> mods;
    for (const Module& m : modules)
      if (m.unit->name == u.name) mods.push_back(&m);
    if (mods.size() > 1) {  // one PEFT module per adapted part (Llama, Qwen3)
      int64_t b_row = 0;
      for (int64_t s = 0; s < S; ++s) {
        const ops::LoraSegment& g = la->segments[static_cast<size_t>(s)];
        const Module* m = nullptr;
        for (const Module* x : mods)
          if (u.parts[static_cast<size_t>(x->part)].columns.col == g.col &&
              u.parts[static_cast<size_t>(x->part)].columns.width == g.width)
            m = x;
        if (!m) fail("{}: its adapter covers columns {} + {}, which is no single module of {}", u.name, g.col, g.width, family);
        Out o{m->name, R, la->scaling, {}, {}, {R, u.in}, {g.width, R}};
        o.A.assign(A.begin() + s * R * u.in, A.begin() + (s + 1) * R * u.in);
        o.B.assign(B.begin() + b_row * R, B.begin() + (b_row + g.width) * R);
        outs.push_back(std::move(o));
        b_row += g.width;
      }
      continue;
    }
    // One module for the whole Linear: rank S R, lora_B block-diagonal over the segments.
    Out o{mods.front()->name, S * R, la->scaling, A, std::vector<float>(static_cast<size_t>(u.out * S * R), 0.0f),
          {S * R, u.in}, {u.out, S * R}};
    int64_t b_row = 0;
    for (int64_t s = 0; s < S; ++s) {
      const ops::LoraSegment& g = la->segments[static_cast<size_t>(s)];
      for (int64_t j = 0; j < g.width; ++j)
        for (int64_t r = 0; r < R; ++r)
          o.B[static_cast<size_t>((g.col + j) * S * R + s * R + r)] = B[static_cast<size_t>((b_row + j) * R + r)];
      b_row += g.width;
    }
    outs.push_back(std::move(o));
  }

  // PEFT's scaling is lora_alpha / r: the most common rank and alpha set r and lora_alpha, and
  // every module that differs (GPT-2's fused c_attn) gets a rank_pattern / alpha_pattern entry of
  // its full name.
  std::map<std::pair<int64_t, double>, int> counts;
  for (const Out& o : outs) ++counts[{o.rank, o.scaling * static_cast<double>(o.rank)}];
  const auto common = std::max_element(counts.begin(), counts.end(),
                                       [](const auto& a, const auto& b) { return a.second < b.second; });
  const int64_t r = common->first.first;
  const double alpha = common->first.second;
  json rank_pattern = json::object(), alpha_pattern = json::object(), targets = json::array();
  std::vector<std::string> names;
  for (const Out& o : outs) {
    names.push_back(o.module);
    if (o.rank != r) rank_pattern[o.module] = o.rank;
    const double a = o.scaling * static_cast<double>(o.rank);
    if (a != alpha) alpha_pattern[o.module] = a;
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) targets.push_back(n);
  json cfg = {{"peft_type", "LORA"},
              {"task_type", config.head == HeadType::Classifier ? json() : json("CAUSAL_LM")},
              {"base_model_name_or_path", base_model},
              {"r", r},
              {"lora_alpha", alpha},
              {"lora_dropout", plan.dropout},
              {"target_modules", targets},
              {"rank_pattern", rank_pattern},
              {"alpha_pattern", alpha_pattern},
              {"fan_in_fan_out", family == "gpt2"},  // GPT-2's Conv1D stores [in, out]
              {"bias", "none"},
              {"use_rslora", false},
              {"use_dora", false},
              {"modules_to_save", json()},
              {"init_lora_weights", true},
              {"inference_mode", true}};
  // Nothing of our own in it: PEFT warns about keys LoraConfig does not know.

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create the adapter dir {}: {}", dir.string(), ec.message());
  std::vector<std::pair<std::string, Shape>> declared;
  for (const Out& o : outs) {
    declared.emplace_back(kKeyPrefix + o.module + ".lora_A.weight", o.shape_a);
    declared.emplace_back(kKeyPrefix + o.module + ".lora_B.weight", o.shape_b);
  }
  io::SafeTensorsWriter w(dir / kWeightsFile, declared, {{"format", "pt"}});
  for (const Out& o : outs) {
    w.write(o.A);
    w.write(o.B);
  }
  w.commit();
  io::write_file_atomic(dir / kConfigFile, dump_json(cfg));
}

}  // namespace gptrain
