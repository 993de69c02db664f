#include "model/layers.h"

#include <vector>

#include "util/error.h"
#include "util/rng.h"

namespace gptrain {

namespace {
Tensor value(const ParameterSet& P, int index) { return index >= 0 ? P[index].compute : Tensor(); }
Tensor grad(const ParameterSet& P, int index) { return index >= 0 ? P[index].grad : Tensor(); }
}  // namespace

uint64_t Pass::site_seed(int64_t layer, int site) const {
  return derive_seed(dropout_seed, static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(site));
}

void Embedding::forward(const ParameterSet& P, const Tensor& out, const Tensor& tokens, const Tensor& positions,
                        int64_t pos_offset) const {
  ops::embedding_forward(out, tokens, positions, value(P, tok), value(P, pos), pos_offset);
}

void Embedding::backward(ParameterSet& P, const Tensor& dout, const Tensor& tokens, const Tensor& positions,
                         int64_t pos_offset) const {
  ops::embedding_backward(grad(P, tok), grad(P, pos), dout, tokens, positions, pos_offset);
}

Linear Linear::add(ParameterSet& P, const std::string& name, int64_t in, int64_t out, bool bias, LinearSite site,
                   const AdapterPlan& plan) {
  Linear l;
  l.in = in;
  l.out = out;
  l.site = site;
  l.weight = P.add(name + ".weight", {out, in}, ParamKind::LinearWeight, site.layer, in);
  if (bias) l.bias = P.add(name + ".bias", {out}, ParamKind::LinearBias, site.layer, in);
  l.add_adapter(P, name, plan);
  return l;
}

void Linear::add_adapter(ParameterSet& P, const std::string& name, const AdapterPlan& plan) {
  const LinearAdapter* a = plan.find(name);
  if (!a) return;
  lora.segments = a->segments;
  lora.scaling = a->scaling;
  const int64_t S = static_cast<int64_t>(a->segments.size());
  // The book's A is [in, rank]: kaiming_uniform's fan_in is the rank (ParamKind::LoraA).
  lora_a = P.add(name + ".lora_A", {S * a->rank, in}, ParamKind::LoraA, site.layer, a->rank);
  lora_b = P.add(name + ".lora_B", {a->rows(), a->rank}, ParamKind::LoraB, site.layer, a->rank);
}

namespace {

// The first numel(like) elements of a scratch buffer, shaped as `like`.
Tensor scratch_like(const Tensor& buffer, const Tensor& like) {
  GPTRAIN_CHECK(buffer.defined() && buffer.numel() >= like.numel(), "LoRA dropout: no scratch for {} elements",
                like.numel());
  return buffer.slice_rows(0, like.numel()).reshape(like.shape());
}

}  // namespace

void Linear::forward(const ParameterSet& P, const Tensor& y, const Tensor& x, const Pass& pass) const {
  const bool half = pass.batch_invariant && pass.half_weights && weight < static_cast<int>(pass.half_weights->size()) &&
                    (*pass.half_weights)[static_cast<size_t>(weight)].defined();
  if (half)
    ops::matmul_forward_half(y, x, (*pass.half_weights)[static_cast<size_t>(weight)], value(P, bias));
  else
    ops::matmul_forward(y, x, value(P, weight), value(P, bias), pass.batch_invariant);
  if (lora_a < 0 || pass.without_adapters) return;
  Tensor input = x;
  if (pass.lora_dropout > 0) {
    input = scratch_like(pass.lora_x, x);
    ops::dropout_forward(input, x, pass.lora_dropout, pass.site_seed(site.layer, site.site), pass.mask_offset(x));
  }
  ops::lora_forward(y, input, P[lora_a].compute, P[lora_b].compute, lora, pass.batch_invariant);
}

void Linear::backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, InputGrad mode,
                      const Pass& pass) const {
  ops::matmul_backward(dx, grad(P, weight), grad(P, bias), dy, x, value(P, weight), mode);
  if (lora_a < 0) return;
  const Tensor dA = grad(P, lora_a), dB = grad(P, lora_b);
  if (!dx.defined() && !dA.defined() && !dB.defined()) return;
  if (pass.lora_dropout <= 0) {
    ops::lora_backward(dx, dA, dB, dy, x, P[lora_a].compute, P[lora_b].compute, lora);
    return;
  }
  // The adapter saw drop(x): recompute it, and route its gradient back through the same mask.
  const uint64_t seed = pass.site_seed(site.layer, site.site);
  const Tensor input = scratch_like(pass.lora_x, x);
  ops::dropout_forward(input, x, pass.lora_dropout, seed, pass.mask_offset(x));
  Tensor dinput;
  if (dx.defined()) {
    dinput = scratch_like(pass.lora_dx, x);
    dinput.zero();
  }
  ops::lora_backward(dinput, dA, dB, dy, input, P[lora_a].compute, P[lora_b].compute, lora);
  if (dx.defined()) ops::dropout_backward(dx, dinput, pass.lora_dropout, seed, InputGrad::Accumulate, pass.mask_offset(x));
}

