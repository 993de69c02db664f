// The transformer of a ModelConfig: token (+ learned position) embeddings, dropout, n_layers
// pre-norm blocks (attention and MLP, each on a residual branch with dropout), a final norm and an
// output head (vocabulary logits, or N classes read at pooled positions). For GPT-2 this is the
// book's ch04 GPTModel.
//
// One block function (block_forward / block_backward) serves training, evaluation and KV-cache
// decoding; the passes differ only in the Pass they hand it. The weights are separate from the
// state of a pass: a BatchWorkspace holds one batch's activations, a DecodeWorkspace one decode
// step's, a KVCache one sequence's keys and values, so any number of sequences and workspaces can
// read one model. For training convenience the model also owns one BatchWorkspace, which the
// forward/forward_loss/backward members without a workspace argument use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/layers.h"
#include "model/lora.h"
#include "model/parameters.h"
#include "tensor/tensor.h"

namespace gptrain {

struct ForwardOptions {
  bool training = false;      // dropout on when training and drop_rate > 0
  uint64_t dropout_seed = 0;  // every dropout mask of the pass derives from this
  // LM head only: compute logits for the last position of each sequence alone (generation);
  // logits() is then [B, 1, V].
  bool last_position_only = false;
  // The batch is sequences seq_offset.. of a larger one (a micro-batch of an optimizer step, on
  // this rank or another): its dropout masks are that larger batch's (layers.h, Pass).
  int64_t seq_offset = 0;
  // The base model alone: every LoRA adapter left out (a DPO reference that is the base of the
  // adapters being trained). Evaluation only: a training pass needs the adapters it trains.
  bool without_adapters = false;
};

struct BlockActs {
  NormActs ln1;
  AttentionActs attn;
  Tensor res2;  // x + dropout(attention)
  NormActs ln2;
  MlpActs mlp;
  Tensor res3;  // res2 + dropout(mlp): the block's output
};

// A classifier that reads one row per sequence (last or first pooling) needs its last block's
// output at those rows alone. After the attention (which reads every row's keys and values), the
// output projection, the residuals, the MLP and the final norm run on the B pooled rows; backward
// runs them back and hands the attention a gradient that is zero on the other rows, as it is.
// The book's chapter 6 head reads one row of 120: a twelfth of the products and all their
// gradient work skipped. Off while training with dropout (its masks cover every row).
struct PooledTail {
  bool on = false;
  Tensor x, y, proj, res2, res3;  // [B,1,C]: the block's input and the heads' outputs at the pooled rows, ...
  NormActs ln2, lnf;
  MlpActs mlp;
  Tensor dres, dnorm, dy, dhidden, dact;  // their gradients
};

// The activations of one batch pass, planned once per (B, T, training) shape: a step allocates
// nothing. Training keeps every block's; evaluation shares one block's across layers.
struct BatchWorkspace {
  Arena arena;
  int64_t B = 0, T = 0;
  bool training = false;
  Tensor tokens, targets;  // I32
  Tensor encoded;          // the embeddings (and, in evaluation, one side of the residual ping-pong)
  std::vector<BlockActs> blocks;
  NormActs lnf;
  Tensor rope_cos, rope_sin;  // rotary tables of the batch's rows
  Tensor pooled, logits, losses, lse, output;
  BlockGrads grads;
  Tensor dresidual, dlnf, dpooled;
  PooledTail tail;
  Tensor lora_x, lora_dx;  // LoRA dropout's scratch (training with adapter dropout only)
  ForwardOptions options;
  bool have_loss = false;
  int64_t targets_counted = 0;
};

// The rows of one decode step: the new tokens of each sequence, in sequence order, and where
// each sequence continues in its cache.
struct DecodeBatch {
  std::vector<int32_t> tokens, positions;  // one per row
  std::vector<DecodeSlot> slots;           // one per sequence, rows consecutive in this order
  // The rows are single decode positions: every product is batch-invariant (a sequence's result
  // does not depend on what else is decoded with it). Prefill passes (a whole prompt) use BLAS.
  bool batch_invariant = false;
};

struct DecodeWorkspace {
  Arena arena;
  int64_t rows = 0, seqs = 0;
  Tensor tokens, positions, last_rows;  // I32
  Tensor x, y;                          // the residual stream, ping-pong between layers
  BlockActs block;
  NormActs lnf;
  Tensor rope_cos, rope_sin;
  Tensor pooled, logits;
};

struct ParameterCounts {
  int64_t total;         // every parameter, the output head included unless tied
  int64_t without_head;  // total minus the output head (the book's "tied" count for LM heads)
  int64_t head;
};

class Transformer {
 public:
  // Initialised with init(init_seed); std::nullopt leaves the weights zero (they are about to be
  // loaded from a file, and a random init of 1.5B parameters would cost seconds). dtype F32 runs
  // the CPU kernels, F64 the reference kernels (tests). `adapters`: the LoRA adapters the model
  // carries (model/lora.h), laid out beside the weights they adapt.
  explicit Transformer(const ModelConfig& config, std::optional<uint64_t> init_seed = 123,
                       DType dtype = DType::F32, const AdapterPlan& adapters = {});
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  const ModelConfig& config() const { return config_; }
  const AdapterPlan& adapters() const { return adapters_; }
  // Moves the weights (and gradients) to `device`; passes then run there: their workspaces and
  // caches are planned on it, token ids are copied in, outputs stay there (Tensor::host() to read
  // them). set_decode_weights comes before it (the rounding is done on the host).
  void to_device(Device device);
  Device device() const { return params_.device(); }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  // The type the passes compute in: activations, gradients, KV caches (the weights' copy in it,
  // ParameterSet::set_compute_dtype). The weights themselves are params().dtype().
  DType dtype() const { return params_.compute_dtype(); }
  // The bf16 mode (docs/DESIGN.md): the f32 weights stay the model, every pass reads their bf16
  // copy and keeps bf16 activations and gradients (the cpu-bf16 backend, or a GPU's). Call after
  // loading and freezing, before to_device; not with decode weights. F32 turns it off.
  void set_compute_dtype(DType dtype);

