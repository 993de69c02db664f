#include "model/gpt2.h"

#include <cmath>

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

}  // namespace

GPT2::GPT2(const GPT2Config& config, std::optional<uint64_t> init_seed) : config_(config) {
  config_.validate();
  const int64_t V = config_.vocab_size, C = config_.emb_dim, P = config_.context_length;
  tok_emb_ = params_.add("tok_emb.weight", {V, C}, ParamKind::Embedding);
  pos_emb_ = params_.add("pos_emb.weight", {P, C}, ParamKind::Embedding);
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    BlockParams bp{};
    bp.ln1_w = params_.add(b + "ln1.weight", {C}, ParamKind::Norm);
    bp.ln1_b = params_.add(b + "ln1.bias", {C}, ParamKind::Norm);
    bp.qkv_w = params_.add(b + "attn.qkv.weight", {3 * C, C}, ParamKind::LinearWeight, C);
    bp.qkv_b = config_.qkv_bias ? params_.add(b + "attn.qkv.bias", {3 * C}, ParamKind::LinearBias, C) : -1;
    bp.proj_w = params_.add(b + "attn.proj.weight", {C, C}, ParamKind::LinearWeight, C);
    bp.proj_b = params_.add(b + "attn.proj.bias", {C}, ParamKind::LinearBias, C);
    bp.ln2_w = params_.add(b + "ln2.weight", {C}, ParamKind::Norm);
    bp.ln2_b = params_.add(b + "ln2.bias", {C}, ParamKind::Norm);
    bp.fc_w = params_.add(b + "mlp.fc.weight", {4 * C, C}, ParamKind::LinearWeight, C);
    bp.fc_b = params_.add(b + "mlp.fc.bias", {4 * C}, ParamKind::LinearBias, C);
    bp.fcproj_w = params_.add(b + "mlp.proj.weight", {C, 4 * C}, ParamKind::LinearWeight, 4 * C);
    bp.fcproj_b = params_.add(b + "mlp.proj.bias", {C}, ParamKind::LinearBias, 4 * C);
    blocks_.push_back(bp);
  }
  lnf_w_ = params_.add("ln_f.weight", {C}, ParamKind::Norm);
  lnf_b_ = params_.add("ln_f.bias", {C}, ParamKind::Norm);
  if (config_.head == HeadType::Classifier) {
    head_w_ = params_.add("head.weight", {config_.n_classes, C}, ParamKind::LinearWeight, C);
    head_b_ = params_.add("head.bias", {config_.n_classes}, ParamKind::LinearBias, C);
  } else if (!config_.tie_weights) {
    head_w_ = params_.add("head.weight", {V, C}, ParamKind::LinearWeight, C);
  }
  params_.allocate();
  if (init_seed) init(*init_seed);
  params_.allocate_grads();
}

void GPT2::init(uint64_t seed) {
  for (Parameter& p : params_.all()) {
    const CounterRng rng(seed, name_stream(p.name));
    float* x = p.value.data();
    const int64_t n = p.value.numel();
    switch (p.kind) {
      case ParamKind::Embedding:  // nn.Embedding: N(0, 1)
        for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(rng.normal(static_cast<uint64_t>(i)));
        break;
      case ParamKind::Norm:  // LayerNorm: scale 1, shift 0
        p.value.fill(p.name.ends_with(".weight") ? 1.0f : 0.0f);
        break;
      case ParamKind::LinearWeight:  // nn.Linear: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
      case ParamKind::LinearBias: {  // and its bias: U(+-1/sqrt(fan_in))
        const double bound = 1.0 / std::sqrt(static_cast<double>(p.fan_in));
        for (int64_t i = 0; i < n; ++i)
          x[i] = static_cast<float>((2.0 * rng.uniform_double(static_cast<uint64_t>(i)) - 1.0) * bound);
        break;
      }
    }
  }
}

void GPT2::set_trainable_all(bool trainable) {
  for (Parameter& p : params_.all()) p.trainable = trainable;
}

void GPT2::set_trainable_prefix(const std::string& prefix, bool trainable) {
  bool any = false;
  for (Parameter& p : params_.all())
    if (p.name.starts_with(prefix)) {
      p.trainable = trainable;
      any = true;
    }
  if (!any) fail("no parameter of the model starts with '{}'", prefix);
}

uint64_t GPT2::site_seed(int64_t layer, int site) const {
  return derive_seed(options_.dropout_seed, static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(site));
}

