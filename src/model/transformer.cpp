#include "model/transformer.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "kernels/ops.h"
#include "util/error.h"
#include "util/rng.h"

namespace gptrain {

namespace {

// FNV-1a of a parameter's name: its random stream, so init does not depend on creation order.
uint64_t name_stream(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

kernels::PoolMode pool_mode(Pooling p) {
  switch (p) {
    case Pooling::Last: return kernels::PoolMode::Last;
    case Pooling::First: return kernels::PoolMode::First;
    case Pooling::Mean: return kernels::PoolMode::Mean;
  }
  return kernels::PoolMode::Last;
}

}  // namespace

// The parameter layout, in the order of the flat buffers (which fixes checkpoints' moment layout
// and the order of the gradient norm's sum): tok_emb, pos_emb, per block ln1, attn.qkv,
// attn.proj, ln2, mlp.fc, mlp.proj, then ln_f and the head.
struct Layout {
  Embedding embedding;
  struct BlockUnits {
    Norm ln1;
    Attention attn;
    Norm ln2;
    Mlp mlp;
  };
  std::vector<BlockUnits> blocks;
  Norm ln_f;
  Linear head;
};

namespace {

// The head's LoRA dropout site (above the last block, no other dropout there).
constexpr int kHeadSite = 3;

Layout make_layout(const ModelConfig& c, const AdapterPlan& plan, ParameterSet& P) {
  Layout L;
  const int64_t C = c.emb_dim, top = c.n_layers;
  L.embedding.dim = C;
  L.embedding.tok = P.add("tok_emb.weight", {c.vocab_size, C}, ParamKind::Embedding, kEmbeddingLayer);
  if (c.learned_positions())
    L.embedding.pos = P.add("pos_emb.weight", {c.context_length, C}, ParamKind::Embedding, kEmbeddingLayer);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    Layout::BlockUnits u;
    u.ln1 = Norm::add(P, b + "ln1", c, l);
    u.attn = Attention::add(P, b + "attn", c, l, plan);
    u.ln2 = Norm::add(P, b + "ln2", c, l);
    u.mlp = Mlp::add(P, b + "mlp", c, l, plan);
    L.blocks.push_back(u);
  }
  L.ln_f = Norm::add(P, "ln_f", c, top);
  if (c.head == HeadType::Classifier) {
    L.head = Linear::add(P, "head", C, c.n_classes, /*bias=*/true, {top, kHeadSite}, plan);
  } else if (c.tie_weights) {
    L.head.weight = L.embedding.tok;
    L.head.in = C;
    L.head.out = c.vocab_size;
    L.head.site = {top, kHeadSite};
    L.head.add_adapter(P, "head", plan);
  } else {
    L.head = Linear::add(P, "head", C, c.vocab_size, /*bias=*/false, {top, kHeadSite}, plan);
  }
  // A plan for another model (a Linear it names that this one lacks) must not pass silently.
  for (const auto& [name, adapter] : plan.linears)
    if (!P.find(name + ".lora_A")) fail("LoRA adapter for '{}': the model has no such Linear layer", name);
  return L;
}

// Rotary inverse frequencies as transformers computes them in float32
// (modeling_rope_utils: default, and llama3's wavelength-dependent rescaling), or exactly in double
// for a double model.
template <class F>
std::vector<F> rope_inv_freq(const ModelConfig& c) {
  const int64_t dim = c.head_size();
  const RopeConfig& r = c.rope;
  std::vector<F> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    const F e = static_cast<F>(2 * i) / static_cast<F>(dim);
    inv[static_cast<size_t>(i)] = F(1) / std::pow(static_cast<F>(r.theta), e);
  }
  if (r.scaling == "llama3") {
    const F factor = static_cast<F>(r.factor), low = static_cast<F>(r.low_freq_factor),
            high = static_cast<F>(r.high_freq_factor), old = static_cast<F>(r.original_context);
    const F low_wavelen = old / low, high_wavelen = old / high;
    for (F& f : inv) {
      const F wavelen = static_cast<F>(2 * M_PI) / f;
      F scaled = wavelen > low_wavelen ? f / factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const F smooth = (old / wavelen - low) / (high - low);
        scaled = (F(1) - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

}  // namespace

ParameterSet parameter_layout(const ModelConfig& config, const AdapterPlan& adapters) {
  config.validate();
  ParameterSet P;
  make_layout(config, adapters, P);
  return P;
}

ParameterCounts count_parameters(const ModelConfig& config) {
  const ParameterSet P = parameter_layout(config, {});
  const int64_t total = P.numel();
  int64_t head = 0;
  if (const Parameter* h = P.find("head.weight")) head += h->value.numel();
  if (const Parameter* h = P.find("head.bias")) head += h->value.numel();
  return {total, total - head, head};
}

Transformer::Transformer(const ModelConfig& config, std::optional<uint64_t> init_seed, DType dtype,
                         const AdapterPlan& adapters)
    : config_(config), adapters_(adapters) {
  config_.validate();
  GPTRAIN_CHECK(dtype == DType::F32 || dtype == DType::F64, "a model computes in f32 or f64, not {}", dtype_name(dtype));
  Layout L = make_layout(config_, adapters_, params_);
  embedding_ = L.embedding;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const Layout::BlockUnits& u = L.blocks[static_cast<size_t>(l)];
    blocks_.push_back(Block{u.ln1, u.attn, u.ln2, u.mlp, l});
  }
  ln_f_ = L.ln_f;
  head_ = L.head;
  params_.allocate(dtype);
  if (init_seed) init(*init_seed);  // gradients come on first need (ParameterSet::ensure_grads)
  if (config_.positions == PositionKind::Rotary)
    rope_inv_freq_ = dtype == DType::F64 ? Tensor::from_doubles({config_.head_size() / 2}, rope_inv_freq<double>(config_))
                                         : Tensor::from_vector({config_.head_size() / 2}, rope_inv_freq<float>(config_));
}

namespace {

// The initialisation of one parameter, element i from counter i of its stream: PyTorch's defaults
// when normal_std is 0 (the book's GPTModel), else transformers' _init_weights for Llama and Qwen3
// (weights and embeddings N(0, initializer_range), biases 0). The latter because these families tie
// the output head to the embedding: N(0, 1) embeddings give logits of size sqrt(emb_dim) and a first
// loss near 64 instead of ln(vocab) = 12.
template <class T>
void init_values(T* x, const Parameter& p, const CounterRng& rng, double normal_std) {
  const int64_t n = p.value.numel();
  if (normal_std > 0 && p.kind != ParamKind::Norm && !p.is_adapter()) {
    for (int64_t i = 0; i < n; ++i)
      x[i] = p.kind == ParamKind::LinearBias ? T(0) : static_cast<T>(normal_std * rng.normal(static_cast<uint64_t>(i)));
    return;
  }
  switch (p.kind) {
    case ParamKind::Embedding:  // nn.Embedding: N(0, 1)
      for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(rng.normal(static_cast<uint64_t>(i)));
      break;
    case ParamKind::Norm:  // norms: scale 1, shift 0
      std::fill(x, x + n, static_cast<T>(p.name.ends_with(".weight") ? 1.0 : 0.0));
      break;
    case ParamKind::LoraB:  // the book and PEFT: zero, so an adapted model starts as its base
      std::fill(x, x + n, T(0));
      break;
    case ParamKind::LinearWeight:  // nn.Linear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
    case ParamKind::LinearBias:    // and its bias: U(+-1/sqrt(fan_in))
    case ParamKind::LoraA: {       // the book's A [in, rank]: kaiming_uniform(a=sqrt(5)), fan_in = rank
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
      for (int64_t i = 0; i < n; ++i)
        x[i] = static_cast<T>((2.0 * rng.uniform_double(static_cast<uint64_t>(i)) - 1.0) * bound);
      break;
    }
  }
}

}  // namespace

void Transformer::init(uint64_t seed) { init_where(seed, false); }

void Transformer::init_adapters(uint64_t seed) { init_where(seed, true); }

void Transformer::init_where(uint64_t seed, bool adapters_only) {
  // initializer_range of Llama 3's and Qwen3's config.json
  const double normal_std = config_.family == "llama" || config_.family == "qwen3" ? 0.02 : 0.0;
  for (Parameter& p : params_.all()) {
    if (adapters_only && !p.is_adapter()) continue;
    const CounterRng rng(seed, name_stream(p.name));
    if (p.value.dtype() == DType::F64)
      init_values(p.value.data<double>(), p, rng, normal_std);
    else
      init_values(p.value.data<float>(), p, rng, normal_std);
  }
  params_.refresh_compute();
}

void Transformer::set_decode_weights(DType dtype) {
  if (dtype == decode_dtype_) return;
  if (dtype != DType::F16 && dtype != DType::BF16)
    fail("decode weights: {} is not f16 or bf16", dtype_name(dtype));
  if (decode_dtype_ != DType::F32)
    fail("decode weights are {} already; a model is rounded once", dtype_name(decode_dtype_));
  if (params_.has_compute_copy())
    fail("decode weights: this model computes in {}; they round an f32 model", dtype_name(params_.compute_dtype()));
  if (params_[0].value.dtype() != DType::F32) fail("decode weights need an f32 model, this one is {}",
                                                   dtype_name(params_[0].value.dtype()));
  const bool bf16 = dtype == DType::BF16;
  std::vector<int> weights;
  for (const Block& b : blocks_)
    for (const Linear* l : {&b.attn.qkv, &b.attn.proj, &b.mlp.fc, &b.mlp.proj}) weights.push_back(l->weight);
  weights.push_back(head_.weight);  // a tied head's is the token embedding: rounded with it
  half_weights_.assign(static_cast<size_t>(params_.size()), Tensor());
  for (const int w : weights) {
    Tensor& half = half_weights_[static_cast<size_t>(w)];
    if (half.defined()) continue;
    const Tensor& value = params_[w].value;
    if (value.device() != Device::CPU) fail("set_decode_weights: call it before to_device");
    half = Tensor::empty(value.shape(), dtype);
    float* v = value.data<float>();
    auto* h = static_cast<uint16_t*>(half.raw());
    const int64_t n = value.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      h[i] = bf16 ? float_to_bf16(v[i]) : float_to_f16(v[i]);
      v[i] = bf16 ? bf16_to_float(h[i]) : f16_to_float(h[i]);
    }
  }
  decode_dtype_ = dtype;
}

void Transformer::merge_adapters() {
  std::vector<const Linear*> linears;
  for (const Block& b : blocks_)
    for (const Linear* l : {&b.attn.qkv, &b.attn.proj, &b.mlp.fc, &b.mlp.proj}) linears.push_back(l);
  linears.push_back(&head_);
  for (const Linear* l : linears) {
    if (l->lora_a < 0) continue;
    if (l == &head_ && config_.head == HeadType::LanguageModel && config_.tie_weights)
      fail("cannot merge the adapter of a tied output head: its weight is the token embedding, which merging would "
           "change too; apply the adapter with --adapter instead");
    ops::lora_merge(params_[l->weight].value, params_[l->lora_a].value, params_[l->lora_b].value, l->lora);
    params_[l->lora_b].value.zero();
  }
  params_.refresh_compute();
}

void Transformer::set_compute_dtype(DType dtype) {
  if (dtype != DType::F32 && decode_dtype_ != DType::F32)
    fail("a model with {} decode weights computes in f32", dtype_name(decode_dtype_));
  params_.set_compute_dtype(dtype);
}

void Transformer::set_trainable_all(bool trainable) {
  for (Parameter& p : params_.all()) p.trainable = trainable;
}

void Transformer::set_trainable_prefix(const std::string& prefix, bool trainable) {
  bool any = false;
  for (Parameter& p : params_.all())
    if (p.name.starts_with(prefix)) {
      p.trainable = trainable;
      any = true;
    }
  if (!any) fail("no parameter of the model starts with '{}'", prefix);
}

Pass Transformer::pass_for(const ForwardOptions& options) const {
  Pass pass;
  pass.kind = options.training ? Pass::Kind::Train : Pass::Kind::Eval;
  pass.dropout_p = options.training ? config_.drop_rate : 0.0f;
  pass.lora_dropout = options.training ? adapters_.dropout : 0.0f;
  pass.dropout_seed = options.dropout_seed;
  pass.seq_offset = options.seq_offset;
  pass.without_adapters = options.without_adapters;
  return pass;
}

// ---------------------------------------------------------------------------------------------
// The block

void Transformer::block_forward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& out,
                                const Pass& pass) const {
  b.ln1.forward(params_, a.ln1, x);
  b.attn.forward(params_, a.attn, a.ln1.out, pass, b.layer);
  ops::dropout_forward(a.attn.proj, a.attn.proj, pass.dropout_p, pass.site_seed(b.layer, 1), pass.mask_offset(x));
  ops::residual_forward(a.res2, x, a.attn.proj);
  b.ln2.forward(params_, a.ln2, a.res2);
  b.mlp.forward(params_, a.mlp, a.ln2.out, pass);
  ops::dropout_forward(a.mlp.proj, a.mlp.proj, pass.dropout_p, pass.site_seed(b.layer, 2), pass.mask_offset(x));
  ops::residual_forward(out, a.res2, a.mlp.proj);
}

void Transformer::tail_forward(const Block& b, const BlockActs& a, const Tensor& x, const PooledTail& t,
                               const Pass& pass) const {
  const int64_t B = t.x.dim(0), C = config_.emb_dim;
  const kernels::PoolMode mode = pool_mode(config_.pooling);
  b.ln1.forward(params_, a.ln1, x);
  b.attn.attend(params_, a.attn, a.ln1.out, pass, b.layer);
  ops::pool_forward(t.y.reshape({B, a.attn.y.dim(2)}), a.attn.y, mode);
  ops::pool_forward(t.x.reshape({B, C}), x, mode);
  b.attn.proj.forward(params_, t.proj, t.y, pass);
  ops::residual_forward(t.res2, t.x, t.proj);
  b.ln2.forward(params_, t.ln2, t.res2);
  b.mlp.forward(params_, t.mlp, t.ln2.out, pass);
  ops::residual_forward(t.res3, t.res2, t.mlp.proj);
}

void Transformer::tail_backward(const Block& b, const BlockActs& a, const Tensor& x, const PooledTail& t,
                                const Tensor& dres, bool need_dx, const BlockGrads& g, const Pass& pass) {
  const int64_t B = t.x.dim(0), T = x.dim(1), C = config_.emb_dim;
  const kernels::PoolMode mode = pool_mode(config_.pooling);
  // res3 = res2 + mlp(ln2(res2)) on the pooled rows: t.dres flows on and gathers ln2's gradient.
  const BlockGrads tail_grads{Tensor(), t.dnorm, Tensor(), Tensor(), t.dhidden, t.dact};
  b.mlp.backward(params_, t.dnorm, t.dres, t.ln2.out, t.mlp, tail_grads, pass);
  b.ln2.backward(params_, t.dres, t.dnorm, t.res2, t.ln2, InputGrad::Accumulate);
  // res2 = x + proj(y): the pooled rows' gradient into the attention, zero on the others.
  b.attn.proj.backward(params_, t.dy, t.dres, t.y, InputGrad::Write, pass);
  ops::pool_backward(g.dy.reshape({B, T, a.attn.y.dim(2)}), t.dy.reshape({B, a.attn.y.dim(2)}), mode,
                     InputGrad::Write);
  if (need_dx) ops::pool_backward(dres, t.dres.reshape({B, C}), mode, InputGrad::Write);
  attend_ln1_backward(b, a, x, dres, need_dx, g, pass);
}

void Transformer::attend_ln1_backward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& dres,
                                      bool need_dx, const BlockGrads& g, const Pass& pass) {
  // The lowest block (LoRA, --trainable last-N) wants no input gradient: unless its ln1 trains,
  // nothing reads d(ln1 out), so the qkv product's input gradient is skipped.
  const bool ln1_trains = (b.ln1.weight >= 0 && params_[b.ln1.weight].trainable) ||
                          (b.ln1.bias >= 0 && params_[b.ln1.bias].trainable);
  if (!need_dx && !ln1_trains) {
    b.attn.attend_backward(params_, Tensor(), a.ln1.out, a.attn, g, pass, b.layer);
    return;
  }
  b.attn.attend_backward(params_, g.dnorm, a.ln1.out, a.attn, g, pass, b.layer);
  b.ln1.backward(params_, need_dx ? dres : Tensor(), g.dnorm, x, a.ln1, InputGrad::Accumulate);
}