Norm Norm::add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer) {
  Norm n;
  n.kind = c.norm;
  n.eps = c.norm_eps;
  n.dim = c.emb_dim;
  n.weight = P.add(name + ".weight", {c.emb_dim}, ParamKind::Norm, layer);
  if (c.norm == NormKind::LayerNorm && c.norm_bias) n.bias = P.add(name + ".bias", {c.emb_dim}, ParamKind::Norm, layer);
  return n;
}

void Norm::forward(const ParameterSet& P, const NormActs& a, const Tensor& x) const {
  if (kind == NormKind::RMSNorm)
    ops::rmsnorm_forward(a.out, a.rstd, x, value(P, weight), eps);
  else
    ops::layernorm_forward(a.out, a.mean, a.rstd, x, value(P, weight), value(P, bias), eps);
}

void Norm::backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, const NormActs& a,
                    InputGrad mode) const {
  if (kind == NormKind::RMSNorm)
    ops::rmsnorm_backward(dx, grad(P, weight), dy, x, value(P, weight), a.rstd, mode);
  else
    ops::layernorm_backward(dx, grad(P, weight), grad(P, bias), dy, x, value(P, weight), a.mean, a.rstd, mode);
}

// The dropout sites of a layer's Linears (0 to 2 are the block's: attention, and its two branches).
constexpr int kQkvSite = 3, kAttnProjSite = 4, kFcSite = 5, kMlpProjSite = 6;

Attention Attention::add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer,
                         const AdapterPlan& plan) {
  Attention a;
  a.qkv = Linear::add(P, name + ".qkv", c.emb_dim, c.qkv_width(), c.qkv_bias, {layer, kQkvSite}, plan);
  a.shape = ops::AttentionShape{c.n_heads, c.kv_heads(), c.head_size()};
  if (c.qk_norm) {
    a.q_norm = P.add(name + ".q_norm.weight", {c.head_size()}, ParamKind::Norm, layer);
    a.k_norm = P.add(name + ".k_norm.weight", {c.head_size()}, ParamKind::Norm, layer);
    a.qk_norm_eps = c.norm_eps;
  }
  a.proj = Linear::add(P, name + ".proj", c.q_width(), c.emb_dim, c.out_bias, {layer, kAttnProjSite}, plan);
  a.rope = c.positions == PositionKind::Rotary;
  return a;
}

Mlp Mlp::add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer, const AdapterPlan& plan) {
  Mlp m;
  m.kind = c.mlp;
  const int64_t M = c.mlp_width();
  m.fc = Linear::add(P, name + ".fc", c.emb_dim, c.mlp == MlpKind::SwiGLU ? 2 * M : M, c.mlp_bias, {layer, kFcSite},
                     plan);
  m.proj = Linear::add(P, name + ".proj", M, c.emb_dim, c.mlp_bias, {layer, kMlpProjSite}, plan);
  return m;
}