int64_t GPT2::activation_floats(int64_t B, int64_t T, bool training) const {
  const int64_t C = config_.emb_dim, NH = config_.n_heads, BT = B * T;
  auto pad = [](int64_t n) { return (n + 15) / 16 * 16; };
  const int64_t out_rows = config_.head == HeadType::Classifier ? B : BT;
  const int64_t out_cols = config_.head == HeadType::Classifier ? config_.n_classes : config_.vocab_size;
  const int64_t per_block = 9 * pad(BT * C) + 2 * pad(BT * 4 * C) + pad(BT * 3 * C) + 4 * pad(BT) +
                            pad(B * NH * T * 2);
  int64_t total = pad(BT * C) + pad(BT * C) + 2 * pad(BT) + pad(B * C) + pad(out_rows * out_cols) +
                  2 * pad(out_rows);
  // Inference keeps one block's activations (they are overwritten layer by layer).
  total += (training ? config_.n_layers : std::min<int64_t>(config_.n_layers, 1)) * per_block;
  if (training)
    total += 5 * pad(BT * C) + pad(BT * 3 * C) + 2 * pad(BT * 4 * C) + pad(B * C);
  return total;
}

void GPT2::plan(int64_t B, int64_t T, bool training) {
  if (B == planned_B_ && T == planned_T_ && training == planned_training_) return;
  const int64_t C = config_.emb_dim, NH = config_.n_heads, BT = B * T;
  arena_.reserve(activation_floats(B, T, training));
  arena_.reset();
  encoded_ = arena_.alloc({B, T, C});
  const int64_t stored_blocks = training ? config_.n_layers : std::min<int64_t>(config_.n_layers, 1);
  acts_.assign(static_cast<size_t>(config_.n_layers), BlockActs{});
  for (int64_t l = 0; l < stored_blocks; ++l) {
    BlockActs& a = acts_[static_cast<size_t>(l)];
    a.ln1 = arena_.alloc({B, T, C});
    a.ln1_mean = arena_.alloc({BT});
    a.ln1_rstd = arena_.alloc({BT});
    a.qkv = arena_.alloc({B, T, 3 * C});
    a.att_stats = arena_.alloc({B, NH, T, 2});
    a.atty = arena_.alloc({B, T, C});
    a.attproj = arena_.alloc({B, T, C});
    a.res2 = arena_.alloc({B, T, C});
    a.ln2 = arena_.alloc({B, T, C});
    a.ln2_mean = arena_.alloc({BT});
    a.ln2_rstd = arena_.alloc({BT});
    a.fch = arena_.alloc({B, T, 4 * C});
    a.fch_gelu = arena_.alloc({B, T, 4 * C});
    a.fcproj = arena_.alloc({B, T, C});
    a.res3 = arena_.alloc({B, T, C});
  }
  // Inference: every block reuses block 0's buffers, except the residual stream, which alternates
  // between res2/res3 of block 0 and encoded_ (each block reads its input before writing res3).
  for (int64_t l = stored_blocks; l < config_.n_layers; ++l) acts_[static_cast<size_t>(l)] = acts_[0];
  lnf_ = arena_.alloc({B, T, C});
  lnf_mean_ = arena_.alloc({BT});
  lnf_rstd_ = arena_.alloc({BT});
  const bool classifier = config_.head == HeadType::Classifier;
  pooled_ = arena_.alloc({B, C});
  logits_ = classifier ? arena_.alloc({B, config_.n_classes}) : arena_.alloc({B, T, config_.vocab_size});
  losses_ = arena_.alloc({classifier ? B : BT});
  lse_ = arena_.alloc({classifier ? B : BT});
  if (training) {
    dresidual_ = arena_.alloc({B, T, C});
    dbranch_ = arena_.alloc({B, T, C});
    dln_ = arena_.alloc({B, T, C});
    datty_ = arena_.alloc({B, T, C});
    dlnf_ = arena_.alloc({B, T, C});
    dqkv_ = arena_.alloc({B, T, 3 * C});
    dfch_ = arena_.alloc({B, T, 4 * C});
    dfch_gelu_ = arena_.alloc({B, T, 4 * C});
    dpooled_ = arena_.alloc({B, C});
  }
  planned_B_ = B;
  planned_T_ = T;
  planned_training_ = training;
}