void Transformer::block_backward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& dres,
                                 bool need_dx, const BlockGrads& g, const Pass& pass) {
  // out = res2 + dropout(mlp): d(res2) = dres (flows on unchanged), the branch gets dropout's
  // gradient (without dropout it is dres itself: no copy).
  const Tensor dmlp = pass.dropout_p > 0 ? g.dbranch : dres;
  ops::dropout_backward(dmlp, dres, pass.dropout_p, pass.site_seed(b.layer, 2), InputGrad::Write,
                        pass.mask_offset(x));
  b.mlp.backward(params_, g.dnorm, dmlp, a.ln2.out, a.mlp, g, pass);
  b.ln2.backward(params_, dres, g.dnorm, a.res2, a.ln2, InputGrad::Accumulate);
  // res2 = x + dropout(attention)
  const Tensor dattn = pass.dropout_p > 0 ? g.dbranch : dres;
  ops::dropout_backward(dattn, dres, pass.dropout_p, pass.site_seed(b.layer, 1), InputGrad::Write,
                        pass.mask_offset(x));
  b.attn.proj.backward(params_, g.dy, dattn, a.attn.y, InputGrad::Write, pass);
  attend_ln1_backward(b, a, x, dres, need_dx, g, pass);
}

// ---------------------------------------------------------------------------------------------
// Batch passes