  // PyTorch's default initialisation, as the book's model gets it: embeddings N(0, 1), linear
  // weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), norm scale 1 and shift 0.
  // Deterministic in `seed` and independent of the thread count.
  void init(uint64_t seed);
  // The adapters alone, as init(seed) would set them (A as the book, B zero): after the base
  // weights were loaded from a file.
  void init_adapters(uint64_t seed);
  // Folds every adapter into the weight it adapts (W += scaling B A, per segment) and zeroes its
  // B, so the model computes the same function with the adapter now inert. Refuses an adapter on
  // a tied head (merging it would change the token embedding too).
  void merge_adapters();
  // Decoding reads every Linear's weight (the output head's too) from a copy in `dtype` (F16 or
  // BF16): half the bytes per token. The f32 values are rounded to that type as well, so a prefill
  // (BLAS on the f32 values) and the decode rows compute with the same weights: the model becomes
  // its f16 / bf16 rounding. F32 leaves the weights as they are (only before any other call).
  void set_decode_weights(DType dtype);
  DType decode_weights() const { return decode_dtype_; }

  // Freezing. set_trainable_all(false) then thaw what should learn; call before training (it
  // rebuilds the gradient buffer). Parameter names: tok_emb.weight, pos_emb.weight,
  // blocks.{i}.{ln1,attn.qkv,attn.proj,ln2,mlp.fc,mlp.proj}.{weight,bias}, ln_f.{weight,bias},
  // head.weight (head.bias for classifiers).
  void set_trainable_all(bool trainable);
  void set_trainable_prefix(const std::string& prefix, bool trainable);
  // After the f32 weights changed outside the optimizer (a load): their compute copy again.
  void refresh_compute() { params_.refresh_compute(); }
  void allocate_grads() { params_.allocate_grads(); }
  void zero_grads() { params_.zero_grads(); }

  // tokens: B*T ids. LM head: logits [B,T,V]; classifier: logits [B,n_classes].
  const Tensor& forward(BatchWorkspace& ws, std::span<const int32_t> tokens, int64_t B, int64_t T,
                        const ForwardOptions& options) const;
  // forward + mean cross-entropy over targets that are not -100 (LM: B*T targets; classifier: B
  // labels). Returns 0 when every target is ignored.
  double forward_loss(BatchWorkspace& ws, std::span<const int32_t> tokens, std::span<const int32_t> targets,
                      int64_t B, int64_t T, const ForwardOptions& options) const;
  // Accumulates d(loss)/d(param) into the trainable parameters' gradients, for the workspace's last
  // forward_loss(), times loss_scale (1/n when accumulating n micro-batches). Stops below the
  // lowest trainable layer.
  void backward(BatchWorkspace& ws, float loss_scale = 1.0f);
  // The same for the loss sum_r row_weights[r] * loss_r, where loss_r is each target row's
  // cross-entropy of that forward_loss() (0 where the target is -100), with any weights of any
  // sign: an objective of the rows' log-probabilities, such as DPO's. One weight per target row.
  void backward_rows(BatchWorkspace& ws, std::span<const double> row_weights);