const Tensor& GPT2::forward(std::span<const int32_t> tokens, int64_t B, int64_t T, const ForwardOptions& options) {
  if (B <= 0 || T <= 0) fail("forward: empty batch (B={}, T={})", B, T);
  if (T > config_.context_length)
    fail("sequence length {} exceeds the model's context length {}", T, config_.context_length);
  if (static_cast<int64_t>(tokens.size()) != B * T) fail("forward: {} tokens for B={} x T={}", tokens.size(), B, T);
  // Activations are kept for backward whenever anything is trainable and we are training.
  const bool keep = options.training;
  plan(B, T, keep);
  options_ = options;
  have_loss_ = false;
  B_ = B;
  T_ = T;
  tokens_.assign(tokens.begin(), tokens.end());
  const float p = options.training ? config_.drop_rate : 0.0f;
  const int64_t NH = config_.n_heads;

  ops::embedding_forward(encoded_, tokens_, value(tok_emb_), value(pos_emb_));
  ops::dropout_forward(encoded_, encoded_, p, site_seed(-1, 0));
  Tensor residual = encoded_;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const BlockParams& bp = blocks_[static_cast<size_t>(l)];
    BlockActs& a = acts_[static_cast<size_t>(l)];
    ops::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, residual, value(bp.ln1_w), value(bp.ln1_b), config_.layer_norm_eps);
    ops::matmul_forward(a.qkv, a.ln1, value(bp.qkv_w), opt_value(bp.qkv_b));
    ops::attention_forward(a.atty, a.att_stats, a.qkv, NH, p, site_seed(l, 0));
    ops::matmul_forward(a.attproj, a.atty, value(bp.proj_w), value(bp.proj_b));
    ops::dropout_forward(a.attproj, a.attproj, p, site_seed(l, 1));
    ops::residual_forward(a.res2, residual, a.attproj);
    ops::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, value(bp.ln2_w), value(bp.ln2_b), config_.layer_norm_eps);
    ops::matmul_forward(a.fch, a.ln2, value(bp.fc_w), value(bp.fc_b));
    ops::gelu_forward(a.fch_gelu, a.fch);
    ops::matmul_forward(a.fcproj, a.fch_gelu, value(bp.fcproj_w), value(bp.fcproj_b));
    ops::dropout_forward(a.fcproj, a.fcproj, p, site_seed(l, 2));
    // Inference shares block 0's buffers: write the block output where the next block reads it.
    const Tensor& out = keep ? a.res3 : (residual.data() == encoded_.data() ? a.res3 : encoded_);
    ops::residual_forward(out, a.res2, a.fcproj);
    residual = out;
  }
  ops::layernorm_forward(lnf_, lnf_mean_, lnf_rstd_, residual, value(lnf_w_), value(lnf_b_), config_.layer_norm_eps);
  if (config_.head == HeadType::Classifier) {
    ops::pool_forward(pooled_, lnf_, config_.pooling);
    ops::matmul_forward(logits_, pooled_, value(head_w_), value(head_b_));
  } else if (options.last_position_only) {
    ops::pool_forward(pooled_, lnf_, Pooling::Last);
    output_ = logits_.reshape({B * T * config_.vocab_size}).slice_rows(0, B * config_.vocab_size).reshape({B, 1, config_.vocab_size});
    ops::matmul_forward(output_, pooled_, value(head_weight_index()), Tensor());
    return output_;
  } else {
    ops::matmul_forward(logits_, lnf_, value(head_weight_index()), Tensor());
  }
  output_ = logits_;
  return output_;
}

KVCache GPT2::make_kv_cache(int64_t B, int64_t max_T) const {
  if (B <= 0 || max_T <= 0 || max_T > config_.context_length)
    fail("KV cache of {} positions for a model with context length {}", max_T, config_.context_length);
  KVCache cache;
  cache.B = B;
  cache.max_T = max_T;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    cache.k.push_back(Tensor::zeros({B, max_T, config_.emb_dim}));
    cache.v.push_back(Tensor::zeros({B, max_T, config_.emb_dim}));
  }
  return cache;
}