namespace {

void plan_norm(const ModelConfig& c, DType t, Arena& arena, NormActs& a, int64_t B, int64_t T) {
  a.out = arena.alloc({B, T, c.emb_dim}, t);
  a.mean = c.norm == NormKind::LayerNorm ? arena.alloc({B * T}, stats_dtype(t)) : Tensor();
  a.rstd = arena.alloc({B * T}, stats_dtype(t));
}

int64_t mlp_hidden(const ModelConfig& c) { return c.mlp == MlpKind::SwiGLU ? 2 * c.mlp_width() : c.mlp_width(); }

void plan_mlp(const ModelConfig& c, DType t, Arena& arena, MlpActs& a, int64_t B, int64_t T) {
  a.hidden = arena.alloc({B, T, mlp_hidden(c)}, t);
  a.act = arena.alloc({B, T, c.mlp_width()}, t);
  a.proj = arena.alloc({B, T, c.emb_dim}, t);
}

// attention_only: the block runs its output projection and MLP elsewhere (PooledTail).
void plan_block(const ModelConfig& c, DType t, Arena& arena, BlockActs& a, int64_t B, int64_t T, bool stats,
                bool attention_only = false) {
  const int64_t C = c.emb_dim;
  plan_norm(c, t, arena, a.ln1, B, T);
  if (c.qk_norm) {
    a.attn.qkv_raw = arena.alloc({B, T, c.qkv_width()}, t);
    a.attn.qk_rstd = arena.alloc({B, T, c.n_heads + c.kv_heads()}, stats_dtype(t));
  } else {
    a.attn.qkv_raw = a.attn.qk_rstd = Tensor();
  }
  a.attn.qkv = arena.alloc({B, T, c.qkv_width()}, t);
  a.attn.stats = stats ? arena.alloc({B, c.n_heads, T, 2}, stats_dtype(t)) : Tensor();
  a.attn.y = arena.alloc({B, T, c.q_width()}, t);
  if (attention_only) return;
  a.attn.proj = arena.alloc({B, T, C}, t);
  a.res2 = arena.alloc({B, T, C}, t);
  plan_norm(c, t, arena, a.ln2, B, T);
  plan_mlp(c, t, arena, a.mlp, B, T);
  a.res3 = arena.alloc({B, T, C}, t);
}

// The widest input of an adapted Linear (the LoRA dropout scratch's row width).
int64_t widest_adapted_input(const ModelConfig& c, const AdapterPlan& plan) {
  int64_t widest = 0;
  for (const LinearUnit& u : linear_units(c))
    if (plan.find(u.name)) widest = std::max(widest, u.in);
  return widest;
}

void plan_batch(const ModelConfig& c, const AdapterPlan& plan, DType t, BatchWorkspace& ws, Arena& arena, int64_t B,
                int64_t T, bool training) {
  const int64_t C = c.emb_dim, BT = B * T;
  const bool classifier = c.head == HeadType::Classifier;
  ws.tokens = arena.alloc({BT}, DType::I32);
  ws.targets = arena.alloc({classifier ? B : BT}, DType::I32);
  ws.encoded = arena.alloc({B, T, C}, t);
  // A classifier reading one row per sequence runs its last block after the attention, and the
  // final norm, on those rows (PooledTail), unless dropout is on while training.
  PooledTail& tail = ws.tail;
  tail = PooledTail{};
  tail.on = classifier && c.pooling != Pooling::Mean && c.n_layers > 0 &&
            !(training && (c.drop_rate > 0 || plan.dropout > 0));
  const int64_t stored = training ? c.n_layers : std::min<int64_t>(c.n_layers, 1);
  ws.blocks.assign(static_cast<size_t>(c.n_layers), BlockActs{});
  for (int64_t l = 0; l < stored; ++l)
    plan_block(c, t, arena, ws.blocks[static_cast<size_t>(l)], B, T, /*stats=*/true,
               /*attention_only=*/training && tail.on && l == c.n_layers - 1);
  // Evaluation: every block reuses block 0's buffers, except the residual stream, which alternates
  // between res3 of block 0 and encoded (each block reads its input before writing its output).
  for (int64_t l = stored; l < c.n_layers; ++l) ws.blocks[static_cast<size_t>(l)] = ws.blocks[0];
  if (tail.on) {
    for (Tensor* x : {&tail.x, &tail.proj, &tail.res2, &tail.res3}) *x = arena.alloc({B, 1, C}, t);
    tail.y = arena.alloc({B, 1, c.q_width()}, t);
    plan_norm(c, t, arena, tail.ln2, B, 1);
    plan_norm(c, t, arena, tail.lnf, B, 1);
    plan_mlp(c, t, arena, tail.mlp, B, 1);
    if (training) {
      for (Tensor* x : {&tail.dres, &tail.dnorm}) *x = arena.alloc({B, 1, C}, t);
      tail.dy = arena.alloc({B, 1, c.q_width()}, t);
      tail.dhidden = arena.alloc({B, 1, mlp_hidden(c)}, t);
      tail.dact = c.mlp == MlpKind::SwiGLU ? arena.alloc({B, 1, c.mlp_width()}, t) : Tensor();
    }
    ws.lnf = NormActs{};
  } else {
    plan_norm(c, t, arena, ws.lnf, B, T);
  }
  if (c.positions == PositionKind::Rotary) {
    ws.rope_cos = arena.alloc({BT, c.head_size() / 2}, stats_dtype(t));
    ws.rope_sin = arena.alloc({BT, c.head_size() / 2}, stats_dtype(t));
  } else {
    ws.rope_cos = ws.rope_sin = Tensor();
  }
  ws.pooled = arena.alloc({B, C}, t);
  ws.logits = classifier ? arena.alloc({B, c.n_classes}, t) : arena.alloc({B, T, c.vocab_size}, t);
  ws.losses = arena.alloc({classifier ? B : BT}, stats_dtype(t));
  ws.lse = arena.alloc({classifier ? B : BT}, stats_dtype(t));
  if (training) {
    ws.dresidual = arena.alloc({B, T, C}, t);
    ws.dlnf = tail.on ? Tensor() : arena.alloc({B, T, C}, t);
    ws.dpooled = arena.alloc({B, C}, t);
    ws.grads.dbranch = arena.alloc({B, T, C}, t);
    ws.grads.dnorm = arena.alloc({B, T, C}, t);
    ws.grads.dy = arena.alloc({B, T, c.q_width()}, t);
    ws.grads.dqkv = arena.alloc({B, T, c.qkv_width()}, t);
    ws.grads.dhidden = arena.alloc({B, T, mlp_hidden(c)}, t);
    ws.grads.dact = c.mlp == MlpKind::SwiGLU ? arena.alloc({B, T, c.mlp_width()}, t) : Tensor();
  } else {
    ws.dresidual = ws.dlnf = ws.dpooled = Tensor();
    ws.grads = BlockGrads{};
  }
  if (training && plan.dropout > 0) {
    const int64_t widest = widest_adapted_input(c, plan);
    ws.lora_x = arena.alloc({BT * widest}, t);
    ws.lora_dx = arena.alloc({BT * widest}, t);
  } else {
    ws.lora_x = ws.lora_dx = Tensor();
  }
}

}  // namespace

