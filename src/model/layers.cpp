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
  GPTRAIN_CHECK(kind == NormKind::LayerNorm, "RMSNorm has no kernel in this build");
  ops::layernorm_forward(a.out, a.mean, a.rstd, x, value(P, weight), value(P, bias), eps);
}

void Norm::backward(ParameterSet& P, const Tensor& dx, const Tensor& dy, const Tensor& x, const NormActs& a,
                    InputGrad mode) const {
  GPTRAIN_CHECK(kind == NormKind::LayerNorm, "RMSNorm has no kernel in this build");
  ops::layernorm_backward(dx, grad(P, weight), grad(P, bias), dy, x, value(P, weight), a.mean, a.rstd, mode);
}

void Attention::forward(const ParameterSet& P, const AttentionActs& a, const Tensor& x, const Pass& pass,
                        int64_t layer) const {
  qkv.forward(P, a.qkv, x, pass);
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
  qkv.backward(P, dx, g.dqkv, x, InputGrad::Write);
}

void Mlp::forward(const ParameterSet& P, const MlpActs& a, const Tensor& x, const Pass& pass) const {
  GPTRAIN_CHECK(kind == MlpKind::GeluTanh, "the SwiGLU MLP has no kernel in this build");
  fc.forward(P, a.hidden, x, pass);
  ops::gelu_forward(a.act, a.hidden);
  proj.forward(P, a.proj, a.act, pass);
}

void Mlp::backward(ParameterSet& P, const Tensor& dx, const Tensor& dproj, const Tensor& x, const MlpActs& a,
                   const BlockGrads& g) const {
  proj.backward(P, g.dhidden, dproj, a.act, InputGrad::Write);
  ops::gelu_backward(g.dhidden, a.hidden, g.dhidden, InputGrad::Write);  // in place
  fc.backward(P, dx, g.dhidden, x, InputGrad::Write);
}

}  // namespace gptrain