const Tensor& GPT2::forward_cached(std::span<const int32_t> tokens, int64_t B, int64_t Tn, KVCache& cache) {
  if (config_.head != HeadType::LanguageModel) fail("KV-cache decoding needs a language-model head");
  if (B != cache.B) fail("forward_cached: batch {} for a cache of batch {}", B, cache.B);
  if (Tn <= 0 || static_cast<int64_t>(tokens.size()) != B * Tn) fail("forward_cached: {} tokens for B={} x Tn={}", tokens.size(), B, Tn);
  if (cache.length + Tn > cache.max_T)
    fail("the KV cache is full ({} of {} positions); start a new cache with a shorter window", cache.length, cache.max_T);
  const int64_t C = config_.emb_dim, BT = B * Tn, NH = config_.n_heads;
  if (B != decode_B_ || Tn != decode_T_) {
    auto pad = [](int64_t n) { return (n + 15) / 16 * 16; };
    decode_arena_.reserve(11 * pad(BT * C) + 2 * pad(BT * 4 * C) + pad(BT * 3 * C) + 6 * pad(BT) + pad(B * C) +
                          pad(B * config_.vocab_size));
    decode_arena_.reset();
    Arena& a = decode_arena_;
    decode_in_ = a.alloc({B, Tn, C});
    decode_.ln1 = a.alloc({B, Tn, C});
    decode_.ln1_mean = a.alloc({BT});
    decode_.ln1_rstd = a.alloc({BT});
    decode_.qkv = a.alloc({B, Tn, 3 * C});
    decode_.atty = a.alloc({B, Tn, C});
    decode_.attproj = a.alloc({B, Tn, C});
    decode_.res2 = a.alloc({B, Tn, C});
    decode_.ln2 = a.alloc({B, Tn, C});
    decode_.ln2_mean = a.alloc({BT});
    decode_.ln2_rstd = a.alloc({BT});
    decode_.fch = a.alloc({B, Tn, 4 * C});
    decode_.fch_gelu = a.alloc({B, Tn, 4 * C});
    decode_.fcproj = a.alloc({B, Tn, C});
    decode_.res3 = a.alloc({B, Tn, C});
    decode_lnf_ = a.alloc({B, Tn, C});
    decode_lnf_mean_ = a.alloc({BT});
    decode_lnf_rstd_ = a.alloc({BT});
    decode_pooled_ = a.alloc({B, C});
    decode_logits_ = a.alloc({B, 1, config_.vocab_size});
    decode_B_ = B;
    decode_T_ = Tn;
  }
  BlockActs& a = decode_;
  ops::embedding_forward(decode_in_, tokens, value(tok_emb_), value(pos_emb_), cache.length);
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    const BlockParams& bp = blocks_[static_cast<size_t>(l)];
    // the block's input is decode_in_; its output goes back into decode_in_ (after res3)
    ops::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, decode_in_, value(bp.ln1_w), value(bp.ln1_b), config_.layer_norm_eps);
    ops::matmul_forward(a.qkv, a.ln1, value(bp.qkv_w), opt_value(bp.qkv_b));
    ops::attention_decode_forward(a.atty, a.qkv, cache.k[static_cast<size_t>(l)], cache.v[static_cast<size_t>(l)], NH,
                                  cache.length);
    ops::matmul_forward(a.attproj, a.atty, value(bp.proj_w), value(bp.proj_b));
    ops::residual_forward(a.res2, decode_in_, a.attproj);
    ops::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, value(bp.ln2_w), value(bp.ln2_b), config_.layer_norm_eps);
    ops::matmul_forward(a.fch, a.ln2, value(bp.fc_w), value(bp.fc_b));
    ops::gelu_forward(a.fch_gelu, a.fch);
    ops::matmul_forward(a.fcproj, a.fch_gelu, value(bp.fcproj_w), value(bp.fcproj_b));
    ops::residual_forward(decode_in_, a.res2, a.fcproj);
  }
  cache.length += Tn;
  ops::layernorm_forward(decode_lnf_, decode_lnf_mean_, decode_lnf_rstd_, decode_in_, value(lnf_w_), value(lnf_b_),
                         config_.layer_norm_eps);
  ops::pool_forward(decode_pooled_, decode_lnf_, Pooling::Last);
  ops::matmul_forward(decode_logits_, decode_pooled_, value(head_weight_index()), Tensor());
  return decode_logits_;
}

double GPT2::forward_loss(std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t B,
                          int64_t T, const ForwardOptions& options) {
  forward(tokens, B, T, options);
  const int64_t expected = config_.head == HeadType::Classifier ? B : B * T;
  if (static_cast<int64_t>(targets.size()) != expected)
    fail("forward_loss: {} targets, expected {}", targets.size(), expected);
  targets_.assign(targets.begin(), targets.end());
  if (options.last_position_only) fail("forward_loss needs the logits of every position");
  const ops::CrossEntropyResult r = ops::cross_entropy_forward(losses_, lse_, logits_, targets_);
  targets_counted_ = r.n_counted;
  have_loss_ = true;
  return r.loss;
}