size_t activation_bytes(const ModelConfig& config, int64_t B, int64_t T, bool training, DType dtype,
                        const AdapterPlan& adapters) {
  BatchWorkspace ws;
  Arena measure = Arena::measuring();
  plan_batch(config.resolved(), adapters, dtype, ws, measure, B, T, training);
  return measure.used();
}

void Transformer::to_device(Device device) {
  params_.move_to(device);
  for (Tensor& half : half_weights_)  // rounded on the host (set_decode_weights), then moved
    if (half.defined()) half = half.to(device);
  if (rope_inv_freq_.defined()) rope_inv_freq_ = rope_inv_freq_.to(device);
}

namespace {

// Host ids into a workspace tensor: written in place on the CPU, else checked against `limit`
// here (the ops check only host ids) and copied in.
void put_ids(const Tensor& dst, std::span<const int32_t> ids, int64_t limit, const char* what) {
  if (dst.device() == Device::CPU) {
    std::copy(ids.begin(), ids.end(), dst.data<int32_t>());
    return;
  }
  for (const int32_t id : ids)
    if (id != -100 && (id < 0 || id >= limit)) fail("{} id {} is out of range for {}", what, id, limit);
  GPTRAIN_CHECK(dst.dtype() == DType::I32 && static_cast<int64_t>(ids.size()) == dst.numel(), "{} ids: {} for {} places",
                what, ids.size(), dst.numel());
  dst.upload(ids.data());  // without waiting for the device's queued work (the previous step's)
}

// A workspace's arena on the model's device (a new one, so the next pass plans it again).
template <class Workspace>
bool place_arena(Workspace& ws, Device device) {
  if (ws.arena.device() == device) return false;
  ws.arena = Arena(device);
  return true;
}

}  // namespace

