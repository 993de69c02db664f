#include "model/lora.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "util/error.h"

namespace gptrain {

int64_t LinearAdapter::rows() const {
  int64_t n = 0;
  for (const ops::LoraSegment& s : segments) n += s.width;
  return n;
}

const LinearAdapter* AdapterPlan::find(const std::string& linear) const {
  const auto it = linears.find(linear);
  return it == linears.end() ? nullptr : &it->second;
}

std::vector<LinearUnit> linear_units(const ModelConfig& config) {
  const ModelConfig c = config.resolved();
  const int64_t C = c.emb_dim, Q = c.q_width(), KV = c.kv_width(), M = c.mlp_width();
  std::vector<LinearUnit> units;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    units.push_back({b + "attn.qkv", C, Q + 2 * KV, {{"query", {0, Q}}, {"key", {Q, KV}}, {"value", {Q + KV, KV}}}});
    units.push_back({b + "attn.proj", Q, C, {{"attn_out", {0, C}}}});
    if (c.mlp == MlpKind::SwiGLU)
      units.push_back({b + "mlp.fc", C, 2 * M, {{"gate", {0, M}}, {"up", {M, M}}}});
    else
      units.push_back({b + "mlp.fc", C, M, {{"mlp_in", {0, M}}}});
    units.push_back({b + "mlp.proj", M, C, {{"mlp_out", {0, C}}}});
  }
  const int64_t head_out = c.head == HeadType::Classifier ? c.n_classes : c.vocab_size;
  units.push_back({"head", C, head_out, {{"head", {0, head_out}}}});
  return units;
}

namespace {

const std::vector<std::string> kTargets = {"query", "key", "value", "attn_out", "mlp_in", "gate", "up", "mlp_out", "head"};

// One --lora-targets word as the parts it selects.
std::vector<std::string> expand_target(const std::string& word, const ModelConfig& c) {
  const bool swiglu = c.mlp == MlpKind::SwiGLU;
  const std::vector<std::string> mlp_in = swiglu ? std::vector<std::string>{"gate", "up"} : std::vector<std::string>{"mlp_in"};
  std::vector<std::string> all_linear = {"query", "key", "value", "attn_out"};
  all_linear.insert(all_linear.end(), mlp_in.begin(), mlp_in.end());
  all_linear.push_back("mlp_out");
  if (word == "default") {
    if (c.head == HeadType::Classifier) all_linear.push_back("head");
    return all_linear;
  }
  if (word == "all-linear") return all_linear;
  if (word == "attention") return {"query", "key", "value", "attn_out"};
  if (word == "mlp") {
    std::vector<std::string> m = mlp_in;
    m.push_back("mlp_out");
    return m;
  }
  if (word == "mlp_in" || word == "c_fc") return mlp_in;
  if (word == "gate" || word == "up" || word == "gate_proj" || word == "up_proj") {
    if (!swiglu)
      fail("--lora-targets {}: the model's MLP has no gate and up projections (it is GELU, not SwiGLU); use mlp_in", word);
    return {word.starts_with("gate") ? "gate" : "up"};
  }
  static const std::map<std::string, std::vector<std::string>> aliases = {
      {"query", {"query"}},     {"key", {"key"}},         {"value", {"value"}},       {"attn_out", {"attn_out"}},
      {"mlp_out", {"mlp_out"}}, {"head", {"head"}},       {"c_attn", {"query", "key", "value"}},
      {"c_proj", {"attn_out", "mlp_out"}},                {"q_proj", {"query"}},      {"k_proj", {"key"}},
      {"v_proj", {"value"}},    {"o_proj", {"attn_out"}}, {"down_proj", {"mlp_out"}}, {"lm_head", {"head"}},
      {"score", {"head"}}};
  const auto it = aliases.find(word);
  if (it == aliases.end())
    fail("--lora-targets: unknown target '{}'; use default, all-linear, attention, mlp, or a comma list of {} (or the "
         "module names c_attn, c_proj, c_fc, q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head, "
         "score)",
         word, fmt::join(kTargets, ", "));
  if ((word == "lm_head" && c.head == HeadType::Classifier) || (word == "score" && c.head != HeadType::Classifier))
    fail("--lora-targets {}: the model's head is {}", word,
         c.head == HeadType::Classifier ? "a classifier (score)" : "a language-model head (lm_head)");
  return it->second;
}

}  // namespace