  // The same on the model's own workspace.
  const Tensor& forward(std::span<const int32_t> tokens, int64_t B, int64_t T, const ForwardOptions& options) {
    return forward(own_, tokens, B, T, options);
  }
  double forward_loss(std::span<const int32_t> tokens, std::span<const int32_t> targets, int64_t B, int64_t T,
                      const ForwardOptions& options) {
    return forward_loss(own_, tokens, targets, B, T, options);
  }
  void backward(float loss_scale = 1.0f) { backward(own_, loss_scale); }
  const Tensor& logits() const { return own_.output; }
  int64_t targets_counted() const { return own_.targets_counted; }

  // KV-cache decoding. A cache for one sequence of up to max_T positions (at most the context).
  KVCache make_kv_cache(int64_t max_T) const;
  // Runs the batch's rows through every block, appending their keys and values to the caches;
  // returns per sequence the logits of its last row [S, V] (LM), or its pooled classifier logits
  // [S, n_classes]. The caches' positions advance by each sequence's rows.
  const Tensor& decode(DecodeWorkspace& ws, DecodeBatch& batch) const;

  size_t kv_cache_bytes(int64_t positions) const;

 private:
  struct Block {
    Norm ln1;
    Attention attn;
    Norm ln2;
    Mlp mlp;
    int64_t layer = 0;
  };
  // The one block: out = x + drop(attn(ln1(x))) + drop(mlp(ln2(...))).
  void block_forward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& out, const Pass& pass) const;
  // dres holds d(out) and receives d(x) when need_dx (accumulated over the residual stream).
  void block_backward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& dres, bool need_dx,
                      const BlockGrads& g, const Pass& pass);
  // The last block of a classifier on its pooled rows (PooledTail): forward into t.res3, and
  // backward from t.dres (d(t.res3)) into dres (the block input's gradient, when need_dx).
  void tail_forward(const Block& b, const BlockActs& a, const Tensor& x, const PooledTail& t, const Pass& pass) const;
  void tail_backward(const Block& b, const BlockActs& a, const Tensor& x, const PooledTail& t, const Tensor& dres,
                     bool need_dx, const BlockGrads& g, const Pass& pass);
  // A block's attention from g.dy (d of its heads' outputs), then ln1; dres gets d(x) when need_dx.
  void attend_ln1_backward(const Block& b, const BlockActs& a, const Tensor& x, const Tensor& dres, bool need_dx,
                           const BlockGrads& g, const Pass& pass);
  // Blocks top..lowest (and the embeddings when they train), from ws.dresidual = d(block top's output).
  void backward_below(BatchWorkspace& ws, int64_t top, int64_t lowest, const Pass& pass);
  // backward() from the loss's gradient: loss_scale on the mean, or row_dloss per row when defined.
  void backward_from_loss(BatchWorkspace& ws, float loss_scale, const Tensor& row_dloss);
  Pass pass_for(const ForwardOptions& options) const;
  void init_where(uint64_t seed, bool adapters_only);

  ModelConfig config_;
  AdapterPlan adapters_;
  ParameterSet params_;
  Embedding embedding_;
  std::vector<Block> blocks_;
  Norm ln_f_;
  Linear head_;
  Tensor rope_inv_freq_;  // [head_dim / 2], rotary models
  BatchWorkspace own_;
  std::vector<Tensor> half_weights_;  // by parameter index: the decode copies (set_decode_weights)
  DType decode_dtype_ = DType::F32;
};

// The parameters a model of `config` has, with names, shapes and layers but no memory (for counts
// and for planning which of them train).
ParameterSet parameter_layout(const ModelConfig& config, const AdapterPlan& adapters = {});
// Parameter counts from the layout alone (nothing is allocated).
ParameterCounts count_parameters(const ModelConfig& config);

// Memory, from the same layout code that plans the buffers (nothing is allocated): a batch pass's
// activations (training: every block's, plus the gradient buffers of backward), one sequence's
// KV cache of `positions` positions, and a decode step's buffers for `rows` rows of `seqs`
// sequences.
size_t activation_bytes(const ModelConfig& config, int64_t B, int64_t T, bool training, DType dtype = DType::F32,
                        const AdapterPlan& adapters = {});
size_t kv_cache_bytes(const ModelConfig& config, int64_t positions, DType dtype = DType::F32);
size_t decode_workspace_bytes(const ModelConfig& config, int64_t rows, int64_t seqs, DType dtype = DType::F32);

}  // namespace gptrain