const Tensor& Transformer::forward(BatchWorkspace& ws, std::span<const int32_t> tokens, int64_t B, int64_t T,
                                   const ForwardOptions& options) const {
  if (B <= 0 || T <= 0) fail("forward: empty batch (B={}, T={})", B, T);
  if (T > config_.context_length)
    fail("sequence length {} exceeds the model's context length {}", T, config_.context_length);
  if (static_cast<int64_t>(tokens.size()) != B * T) fail("forward: {} tokens for B={} x T={}", tokens.size(), B, T);
  // Activations are kept for backward whenever we are training.
  const bool keep = options.training;
  const bool moved = place_arena(ws, device());
  if (moved || B != ws.B || T != ws.T || keep != ws.training) {
    Arena measure = Arena::measuring();
    plan_batch(config_, adapters_, dtype(), ws, measure, B, T, keep);
    ws.arena.reserve(measure.used());
    ws.arena.reset();
    plan_batch(config_, adapters_, dtype(), ws, ws.arena, B, T, keep);
    ws.B = B;
    ws.T = T;
    ws.training = keep;
  }
  ws.options = options;
  ws.have_loss = false;
  put_ids(ws.tokens, tokens, config_.vocab_size, "token");
  Pass pass = pass_for(options);
  pass.seqs = B;
  pass.lora_x = ws.lora_x;
  pass.lora_dx = ws.lora_dx;
  if (rope_inv_freq_.defined()) {  // positions 0..T-1 in every sequence
    ops::rope_table(ws.rope_cos, ws.rope_sin, rope_inv_freq_, Tensor(), T);
    pass.rope_cos = ws.rope_cos;
    pass.rope_sin = ws.rope_sin;
  }

  embedding_.forward(params_, ws.encoded, ws.tokens, Tensor());
  ops::dropout_forward(ws.encoded, ws.encoded, pass.dropout_p, pass.site_seed(-1, 0), pass.mask_offset(ws.encoded));
  Tensor residual = ws.encoded;
  for (const Block& b : blocks_) {
    const BlockActs& a = ws.blocks[static_cast<size_t>(b.layer)];
    if (ws.tail.on && b.layer == config_.n_layers - 1) {
      tail_forward(b, a, residual, ws.tail, pass);
      residual = ws.tail.res3;
      break;
    }
    // Evaluation shares block 0's buffers: write the block output where the next block reads it.
    const Tensor& out = keep ? a.res3 : (residual.raw() == ws.encoded.raw() ? a.res3 : ws.encoded);
    block_forward(b, a, residual, out, pass);
    residual = out;
  }
  if (ws.tail.on) {  // the pooled rows alone: the final norm and the head
    ln_f_.forward(params_, ws.tail.lnf, residual);
    head_.forward(params_, ws.logits, ws.tail.lnf.out.reshape({B, config_.emb_dim}), pass);
    ws.output = ws.logits;
    return ws.output;
  }
  ln_f_.forward(params_, ws.lnf, residual);
  if (config_.head == HeadType::Classifier) {
    ops::pool_forward(ws.pooled, ws.lnf.out, pool_mode(config_.pooling));
    head_.forward(params_, ws.logits, ws.pooled, pass);
  } else if (options.last_position_only) {
    ops::pool_forward(ws.pooled, ws.lnf.out, kernels::PoolMode::Last);
    const int64_t V = config_.vocab_size;
    ws.output = ws.logits.reshape({B * T * V}).slice_rows(0, B * V).reshape({B, 1, V});
    head_.forward(params_, ws.output, ws.pooled, pass);
    return ws.output;
  } else {
    head_.forward(params_, ws.logits, ws.lnf.out, pass);
  }
  ws.output = ws.logits;
  return ws.output;
}