AdapterPlan plan_adapters(const ModelConfig& config, const LoraOptions& o) {
  AdapterPlan plan;
  if (!o.enabled()) {
    if (o.rank < 0) fail("--lora-rank {}: the rank must be positive", o.rank);
    return plan;
  }
  const ModelConfig c = config.resolved();
  const double alpha = o.alpha.value_or(static_cast<double>(o.rank));
  if (!(alpha > 0) || !std::isfinite(alpha)) fail("--lora-alpha {}: alpha must be positive", alpha);
  if (o.scaling != "rank" && o.scaling != "none")
    fail("--lora-scaling '{}': expected rank (alpha / rank, the book's code and PEFT) or none (alpha alone)", o.scaling);
  if (!(o.dropout >= 0 && o.dropout < 1)) fail("--lora-dropout {}: expected a probability in [0, 1)", o.dropout);
  std::set<std::string> chosen;
  size_t start = 0;
  const std::string& t = o.targets;
  while (start <= t.size()) {
    const size_t end = std::min(t.find(',', start), t.size());
    std::string word = t.substr(start, end - start);
    word.erase(0, word.find_first_not_of(' '));
    word.erase(word.find_last_not_of(' ') + 1);
    if (word.empty()) fail("--lora-targets '{}': an empty entry", t);
    for (const std::string& part : expand_target(word, c)) chosen.insert(part);
    start = end + 1;
  }
  const float scaling = static_cast<float>(o.scaling == "rank" ? alpha / static_cast<double>(o.rank) : alpha);
  for (const LinearUnit& u : linear_units(c)) {
    LinearAdapter a;
    a.rank = o.rank;
    a.scaling = scaling;
    for (const LinearPart& p : u.parts)
      if (chosen.count(p.target)) {
        a.parts.push_back(p.target);
        a.segments.push_back(p.columns);
      }
    if (a.segments.empty()) continue;
    if (o.rank > u.in)
      fail("--lora-rank {} is above the input width {} of {} (a rank of at most the width adapts it)", o.rank, u.in,
           u.name);
    plan.linears.emplace(u.name, std::move(a));
  }
  plan.dropout = static_cast<float>(o.dropout);
  return plan;
}

bool is_adapter_name(const std::string& param, std::string* linear) {
  for (const char* suffix : {".lora_A", ".lora_B"})
    if (param.ends_with(suffix)) {
      if (linear) *linear = param.substr(0, param.size() - 7);
      return true;
    }
  return false;
}

std::string describe(const AdapterPlan& plan) {
  if (plan.empty()) return "no adapters";
  std::vector<std::string> parts;
  std::set<std::string> seen;
  std::set<int64_t> ranks;
  std::set<float> scalings;
  for (const auto& [name, a] : plan.linears) {
    ranks.insert(a.rank);
    scalings.insert(a.scaling);
  }
  std::vector<std::string> known = kTargets;
  known.push_back("all");  // a fused Linear adapted as a whole (a PEFT adapter on GPT-2's c_attn)
  for (const std::string& t : known)
    for (const auto& [name, a] : plan.linears)
      if (std::find(a.parts.begin(), a.parts.end(), t) != a.parts.end()) {
        parts.push_back(t);
        break;
      }
  const std::string rank = ranks.size() == 1 ? fmt::format("rank {}", *ranks.begin()) : "ranks per layer";
  const std::string scaling = scalings.size() == 1 ? fmt::format("scaling {}", *scalings.begin()) : "scalings per layer";
  return fmt::format("LoRA {}, {}{} on {} Linear layers ({})", rank, scaling,
                     plan.dropout > 0 ? fmt::format(", dropout {}", plan.dropout) : "", plan.linears.size(),
                     fmt::join(parts, ", "));
}

}  // namespace gptrain