void GPT2::backward(float loss_scale) {
  if (!have_loss_) fail("backward() needs a preceding forward_loss()");
  if (!planned_training_) fail("backward() needs a forward pass with training=true (activations were not kept)");
  if (!params_.flat_grads().defined()) return;  // nothing trainable
  const float p = options_.training ? config_.drop_rate : 0.0f;
  const int64_t NH = config_.n_heads, L = config_.n_layers;

  // The lowest layer that needs a gradient: -1 embeddings, 0..L-1 blocks, L final norm and head.
  int64_t lowest = L + 1;
  if (trainable(tok_emb_) || trainable(pos_emb_)) lowest = -1;
  for (int64_t l = 0; l < L && lowest == L + 1; ++l)
    for (const Parameter& q : params_.all())
      if (q.trainable && q.name.starts_with("blocks." + std::to_string(l) + ".")) {
        lowest = l;
        break;
      }
  if (lowest == L + 1 && (trainable(lnf_w_) || trainable(lnf_b_) || trainable(head_weight_index()) || trainable(head_b_)))
    lowest = L;

  // Head and loss: dlogits overwrites the logits.
  ops::cross_entropy_backward(logits_, logits_, lse_, targets_, loss_scale);
  const bool need_lnf_grad = lowest < L || trainable(lnf_w_) || trainable(lnf_b_);
  dlnf_.zero();
  if (config_.head == HeadType::Classifier) {
    dpooled_.zero();
    ops::matmul_backward(need_lnf_grad ? dpooled_ : Tensor(), opt_grad(head_w_), opt_grad(head_b_), logits_,
                         pooled_, value(head_w_));
    if (need_lnf_grad) ops::pool_backward(dlnf_, dpooled_, config_.pooling);
  } else {
    const int hw = head_weight_index();
    ops::matmul_backward(need_lnf_grad ? dlnf_ : Tensor(), opt_grad(hw), Tensor(), logits_, lnf_, value(hw));
  }
  if (!need_lnf_grad) return;

  const Tensor top = L > 0 ? acts_[static_cast<size_t>(L - 1)].res3 : encoded_;
  dresidual_.zero();
  ops::layernorm_backward(lowest < L ? dresidual_ : Tensor(), opt_grad(lnf_w_), opt_grad(lnf_b_), dlnf_, top,
                          value(lnf_w_), lnf_mean_, lnf_rstd_);
  for (int64_t l = L - 1; l >= 0 && l >= lowest; --l) {
    const BlockParams& bp = blocks_[static_cast<size_t>(l)];
    BlockActs& a = acts_[static_cast<size_t>(l)];
    const Tensor residual = l > 0 ? acts_[static_cast<size_t>(l - 1)].res3 : encoded_;
    const bool below = l > lowest;  // does anything under this block need the input gradient?
    // res3 = res2 + dropout(fcproj): dresidual flows on unchanged as d(res2).
    dbranch_.zero();
    ops::dropout_backward(dbranch_, dresidual_, p, site_seed(l, 2));
    dfch_gelu_.zero();
    ops::matmul_backward(dfch_gelu_, opt_grad(bp.fcproj_w), opt_grad(bp.fcproj_b), dbranch_, a.fch_gelu,
                         value(bp.fcproj_w));
    dfch_.zero();
    ops::gelu_backward(dfch_, a.fch, dfch_gelu_);
    dln_.zero();
    ops::matmul_backward(dln_, opt_grad(bp.fc_w), opt_grad(bp.fc_b), dfch_, a.ln2, value(bp.fc_w));
    ops::layernorm_backward(dresidual_, opt_grad(bp.ln2_w), opt_grad(bp.ln2_b), dln_, a.res2, value(bp.ln2_w),
                            a.ln2_mean, a.ln2_rstd);
    // res2 = residual + dropout(attproj)
    dbranch_.zero();
    ops::dropout_backward(dbranch_, dresidual_, p, site_seed(l, 1));
    datty_.zero();
    ops::matmul_backward(datty_, opt_grad(bp.proj_w), opt_grad(bp.proj_b), dbranch_, a.atty, value(bp.proj_w));
    dqkv_.zero();
    ops::attention_backward(dqkv_, datty_, a.qkv, a.att_stats, NH, p, site_seed(l, 0));
    dln_.zero();
    ops::matmul_backward(dln_, opt_grad(bp.qkv_w), opt_grad(bp.qkv_b), dqkv_, a.ln1, value(bp.qkv_w));
    ops::layernorm_backward(below ? dresidual_ : Tensor(), opt_grad(bp.ln1_w), opt_grad(bp.ln1_b), dln_, residual,
                            value(bp.ln1_w), a.ln1_mean, a.ln1_rstd);
  }
  if (lowest == -1) {
    // encoded = dropout(tok_emb[tokens] + pos_emb)
    dbranch_.zero();
    ops::dropout_backward(dbranch_, dresidual_, p, site_seed(-1, 0));
    ops::embedding_backward(opt_grad(tok_emb_), opt_grad(pos_emb_), dbranch_, tokens_);
  }
}

}  // namespace gptrain