double Transformer::forward_loss(BatchWorkspace& ws, std::span<const int32_t> tokens, std::span<const int32_t> targets,
                                 int64_t B, int64_t T, const ForwardOptions& options) const {
  if (options.last_position_only) fail("forward_loss needs the logits of every position");
  forward(ws, tokens, B, T, options);
  const int64_t expected = config_.head == HeadType::Classifier ? B : B * T;
  if (static_cast<int64_t>(targets.size()) != expected)
    fail("forward_loss: {} targets, expected {}", targets.size(), expected);
  put_ids(ws.targets, targets, config_.head == HeadType::Classifier ? config_.n_classes : config_.vocab_size,
          "target");
  const ops::CrossEntropyResult r = ops::cross_entropy_forward(ws.losses, ws.lse, ws.logits, ws.targets);
  ws.targets_counted = r.n_counted;
  ws.have_loss = true;
  return r.loss;
}

void Transformer::backward(BatchWorkspace& ws, float loss_scale) { backward_from_loss(ws, loss_scale, Tensor()); }

void Transformer::backward_rows(BatchWorkspace& ws, std::span<const double> row_weights) {
  if (static_cast<int64_t>(row_weights.size()) != ws.targets.numel())
    fail("backward_rows: {} row weights for {} target rows", row_weights.size(), ws.targets.numel());
  Tensor w = Tensor::empty({static_cast<int64_t>(row_weights.size())}, stats_dtype(dtype()));
  if (w.dtype() == DType::F64)
    std::copy(row_weights.begin(), row_weights.end(), w.data<double>());
  else
    std::transform(row_weights.begin(), row_weights.end(), w.data<float>(),
                   [](double x) { return static_cast<float>(x); });
  backward_from_loss(ws, 1.0f, device() == Device::CPU ? w : w.to(device()));
}