// The mask offset of the attention probabilities [B, NH, T, T] of a pass's sequences.
uint64_t Attention::probabilities_offset(const Pass& pass, const AttentionActs& a) const {
  const auto T = static_cast<uint64_t>(a.qkv.dim(1));
  return static_cast<uint64_t>(pass.seq_offset) * static_cast<uint64_t>(shape.n_heads) * T * T;
}

void Attention::attend(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass,
                       int64_t layer) const {
  if (q_norm >= 0) {  // Qwen3: per-head norms after the projection, before the rotation
    qkv.forward(P, a.qkv_raw, x, pass);
    ops::qk_norm_forward(a.qkv, a.qk_rstd, a.qkv_raw, value(P, q_norm), value(P, k_norm), shape, qk_norm_eps);
  } else {
    qkv.forward(P, a.qkv, x, pass);
  }
  if (rope) ops::rope_forward(a.qkv, pass.rope_cos, pass.rope_sin, shape);
  if (pass.kind == Pass::Kind::Decode) {
    std::vector<ops::DecodeSequence> seqs;
    seqs.reserve(pass.decode.size());
    for (const DecodeSlot& s : pass.decode)
      seqs.push_back({s.cache->k[static_cast<size_t>(layer)], s.cache->v[static_cast<size_t>(layer)], s.past, s.rows});
    ops::attention_decode_forward(a.y, a.qkv, seqs, shape);
  } else {
    ops::attention_forward(a.y, a.stats, a.qkv, shape, pass.dropout_p, pass.site_seed(layer, 0),
                           probabilities_offset(pass, a));
  }
}

void Attention::forward(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass,
                        int64_t layer) const {
  attend(P, a, x, pass, layer);
  proj.forward(P, a.proj, a.y, pass);
}

void Attention::attend_backward(ParameterSet& P, const Tensor& dx, const Tensor& x, const AttentionActs& a,
                                const BlockGrads& g, const Pass& pass, int64_t layer) const {
  ops::attention_backward(g.dqkv, g.dy, a.qkv, a.stats, shape, pass.dropout_p, pass.site_seed(layer, 0),
                          InputGrad::Write, probabilities_offset(pass, a));
  if (rope) ops::rope_backward(g.dqkv, pass.rope_cos, pass.rope_sin, shape);  // in place
  if (q_norm >= 0)  // in place: d(qkv_raw) replaces d(qkv)
    ops::qk_norm_backward(g.dqkv, grad(P, q_norm), grad(P, k_norm), g.dqkv, a.qkv_raw, value(P, q_norm),
                          value(P, k_norm), a.qk_rstd, shape, InputGrad::Write);
  qkv.backward(P, dx, g.dqkv, x, InputGrad::Write, pass);
}

void Attention::backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x,
                         const AttentionActs& a, const BlockGrads& g, const Pass& pass, int64_t layer) const {
  proj.backward(P, g.dy, dproj, a.y, InputGrad::Write, pass);
  attend_backward(P, dx, x, a, g, pass, layer);
}

void Mlp::forward(const ParameterSet& P, const MlpActs& a, const Tensor& x, const Pass& pass) const {
  fc.forward(P, a.hidden, x, pass);
  if (kind == MlpKind::SwiGLU)
    ops::swiglu_forward(a.act, a.hidden);
  else
    ops::gelu_forward(a.act, a.hidden);
  proj.forward(P, a.proj, a.act, pass);
}

void Mlp::backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x, const MlpActs& a,
                   const BlockGrads& g, const Pass& pass) const {
  if (kind == MlpKind::SwiGLU) {
    proj.backward(P, g.dact, dproj, a.act, InputGrad::Write, pass);
    ops::swiglu_backward(g.dhidden, a.hidden, g.dact, InputGrad::Write);
  } else {
    proj.backward(P, g.dhidden, dproj, a.act, InputGrad::Write, pass);
    ops::gelu_backward(g.dhidden, a.hidden, g.dhidden, InputGrad::Write);  // in place
  }
  fc.backward(P, dx, g.dhidden, x, InputGrad::Write, pass);
}

}  // namespace gptrain
