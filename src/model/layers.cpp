#include "model/layers.h"

#include <vector>

#include "util/error.h"
#include "util/rng.h"

namespace gptrain {

namespace {
Tensor value(const ParameterSet& P, int index) { return index >= 0 ? P[index].value : Tensor(); }
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

Linear Linear::add(ParameterSet& P, const std::string& name, int64_t in, int64_t out, bool bias, int64_t layer) {
  Linear l;
  l.in = in;
  l.out = out;
  l.weight = P.add(name + ".weight", {out, in}, ParamKind::LinearWeight, layer, in);
  if (bias) l.bias = P.add(name + ".bias", {out}, ParamKind::LinearBias, layer, in);
  return l;
}

void Linear::forward(const ParameterSet& P, const Tensor& y, const Tensor& x, const Pass& pass) const {
  ops::matmul_forward(y, x, value(P, weight), value(P, bias), pass.batch_invariant);
}

void Linear::backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, InputGrad mode) const {
  ops::matmul_backward(dx, grad(P, weight), grad(P, bias), dy, x, value(P, weight), mode);
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

Attention Attention::add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer) {
  Attention a;
  a.qkv = Linear::add(P, name + ".qkv", c.emb_dim, c.qkv_width(), c.qkv_bias, layer);
  a.shape = ops::AttentionShape{c.n_heads, c.kv_heads(), c.head_size()};
  if (c.qk_norm) {
    a.q_norm = P.add(name + ".q_norm.weight", {c.head_size()}, ParamKind::Norm, layer);
    a.k_norm = P.add(name + ".k_norm.weight", {c.head_size()}, ParamKind::Norm, layer);
    a.qk_norm_eps = c.norm_eps;
  }
  a.proj = Linear::add(P, name + ".proj", c.q_width(), c.emb_dim, c.out_bias, layer);
  a.rope = c.positions == PositionKind::Rotary;
  return a;
}

Mlp Mlp::add(ParameterSet& P, const std::string& name, const ModelConfig& c, int64_t layer) {
  Mlp m;
  m.kind = c.mlp;
  const int64_t M = c.mlp_width();
  m.fc = Linear::add(P, name + ".fc", c.emb_dim, c.mlp == MlpKind::SwiGLU ? 2 * M : M, c.mlp_bias, layer);
  m.proj = Linear::add(P, name + ".proj", M, c.emb_dim, c.mlp_bias, layer);
  return m;
}

void Attention::forward(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass,
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
    ops::attention_forward(a.y, a.stats, a.qkv, shape, pass.dropout_p, pass.site_seed(layer, 0));
  }
  proj.forward(P, a.proj, a.y, pass);
}

void Attention::backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x,
                         const AttentionActs& a, const BlockGrads& g, const Pass& pass, int64_t layer) const {
  proj.backward(P, g.dy, dproj, a.y, InputGrad::Write);
  ops::attention_backward(g.dqkv, g.dy, a.qkv, a.stats, shape, pass.dropout_p, pass.site_seed(layer, 0),
                          InputGrad::Write);
  if (rope) ops::rope_backward(g.dqkv, pass.rope_cos, pass.rope_sin, shape);  // in place
  if (q_norm >= 0)  // in place: d(qkv_raw) replaces d(qkv)
    ops::qk_norm_backward(g.dqkv, grad(P, q_norm), grad(P, k_norm), g.dqkv, a.qkv_raw, value(P, q_norm),
                          value(P, k_norm), a.qk_rstd, shape, InputGrad::Write);
  qkv.backward(P, dx, g.dqkv, x, InputGrad::Write);
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
                   const BlockGrads& g) const {
  if (kind == MlpKind::SwiGLU) {
    proj.backward(P, g.dact, dproj, a.act, InputGrad::Write);
    ops::swiglu_backward(g.dhidden, a.hidden, g.dact, InputGrad::Write);
  } else {
    proj.backward(P, g.dhidden, dproj, a.act, InputGrad::Write);
    ops::gelu_backward(g.dhidden, a.hidden, g.dhidden, InputGrad::Write);  // in place
  }
  fc.backward(P, dx, g.dhidden, x, InputGrad::Write);
}

}  // namespace gptrain