void Transformer::backward_from_loss(BatchWorkspace& ws, float loss_scale, const Tensor& row_dloss) {
  if (!ws.have_loss) fail("backward() needs a preceding forward_loss()");
  if (ws.options.without_adapters && !adapters_.empty())
    fail("backward() of a pass without the adapters: that pass is for evaluation only");
  if (!ws.training) fail("backward() needs a forward pass with training=true (activations were not kept)");
  params_.ensure_grads();
  if (!params_.flat_grads().defined()) return;  // nothing trainable
  Pass pass = pass_for(ws.options);
  pass.seqs = ws.B;
  pass.lora_x = ws.lora_x;
  pass.lora_dx = ws.lora_dx;
  pass.rope_cos = ws.rope_cos;  // the forward's tables
  pass.rope_sin = ws.rope_sin;
  const int64_t L = config_.n_layers;
  // The lowest layer that needs a gradient: -1 embeddings, 0..L-1 blocks, L final norm and head
  // (a tied head is the embedding's weight, so its gradient is wanted at -1 too).
  const int64_t lowest = params_.lowest_trainable_layer();

  // Head and loss: dlogits overwrites the logits.
  if (row_dloss.defined())
    ops::cross_entropy_backward_rows(ws.logits, ws.logits, ws.lse, ws.targets, row_dloss);
  else
    ops::cross_entropy_backward(ws.logits, ws.logits, ws.lse, ws.targets, loss_scale);
  const bool lnf_trainable = (ln_f_.weight >= 0 && params_[ln_f_.weight].trainable) ||
                             (ln_f_.bias >= 0 && params_[ln_f_.bias].trainable);
  const bool need_lnf_grad = lowest < L || lnf_trainable;
  if (ws.tail.on) {
    const PooledTail& t = ws.tail;
    const int64_t B = ws.B, C = config_.emb_dim;
    head_.backward(params_, need_lnf_grad ? ws.dpooled : Tensor(), ws.logits, t.lnf.out.reshape({B, C}),
                   InputGrad::Write, pass);
    if (!need_lnf_grad) return;
    ln_f_.backward(params_, lowest < L ? t.dres : Tensor(), ws.dpooled.reshape({B, 1, C}), t.res3, t.lnf,
                   InputGrad::Write);
    if (lowest >= L) return;
    const Tensor x_last = L > 1 ? ws.blocks[static_cast<size_t>(L - 2)].res3 : ws.encoded;
    tail_backward(blocks_[static_cast<size_t>(L - 1)], ws.blocks[static_cast<size_t>(L - 1)], x_last, t,
                  ws.dresidual, L - 1 > lowest, ws.grads, pass);
    backward_below(ws, L - 2, lowest, pass);
    return;
  }
  if (config_.head == HeadType::Classifier) {
    head_.backward(params_, need_lnf_grad ? ws.dpooled : Tensor(), ws.logits, ws.pooled, InputGrad::Write, pass);
    if (need_lnf_grad) ops::pool_backward(ws.dlnf, ws.dpooled, pool_mode(config_.pooling), InputGrad::Write);
  } else {
    head_.backward(params_, need_lnf_grad ? ws.dlnf : Tensor(), ws.logits, ws.lnf.out, InputGrad::Write, pass);
  }
  if (!need_lnf_grad) return;

  const Tensor top = L > 0 ? ws.blocks[static_cast<size_t>(L - 1)].res3 : ws.encoded;
  ln_f_.backward(params_, lowest < L ? ws.dresidual : Tensor(), ws.dlnf, top, ws.lnf, InputGrad::Write);
  backward_below(ws, L - 1, lowest, pass);
}

void Transformer::backward_below(BatchWorkspace& ws, int64_t top, int64_t lowest, const Pass& pass) {
  for (int64_t l = top; l >= 0 && l >= lowest; --l) {
    const Tensor x = l > 0 ? ws.blocks[static_cast<size_t>(l - 1)].res3 : ws.encoded;
    // Does anything under this block need its input gradient?
    block_backward(blocks_[static_cast<size_t>(l)], ws.blocks[static_cast<size_t>(l)], x, ws.dresidual, l > lowest,
                   ws.grads, pass);
  }
  if (lowest == kEmbeddingLayer) {
    // encoded = dropout(tok_emb[tokens] + pos_emb)
    const Tensor demb = pass.dropout_p > 0 ? ws.grads.dbranch : ws.dresidual;
    ops::dropout_backward(demb, ws.dresidual, pass.dropout_p, pass.site_seed(-1, 0), InputGrad::Write,
                          pass.mask_offset(ws.dresidual));
    embedding_.backward(params_, demb, ws.tokens, Tensor());
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

KVCache Transformer::make_kv_cache(int64_t max_T) const {
  if (max_T <= 0 || max_T > config_.context_length)
    fail("KV cache of {} positions for a model with context length {}", max_T, config_.context_length);
  KVCache cache;
  cache.max_T = max_T;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    // Never read before written: no zero fill.
    cache.k.push_back(Tensor::empty({max_T, config_.kv_width()}, dtype(), device()));
    cache.v.push_back(Tensor::empty({max_T, config_.kv_width()}, dtype(), device()));
  }
  return cache;
}

size_t kv_cache_bytes(const ModelConfig& config, int64_t positions, DType dtype) {
  return static_cast<size_t>(2 * config.n_layers * positions * config.kv_width()) * dtype_size(dtype);
}

size_t Transformer::kv_cache_bytes(int64_t positions) const {
  return gptrain::kv_cache_bytes(config_, positions, dtype());
}

namespace {

void plan_decode(const ModelConfig& c, DType t, DecodeWorkspace& ws, Arena& arena, int64_t rows, int64_t seqs) {
  ws.tokens = arena.alloc({rows}, DType::I32);
  ws.positions = arena.alloc({rows}, DType::I32);
  ws.last_rows = arena.alloc({seqs}, DType::I32);
  ws.x = arena.alloc({1, rows, c.emb_dim}, t);
  plan_block(c, t, arena, ws.block, 1, rows, /*stats=*/false);
  ws.y = ws.block.res3;
  plan_norm(c, t, arena, ws.lnf, 1, rows);
  if (c.positions == PositionKind::Rotary) {
    ws.rope_cos = arena.alloc({rows, c.head_size() / 2}, stats_dtype(t));
    ws.rope_sin = arena.alloc({rows, c.head_size() / 2}, stats_dtype(t));
  } else {
    ws.rope_cos = ws.rope_sin = Tensor();
  }
  ws.pooled = arena.alloc({seqs, c.emb_dim}, t);
  ws.logits = arena.alloc({seqs, c.head == HeadType::Classifier ? c.n_classes : c.vocab_size}, t);
}

}  // namespace

size_t decode_workspace_bytes(const ModelConfig& config, int64_t rows, int64_t seqs, DType dtype) {
  DecodeWorkspace ws;
  Arena measure = Arena::measuring();
  plan_decode(config.resolved(), dtype, ws, measure, rows, seqs);
  return measure.used();
}

const Tensor& Transformer::decode(DecodeWorkspace& ws, DecodeBatch& batch) const {
  const int64_t R = static_cast<int64_t>(batch.tokens.size()), S = static_cast<int64_t>(batch.slots.size());
  if (R == 0 || S == 0) fail("decode: an empty batch");
  GPTRAIN_CHECK(static_cast<int64_t>(batch.positions.size()) == R, "decode: {} positions for {} tokens",
                batch.positions.size(), R);
  int64_t rows = 0;
  for (const DecodeSlot& s : batch.slots) {
    GPTRAIN_CHECK(s.cache && s.rows > 0, "decode: a sequence without cache or rows");
    if (s.past + s.rows > s.cache->max_T)
      fail("the KV cache is full ({} of {} positions); start a new cache with a shorter window", s.past,
           s.cache->max_T);
    rows += s.rows;
  }
  GPTRAIN_CHECK(rows == R, "decode: the sequences cover {} of {} rows", rows, R);
  const bool moved = place_arena(ws, device());
  if (moved || R != ws.rows || S != ws.seqs) {
    Arena measure = Arena::measuring();
    plan_decode(config_, dtype(), ws, measure, R, S);
    ws.arena.reserve(measure.used());
    ws.arena.reset();
    plan_decode(config_, dtype(), ws, ws.arena, R, S);
    ws.rows = R;
    ws.seqs = S;
  }
  put_ids(ws.tokens, batch.tokens, config_.vocab_size, "token");
  put_ids(ws.positions, batch.positions, config_.context_length, "position");
  Pass pass;
  pass.kind = Pass::Kind::Decode;
  pass.batch_invariant = batch.batch_invariant;
  if (!half_weights_.empty()) pass.half_weights = &half_weights_;
  pass.decode = batch.slots;
  if (rope_inv_freq_.defined()) {
    ops::rope_table(ws.rope_cos, ws.rope_sin, rope_inv_freq_, ws.positions, 1);
    pass.rope_cos = ws.rope_cos;
    pass.rope_sin = ws.rope_sin;
  }

  embedding_.forward(params_, ws.x, ws.tokens, ws.positions);
  Tensor in = ws.x, out = ws.y;
  for (const Block& b : blocks_) {
    block_forward(b, ws.block, in, out, pass);
    std::swap(in, out);
  }
  for (DecodeSlot& s : batch.slots) s.past += s.rows;
  ln_f_.forward(params_, ws.lnf, in);
  if (config_.head == HeadType::Classifier) {
    int64_t first = 0;
    for (int64_t i = 0; i < S; ++i) {
      const int64_t n = batch.slots[static_cast<size_t>(i)].rows;
      const Tensor rows_i = ws.lnf.out.reshape({R, config_.emb_dim}).slice_rows(first, first + n);
      ops::pool_forward(ws.pooled.slice_rows(i, i + 1), rows_i.reshape({1, n, config_.emb_dim}),
                        pool_mode(config_.pooling));
      first += n;
    }
  } else {
    std::vector<int32_t> last(static_cast<size_t>(S));
    int64_t end = 0;
    for (int64_t i = 0; i < S; ++i) {
      end += batch.slots[static_cast<size_t>(i)].rows;
      last[static_cast<size_t>(i)] = static_cast<int32_t>(end - 1);
    }
    put_ids(ws.last_rows, last, R, "row");
    ops::gather_rows_forward(ws.pooled, ws.lnf.out, ws.last_rows);
  }
  head_.forward(params_, ws.logits, ws.pooled, pass);
  return ws.logits;
}

}  // namespace gptrain
