#include "kernels/ops.h"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "util/error.h"

namespace gptrain::ops {

using namespace gptrain::kernels;

namespace {

const void* cptr(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }
void* ptr(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }
const int32_t* ids(const Tensor& t) { return t.defined() ? t.device_data<int32_t>() : nullptr; }

// The one dispatch point: every defined floating operand must share one device and element type,
// statistics (norms' means and reciprocal deviations, attention's and cross-entropy's softmax
// statistics and losses, rotary tables) must be stats_dtype of it on that device, id operands I32
// there; the backend for that pair runs the op.
const Backend& select(const char* op, std::initializer_list<const Tensor*> floats,
                      std::initializer_list<const Tensor*> id_tensors = {},
                      std::initializer_list<const Tensor*> stats = {}) {
  const Tensor* first = nullptr;
  for (const Tensor* t : floats)
    if (t->defined()) {
      if (!first) {
        first = t;
        continue;
      }
      if (t->device() != first->device() || t->dtype() != first->dtype())
        fail("{}: operands on {} {} and {} {}; every operand of an op must share one device and element type", op,
             device_name(first->device()), dtype_name(first->dtype()), device_name(t->device()), dtype_name(t->dtype()));
    }
  GPTRAIN_CHECK(first != nullptr, "{}: no defined operand", op);
  const DType stat_type = stats_dtype(first->dtype());
  for (const Tensor* t : stats)
    if (t->defined() && (t->device() != first->device() || t->dtype() != stat_type))
      fail("{}: a statistics operand on {} {} beside operands on {} {}; statistics are {} on the operands' device", op,
           device_name(t->device()), dtype_name(t->dtype()), device_name(first->device()), dtype_name(first->dtype()),
           dtype_name(stat_type));
  for (const Tensor* t : id_tensors)
    if (t->defined())
      GPTRAIN_CHECK(t->dtype() == DType::I32 && t->device() == first->device(), "{}: ids must be i32 on {}, got {} on {}",
                    op, device_name(first->device()), dtype_name(t->dtype()), device_name(t->device()));
  return backend_for(first->device(), first->dtype());
}

void require_defined(const Tensor& t, const char* op, const char* what) {
  GPTRAIN_CHECK(t.defined(), "{}: {} is required", op, what);
}

void require_numel(const Tensor& t, int64_t n, const char* op, const char* what) {
  if (t.defined())
    GPTRAIN_CHECK(t.numel() == n, "{}: {} has shape {} ({} elements), expected {} elements", op, what,
                  shape_string(t.shape()), t.numel(), n);
}

// Per-op wall time, on when GPTRAIN_PROFILE is set (read once): one relaxed load per op otherwise.
struct OpStats {
  int64_t calls = 0;
  double seconds = 0;
};
std::mutex g_profile_mutex;
std::map<std::string, OpStats>& profile_table() {
  static std::map<std::string, OpStats> table;
  return table;
}
bool profiling_enabled() {
  static const bool enabled = std::getenv("GPTRAIN_PROFILE") != nullptr;
  return enabled;
}

class OpTimer {
 public:
  explicit OpTimer(const char* name) : name_(profiling_enabled() ? name : nullptr) {
    if (name_) start_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() {
    if (!name_) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::lock_guard<std::mutex> lock(g_profile_mutex);
    OpStats& st = profile_table()[name_];
    ++st.calls;
    st.seconds += s;
  }

 private:
  const char* name_;
  std::chrono::steady_clock::time_point start_;
};

// Ids read on the host are range-checked there (a device tensor's ids were checked before upload).
void check_ids(const Tensor& t, int64_t limit, const char* what, int32_t allowed = INT32_MIN) {
  if (!t.defined() || t.device() != Device::CPU) return;
  const int32_t* p = t.data<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (p[i] != allowed && (p[i] < 0 || p[i] >= limit)) {
      if (allowed != INT32_MIN)
        fail("{} id {} is out of range for {} classes (and is not the ignore index {})", what, p[i], limit, allowed);
      fail("{} id {} is out of range for a vocabulary of {}", what, p[i], limit);
    }
}

}  // namespace

std::vector<ProfileEntry> profile() {
  std::lock_guard<std::mutex> lock(g_profile_mutex);
  std::vector<ProfileEntry> out;
  for (const auto& [name, st] : profile_table()) out.push_back({name, st.calls, st.seconds});
  return out;
}

void reset_profile() {
  std::lock_guard<std::mutex> lock(g_profile_mutex);
  profile_table().clear();
}

void set_num_threads(int threads) {
  if (threads <= 0) threads = omp_get_num_procs();
  omp_set_num_threads(threads);
}

int num_threads() { return omp_get_max_threads(); }

void embedding_forward(const Tensor& out, const Tensor& tokens, const Tensor& positions, const Tensor& wte,
                       const Tensor& wpe, int64_t pos_offset) {
  const OpTimer timer("embedding_forward");
  require_defined(out, "embedding_forward", "out");
  require_defined(wte, "embedding_forward", "wte");
  require_defined(tokens, "embedding_forward", "tokens");
  const Backend& be = select("embedding_forward", {&out, &wte, &wpe}, {&tokens, &positions});
  GPTRAIN_CHECK(out.ndim() == 3 && wte.ndim() == 2 && wte.dim(1) == out.dim(2) &&
                    (!wpe.defined() || (wpe.ndim() == 2 && wpe.dim(1) == out.dim(2))),
                "embedding_forward: out {} wte {} wpe {}", shape_string(out.shape()), shape_string(wte.shape()),
                shape_string(wpe.shape()));
  const EmbeddingParams p{out.dim(0), out.dim(1), out.dim(2), wte.dim(0), wpe.defined() ? wpe.dim(0) : 0, pos_offset};
  GPTRAIN_CHECK(tokens.numel() == p.B * p.T, "embedding_forward: {} tokens for B*T={}", tokens.numel(), p.B * p.T);
  require_numel(positions, p.B * p.T, "embedding_forward", "positions");
  if (wpe.defined()) {
    if (positions.defined()) {
      check_ids(positions, p.n_positions, "position");
    } else if (pos_offset < 0 || pos_offset + p.T > p.n_positions) {
      fail("positions {}..{} exceed the model's context length {}", pos_offset, pos_offset + p.T - 1, p.n_positions);
    }
  }
  check_ids(tokens, p.V, "token");
  be.embedding_forward(out.raw(), ids(tokens), ids(positions), wte.raw(), cptr(wpe), p);
}

void embedding_backward(const Tensor& dwte, const Tensor& dwpe, const Tensor& dout, const Tensor& tokens,
                        const Tensor& positions, int64_t pos_offset) {
  const OpTimer timer("embedding_backward");
  if (!dwte.defined() && !dwpe.defined()) return;
  require_defined(dout, "embedding_backward", "dout");
  const Backend& be = select("embedding_backward", {&dwte, &dwpe, &dout}, {&tokens, &positions});
  const Tensor& table = dwte.defined() ? dwte : dwpe;
  const EmbeddingParams p{dout.dim(0), dout.dim(1), dout.dim(2), dwte.defined() ? dwte.dim(0) : 0,
                          dwpe.defined() ? dwpe.dim(0) : 0, pos_offset};
  GPTRAIN_CHECK(table.dim(1) == p.C, "embedding_backward: table {} for dout {}", shape_string(table.shape()),
                shape_string(dout.shape()));
  GPTRAIN_CHECK(tokens.numel() == p.B * p.T, "embedding_backward: token count");
  require_numel(positions, p.B * p.T, "embedding_backward", "positions");
  be.embedding_backward(ptr(dwte), ptr(dwpe), dout.raw(), ids(tokens), ids(positions), p);
}

void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed, uint64_t offset) {
  const OpTimer timer("dropout_forward");
  require_defined(out, "dropout_forward", "out");
  require_defined(inp, "dropout_forward", "inp");
  const Backend& be = select("dropout_forward", {&out, &inp});
  require_numel(out, inp.numel(), "dropout_forward", "out");
  GPTRAIN_CHECK(p >= 0.0f && p <= 1.0f, "dropout probability {} outside [0, 1]", p);
  if (p == 0.0f) {
    if (out.raw() != inp.raw()) out.copy_from(inp);
    return;
  }
  be.dropout_forward(out.raw(), inp.raw(), DropoutParams{inp.numel(), p, seed, InputGrad::Accumulate, offset});
}

void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed, InputGrad mode,
                      uint64_t offset) {
  const OpTimer timer("dropout_backward");
  if (!dinp.defined()) return;
  require_defined(dout, "dropout_backward", "dout");
  const Backend& be = select("dropout_backward", {&dinp, &dout});
  require_numel(dinp, dout.numel(), "dropout_backward", "dinp");
  if (p == 0.0f) {
    if (mode == InputGrad::Write) {
      if (dinp.raw() != dout.raw()) dinp.copy_from(dout);
    } else {
      be.residual_backward(dinp.raw(), nullptr, dout.raw(), ResidualParams{dout.numel()});
    }
    return;
  }
  be.dropout_backward(dinp.raw(), dout.raw(), DropoutParams{dout.numel(), p, seed, mode, offset});
}

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps) {
  const OpTimer timer("layernorm_forward");
  for (const auto& [t, what] : {std::pair{&out, "out"}, {&mean, "mean"}, {&rstd, "rstd"}, {&inp, "inp"},
                                {&weight, "weight"}})
    require_defined(*t, "layernorm_forward", what);
  const Backend& be = select("layernorm_forward", {&out, &inp, &weight, &bias}, {}, {&mean, &rstd});
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(out, N * C, "layernorm_forward", "out");
  require_numel(mean, N, "layernorm_forward", "mean");
  require_numel(rstd, N, "layernorm_forward", "rstd");
  require_numel(weight, C, "layernorm_forward", "weight");
  require_numel(bias, C, "layernorm_forward", "bias");
  be.layernorm_forward(out.raw(), mean.raw(), rstd.raw(), inp.raw(), weight.raw(), cptr(bias),
                       LayerNormParams{N, C, eps});
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                        const Tensor& inp, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                        InputGrad mode) {
  const OpTimer timer("layernorm_backward");
  if (!dinp.defined() && !dweight.defined() && !dbias.defined()) return;
  for (const auto& [t, what] : {std::pair{&dout, "dout"}, {&inp, "inp"}, {&weight, "weight"}, {&mean, "mean"},
                                {&rstd, "rstd"}})
    require_defined(*t, "layernorm_backward", what);
  const Backend& be = select("layernorm_backward", {&dinp, &dweight, &dbias, &dout, &inp, &weight}, {}, {&mean, &rstd});
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(dinp, N * C, "layernorm_backward", "dinp");
  require_numel(dout, N * C, "layernorm_backward", "dout");
  require_numel(dweight, C, "layernorm_backward", "dweight");
  require_numel(dbias, C, "layernorm_backward", "dbias");
  LayerNormParams p{N, C};
  p.dinp = mode;
  be.layernorm_backward(ptr(dinp), ptr(dweight), ptr(dbias), dout.raw(), inp.raw(), weight.raw(), mean.raw(),
                        rstd.raw(), p);
}

namespace {

// The shape checks both forwards share: weight [OC, IC], inp [..., IC], out [N, OC], bias [OC].
MatmulParams matmul_forward_shape(const char* op, const Tensor& out, const Tensor& inp, const Tensor& weight,
                                  const Tensor& bias) {
  GPTRAIN_CHECK(weight.ndim() == 2, "{}: weight shape {}", op, shape_string(weight.shape()));
  const int64_t OC = weight.dim(0), IC = weight.dim(1);
  GPTRAIN_CHECK(inp.dim(-1) == IC, "{}: input {} against weight {}", op, shape_string(inp.shape()),
                shape_string(weight.shape()));
  const int64_t N = inp.numel() / IC;
  require_numel(out, N * OC, op, "out");
  require_numel(bias, OC, op, "bias");
  return MatmulParams{N, IC, OC};
}

}  // namespace

void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias,
                    bool batch_invariant) {
  const OpTimer timer("matmul_forward");
  require_defined(out, "matmul_forward", "out");
  require_defined(inp, "matmul_forward", "inp");
  require_defined(weight, "matmul_forward", "weight");
  const Backend& be = select("matmul_forward", {&out, &inp, &weight, &bias});
  MatmulParams p = matmul_forward_shape("matmul_forward", out, inp, weight, bias);
  p.batch_invariant = batch_invariant;
  be.matmul_forward(out.raw(), inp.raw(), weight.raw(), cptr(bias), p);
}

void matmul_forward_half(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias) {
  const OpTimer timer("matmul_forward_half");
  require_defined(out, "matmul_forward_half", "out");
  require_defined(inp, "matmul_forward_half", "inp");
  require_defined(weight, "matmul_forward_half", "weight");
  GPTRAIN_CHECK(weight.dtype() == DType::F16 || weight.dtype() == DType::BF16,
                "matmul_forward_half: the weight is {}, not f16 or bf16", dtype_name(weight.dtype()));
  GPTRAIN_CHECK(weight.device() == out.device(), "matmul_forward_half: the weight is on {}, the output on {}",
                device_name(weight.device()), device_name(out.device()));
  const Backend& be = select("matmul_forward_half", {&out, &inp, &bias});
  MatmulParams p = matmul_forward_shape("matmul_forward_half", out, inp, weight, bias);
  p.batch_invariant = true;
  be.matmul_forward_half(out.raw(), inp.raw(), static_cast<const uint16_t*>(weight.raw()), weight.dtype(), cptr(bias), p);
}

void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                     const Tensor& inp, const Tensor& weight, InputGrad mode) {
  const OpTimer timer("matmul_backward");
  if (!dinp.defined() && !dweight.defined() && !dbias.defined()) return;
  require_defined(dout, "matmul_backward", "dout");
  require_defined(inp, "matmul_backward", "inp");
  require_defined(weight, "matmul_backward", "weight");
  const Backend& be = select("matmul_backward", {&dinp, &dweight, &dbias, &dout, &inp, &weight});
  const int64_t OC = weight.dim(0), IC = weight.dim(1), N = inp.numel() / IC;
  require_numel(dout, N * OC, "matmul_backward", "dout");
  require_numel(dinp, N * IC, "matmul_backward", "dinp");
  require_numel(dweight, OC * IC, "matmul_backward", "dweight");
  require_numel(dbias, OC, "matmul_backward", "dbias");
  MatmulParams p{N, IC, OC};
  p.dinp = mode;
  be.matmul_backward(ptr(dinp), ptr(dweight), ptr(dbias), dout.raw(), inp.raw(), weight.raw(), p);
}

namespace {
// Everything but the row count: OC is the Linear's output width.
LoraParams lora_params(int64_t OC, const Tensor& A, const Tensor& B, const LoraShape& shape, const char* op) {
  GPTRAIN_CHECK(A.ndim() == 2 && B.ndim() == 2, "{}: A {} and B {} must be matrices", op, shape_string(A.shape()),
                shape_string(B.shape()));
  const int S = static_cast<int>(shape.segments.size());
  GPTRAIN_CHECK(S >= 1 && S <= kMaxLoraSegments, "{}: {} segments (1 to {})", op, S, kMaxLoraSegments);
  LoraParams p{0, A.dim(1), OC, B.dim(1)};
  p.S = S;
  p.scaling = shape.scaling;
  GPTRAIN_CHECK(A.dim(0) == S * p.R, "{}: A {} is not [{} x rank {}, in]", op, shape_string(A.shape()), S, p.R);
  int64_t end = 0;
  for (int s = 0; s < S; ++s) {
    const LoraSegment& g = shape.segments[static_cast<size_t>(s)];
    GPTRAIN_CHECK(g.width >= 0 && g.col >= end && g.col + g.width <= p.OC,
                  "{}: segment {} (columns {} + {}) overlaps the previous one or leaves the {} outputs", op, s, g.col,
                  g.width, p.OC);
    p.col[s] = g.col;
    p.seg[s + 1] = p.seg[s] + g.width;
    end = g.col + g.width;
  }
  GPTRAIN_CHECK(p.seg[S] == B.dim(0), "{}: the segments cover {} outputs, B has {} rows", op, p.seg[S], B.dim(0));
  return p;
}

LoraParams lora_params(const Tensor& out, const Tensor& inp, const Tensor& A, const Tensor& B, const LoraShape& shape,
                       const char* op) {
  LoraParams p = lora_params(out.dim(-1), A, B, shape, op);
  GPTRAIN_CHECK(inp.dim(-1) == p.IC, "{}: input {} against A {}", op, shape_string(inp.shape()), shape_string(A.shape()));
  p.N = inp.numel() / p.IC;
  GPTRAIN_CHECK(out.numel() == p.N * p.OC, "{}: output {} for {} rows of input", op, shape_string(out.shape()), p.N);
  return p;
}
}  // namespace

void lora_forward(const Tensor& out, const Tensor& inp, const Tensor& A, const Tensor& B, const LoraShape& shape,
                  bool batch_invariant) {
  const OpTimer timer("lora_forward");
  require_defined(out, "lora_forward", "out");
  require_defined(inp, "lora_forward", "inp");
  require_defined(A, "lora_forward", "A");
  require_defined(B, "lora_forward", "B");
  const Backend& be = select("lora_forward", {&out, &inp, &A, &B});
  LoraParams p = lora_params(out, inp, A, B, shape, "lora_forward");
  p.batch_invariant = batch_invariant;
  be.lora_forward(out.raw(), inp.raw(), A.raw(), B.raw(), p);
}

void lora_backward(const Tensor& dinp, const Tensor& dA, const Tensor& dB, const Tensor& dout, const Tensor& inp,
                   const Tensor& A, const Tensor& B, const LoraShape& shape) {
  const OpTimer timer("lora_backward");
  if (!dinp.defined() && !dA.defined() && !dB.defined()) return;
  require_defined(dout, "lora_backward", "dout");
  require_defined(inp, "lora_backward", "inp");
  require_defined(A, "lora_backward", "A");
  require_defined(B, "lora_backward", "B");
  const Backend& be = select("lora_backward", {&dinp, &dA, &dB, &dout, &inp, &A, &B});
  const LoraParams p = lora_params(dout, inp, A, B, shape, "lora_backward");
  require_numel(dinp, p.N * p.IC, "lora_backward", "dinp");
  require_numel(dA, A.numel(), "lora_backward", "dA");
  require_numel(dB, B.numel(), "lora_backward", "dB");
  be.lora_backward(ptr(dinp), ptr(dA), ptr(dB), dout.raw(), inp.raw(), A.raw(), B.raw(), p);
}

void lora_merge(const Tensor& weight, const Tensor& A, const Tensor& B, const LoraShape& shape) {
  const OpTimer timer("lora_merge");
  require_defined(weight, "lora_merge", "weight");
  require_defined(A, "lora_merge", "A");
  require_defined(B, "lora_merge", "B");
  const Backend& be = select("lora_merge", {&weight, &A, &B});
  GPTRAIN_CHECK(weight.ndim() == 2, "lora_merge: weight {} is not a matrix", shape_string(weight.shape()));
  const LoraParams p = lora_params(weight.dim(0), A, B, shape, "lora_merge");
  GPTRAIN_CHECK(weight.dim(1) == p.IC, "lora_merge: weight {} against A {}", shape_string(weight.shape()),
                shape_string(A.shape()));
  be.lora_merge(weight.raw(), A.raw(), B.raw(), p);
}

namespace {
void check_shape(const AttentionShape& s, const char* op) {
  GPTRAIN_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0 && s.n_heads % s.n_kv_heads == 0,
                "{}: {} query heads do not group over {} key/value heads (head size {})", op, s.n_heads, s.n_kv_heads,
                s.head_dim);
}

AttentionParams attention_params(const Tensor& qkv, const AttentionShape& s, float dropout_p, uint64_t seed,
                                 const char* op) {
  check_shape(s, op);
  GPTRAIN_CHECK(qkv.ndim() == 3 && qkv.dim(2) == s.qkv_width(), "{}: qkv shape {} for {} + 2 x {} heads of {}", op,
                shape_string(qkv.shape()), s.n_heads, s.n_kv_heads, s.head_dim);
  return AttentionParams{qkv.dim(0), qkv.dim(1), s.n_heads, s.n_kv_heads, s.head_dim, dropout_p, seed};
}
}  // namespace

void attention_forward(const Tensor& out, const Tensor& stats, const Tensor& qkv, const AttentionShape& shape,
                       float dropout_p, uint64_t seed, uint64_t dropout_offset) {
  const OpTimer timer("attention_forward");
  require_defined(out, "attention_forward", "out");
  require_defined(stats, "attention_forward", "stats");
  require_defined(qkv, "attention_forward", "qkv");
  const Backend& be = select("attention_forward", {&out, &qkv}, {}, {&stats});
  AttentionParams p = attention_params(qkv, shape, dropout_p, seed, "attention_forward");
  p.dropout_offset = dropout_offset;
  require_numel(out, p.B * p.T * p.NH * p.HS, "attention_forward", "out");
  require_numel(stats, p.B * p.NH * p.T * 2, "attention_forward", "stats");
  be.attention_forward(out.raw(), stats.raw(), qkv.raw(), p);
}

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& stats,
                        const AttentionShape& shape, float dropout_p, uint64_t seed, InputGrad mode,
                        uint64_t dropout_offset) {
  const OpTimer timer("attention_backward");
  if (!dqkv.defined()) return;
  require_defined(dout, "attention_backward", "dout");
  require_defined(qkv, "attention_backward", "qkv");
  require_defined(stats, "attention_backward", "stats");
  const Backend& be = select("attention_backward", {&dqkv, &dout, &qkv}, {}, {&stats});
  AttentionParams p = attention_params(qkv, shape, dropout_p, seed, "attention_backward");
  p.dinp = mode;
  p.dropout_offset = dropout_offset;
  require_numel(dqkv, qkv.numel(), "attention_backward", "dqkv");
  require_numel(dout, p.B * p.T * p.NH * p.HS, "attention_backward", "dout");
  require_numel(stats, p.B * p.NH * p.T * 2, "attention_backward", "stats");
  be.attention_backward(dqkv.raw(), dout.raw(), qkv.raw(), stats.raw(), p);
}

void attention_decode_forward(const Tensor& out, const Tensor& qkv, std::span<const DecodeSequence> sequences,
                              const AttentionShape& shape) {
  const OpTimer timer("attention_decode_forward");
  require_defined(out, "attention_decode_forward", "out");
  require_defined(qkv, "attention_decode_forward", "qkv");
  check_shape(shape, "attention_decode_forward");
  const Backend& be = select("attention_decode_forward", {&out, &qkv});
  const int64_t W = shape.qkv_width(), KV = shape.n_kv_heads * shape.head_dim;
  GPTRAIN_CHECK(qkv.dim(-1) == W, "attention_decode: qkv {} for {} + 2 x {} heads of {}", shape_string(qkv.shape()),
                shape.n_heads, shape.n_kv_heads, shape.head_dim);
  const int64_t R = qkv.numel() / W;
  require_numel(out, R * shape.n_heads * shape.head_dim, "attention_decode_forward", "out");
  std::vector<DecodeSeq> seqs;
  seqs.reserve(sequences.size());
  int64_t row = 0;
  for (const DecodeSequence& s : sequences) {
    require_defined(s.k_cache, "attention_decode_forward", "k_cache");
    require_defined(s.v_cache, "attention_decode_forward", "v_cache");
    GPTRAIN_CHECK(s.k_cache.device() == qkv.device() && s.k_cache.dtype() == qkv.dtype() &&
                      s.v_cache.shape() == s.k_cache.shape() && s.v_cache.dtype() == s.k_cache.dtype() &&
                      s.k_cache.ndim() == 2 && s.k_cache.dim(1) == KV,
                  "attention_decode: cache {} {} for qkv {} {}", shape_string(s.k_cache.shape()),
                  dtype_name(s.k_cache.dtype()), shape_string(qkv.shape()), dtype_name(qkv.dtype()));
    const int64_t max_T = s.k_cache.dim(0);
    if (s.past < 0 || s.rows < 1 || s.past + s.rows > max_T)
      fail("the KV cache holds {} positions; {} + {} do not fit", max_T, s.past, s.rows);
    seqs.push_back(DecodeSeq{s.k_cache.raw(), s.v_cache.raw(), max_T, s.past, row, s.rows});
    row += s.rows;
  }
  GPTRAIN_CHECK(row == R, "attention_decode: the sequences cover {} rows of {}", row, R);
  be.attention_decode_forward(out.raw(), qkv.raw(), seqs.data(),
                              AttentionDecodeParams{shape.n_heads, shape.n_kv_heads, shape.head_dim,
                                                    static_cast<int64_t>(seqs.size())});
}

void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& weight, float eps) {
  const OpTimer timer("rmsnorm_forward");
  for (const auto& [t, what] : {std::pair{&out, "out"}, {&rstd, "rstd"}, {&inp, "inp"}, {&weight, "weight"}})
    require_defined(*t, "rmsnorm_forward", what);
  const Backend& be = select("rmsnorm_forward", {&out, &inp, &weight}, {}, {&rstd});
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(out, N * C, "rmsnorm_forward", "out");
  require_numel(rstd, N, "rmsnorm_forward", "rstd");
  require_numel(weight, C, "rmsnorm_forward", "weight");
  be.rmsnorm_forward(out.raw(), rstd.raw(), inp.raw(), weight.raw(), RmsNormParams{N, C, eps});
}

void rmsnorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight, const Tensor& rstd, InputGrad mode) {
  const OpTimer timer("rmsnorm_backward");
  if (!dinp.defined() && !dweight.defined()) return;
  for (const auto& [t, what] : {std::pair{&dout, "dout"}, {&inp, "inp"}, {&weight, "weight"}, {&rstd, "rstd"}})
    require_defined(*t, "rmsnorm_backward", what);
  const Backend& be = select("rmsnorm_backward", {&dinp, &dweight, &dout, &inp, &weight}, {}, {&rstd});
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(dinp, N * C, "rmsnorm_backward", "dinp");
  require_numel(dout, N * C, "rmsnorm_backward", "dout");
  require_numel(dweight, C, "rmsnorm_backward", "dweight");
  require_numel(rstd, N, "rmsnorm_backward", "rstd");
  GPTRAIN_CHECK(!(dinp.defined() && dinp.raw() == dout.raw() && mode == InputGrad::Accumulate),
                "rmsnorm_backward: in place needs write mode");
  RmsNormParams p{N, C};
  p.dinp = mode;
  be.rmsnorm_backward(ptr(dinp), ptr(dweight), dout.raw(), inp.raw(), weight.raw(), rstd.raw(), p);
}

namespace {
QkNormParams qk_params(const Tensor& qkv, const AttentionShape& s, const char* op) {
  check_shape(s, op);
  const int64_t W = s.qkv_width();
  GPTRAIN_CHECK(qkv.dim(-1) == W, "{}: qkv {} for {} + 2 x {} heads of {}", op, shape_string(qkv.shape()), s.n_heads,
                s.n_kv_heads, s.head_dim);
  return QkNormParams{qkv.numel() / W, s.n_heads, s.n_kv_heads, s.head_dim};
}
}  // namespace

void qk_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp, const Tensor& q_weight,
                     const Tensor& k_weight, const AttentionShape& shape, float eps) {
  const OpTimer timer("qk_norm_forward");
  for (const auto& [t, what] : {std::pair{&out, "out"}, {&rstd, "rstd"}, {&inp, "inp"}, {&q_weight, "q_weight"},
                                {&k_weight, "k_weight"}})
    require_defined(*t, "qk_norm_forward", what);
  const Backend& be = select("qk_norm_forward", {&out, &inp, &q_weight, &k_weight}, {}, {&rstd});
  QkNormParams p = qk_params(inp, shape, "qk_norm_forward");
  p.eps = eps;
  require_numel(out, inp.numel(), "qk_norm_forward", "out");
  require_numel(rstd, p.N * (p.NH + p.NKV), "qk_norm_forward", "rstd");
  require_numel(q_weight, p.HS, "qk_norm_forward", "q_weight");
  require_numel(k_weight, p.HS, "qk_norm_forward", "k_weight");
  GPTRAIN_CHECK(out.raw() != inp.raw(), "qk_norm_forward: the input is kept for backward; out must be another buffer");
  be.qk_norm_forward(out.raw(), rstd.raw(), inp.raw(), q_weight.raw(), k_weight.raw(), p);
}

void qk_norm_backward(const Tensor& dinp, const Tensor& dq_weight, const Tensor& dk_weight, const Tensor& dout,
                      const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight, const Tensor& rstd,
                      const AttentionShape& shape, InputGrad mode) {
  const OpTimer timer("qk_norm_backward");
  if (!dinp.defined() && !dq_weight.defined() && !dk_weight.defined()) return;
  for (const auto& [t, what] : {std::pair{&dout, "dout"}, {&inp, "inp"}, {&q_weight, "q_weight"},
                                {&k_weight, "k_weight"}, {&rstd, "rstd"}})
    require_defined(*t, "qk_norm_backward", what);
  const Backend& be =
      select("qk_norm_backward", {&dinp, &dq_weight, &dk_weight, &dout, &inp, &q_weight, &k_weight}, {}, {&rstd});
  QkNormParams p = qk_params(inp, shape, "qk_norm_backward");
  p.dinp = mode;
  require_numel(dinp, inp.numel(), "qk_norm_backward", "dinp");
  require_numel(dout, inp.numel(), "qk_norm_backward", "dout");
  require_numel(dq_weight, p.HS, "qk_norm_backward", "dq_weight");
  require_numel(dk_weight, p.HS, "qk_norm_backward", "dk_weight");
  require_numel(rstd, p.N * (p.NH + p.NKV), "qk_norm_backward", "rstd");
  GPTRAIN_CHECK(!(dinp.defined() && dinp.raw() == dout.raw() && mode == InputGrad::Accumulate),
                "qk_norm_backward: in place needs write mode");
  be.qk_norm_backward(ptr(dinp), ptr(dq_weight), ptr(dk_weight), dout.raw(), inp.raw(), q_weight.raw(), k_weight.raw(),
                      rstd.raw(), p);
}

void rope_table(const Tensor& cos, const Tensor& sin, const Tensor& inv_freq, const Tensor& positions, int64_t T,
                int64_t pos_offset) {
  const OpTimer timer("rope_table");
  require_defined(cos, "rope_table", "cos");
  require_defined(sin, "rope_table", "sin");
  require_defined(inv_freq, "rope_table", "inv_freq");
  const Backend& be = select("rope_table", {&cos, &sin, &inv_freq}, {&positions});
  const int64_t half = inv_freq.numel(), N = cos.numel() / std::max<int64_t>(half, 1);
  require_numel(cos, N * half, "rope_table", "cos");
  require_numel(sin, N * half, "rope_table", "sin");
  require_numel(positions, N, "rope_table", "positions");
  GPTRAIN_CHECK(positions.defined() || T > 0, "rope_table: implicit positions need T > 0");
  be.rope_table(cos.raw(), sin.raw(), inv_freq.raw(), ids(positions), RopeTableParams{N, T, half, pos_offset});
}

namespace {
RopeParams rope_params(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const AttentionShape& s,
                       const char* op) {
  check_shape(s, op);
  GPTRAIN_CHECK(s.head_dim % 2 == 0, "{}: rotary positions need an even head size, got {}", op, s.head_dim);
  const int64_t W = s.qkv_width();
  GPTRAIN_CHECK(qkv.dim(-1) == W, "{}: qkv {} for {} + 2 x {} heads of {}", op, shape_string(qkv.shape()), s.n_heads,
                s.n_kv_heads, s.head_dim);
  const RopeParams p{qkv.numel() / W, s.n_heads, s.n_kv_heads, s.head_dim};
  require_numel(cos, p.N * p.HS / 2, op, "cos");
  require_numel(sin, p.N * p.HS / 2, op, "sin");
  return p;
}
}  // namespace

void rope_forward(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const AttentionShape& shape) {
  const OpTimer timer("rope_forward");
  for (const auto& [t, what] : {std::pair{&qkv, "qkv"}, {&cos, "cos"}, {&sin, "sin"}}) require_defined(*t, "rope_forward", what);
  const Backend& be = select("rope_forward", {&qkv}, {}, {&cos, &sin});
  be.rope_forward(qkv.raw(), cos.raw(), sin.raw(), rope_params(qkv, cos, sin, shape, "rope_forward"));
}

void rope_backward(const Tensor& dqkv, const Tensor& cos, const Tensor& sin, const AttentionShape& shape) {
  const OpTimer timer("rope_backward");
  if (!dqkv.defined()) return;
  require_defined(cos, "rope_backward", "cos");
  require_defined(sin, "rope_backward", "sin");
  const Backend& be = select("rope_backward", {&dqkv}, {}, {&cos, &sin});
  be.rope_backward(dqkv.raw(), cos.raw(), sin.raw(), rope_params(dqkv, cos, sin, shape, "rope_backward"));
}

void swiglu_forward(const Tensor& out, const Tensor& inp) {
  const OpTimer timer("swiglu_forward");
  require_defined(out, "swiglu_forward", "out");
  require_defined(inp, "swiglu_forward", "inp");
  const Backend& be = select("swiglu_forward", {&out, &inp});
  GPTRAIN_CHECK(inp.dim(-1) % 2 == 0, "swiglu_forward: input {} is not gate | up", shape_string(inp.shape()));
  const int64_t M = inp.dim(-1) / 2, N = inp.numel() / (2 * M);
  require_numel(out, N * M, "swiglu_forward", "out");
  be.swiglu_forward(out.raw(), inp.raw(), SwigluParams{N, M});
}

void swiglu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout, InputGrad mode) {
  const OpTimer timer("swiglu_backward");
  if (!dinp.defined()) return;
  require_defined(inp, "swiglu_backward", "inp");
  require_defined(dout, "swiglu_backward", "dout");
  const Backend& be = select("swiglu_backward", {&dinp, &inp, &dout});
  GPTRAIN_CHECK(inp.dim(-1) % 2 == 0, "swiglu_backward: input {} is not gate | up", shape_string(inp.shape()));
  const int64_t M = inp.dim(-1) / 2, N = inp.numel() / (2 * M);
  require_numel(dinp, inp.numel(), "swiglu_backward", "dinp");
  require_numel(dout, N * M, "swiglu_backward", "dout");
  be.swiglu_backward(dinp.raw(), inp.raw(), dout.raw(), SwigluParams{N, M, mode});
}

void gelu_forward(const Tensor& out, const Tensor& inp) {
  const OpTimer timer("gelu_forward");
  require_defined(out, "gelu_forward", "out");
  require_defined(inp, "gelu_forward", "inp");
  const Backend& be = select("gelu_forward", {&out, &inp});
  require_numel(out, inp.numel(), "gelu_forward", "out");
  be.gelu_forward(out.raw(), inp.raw(), GeluParams{inp.numel()});
}

void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout, InputGrad mode) {
  const OpTimer timer("gelu_backward");
  if (!dinp.defined()) return;
  require_defined(inp, "gelu_backward", "inp");
  require_defined(dout, "gelu_backward", "dout");
  const Backend& be = select("gelu_backward", {&dinp, &inp, &dout});
  require_numel(dinp, inp.numel(), "gelu_backward", "dinp");
  require_numel(dout, inp.numel(), "gelu_backward", "dout");
  be.gelu_backward(dinp.raw(), inp.raw(), dout.raw(), GeluParams{inp.numel(), mode});
}

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  const OpTimer timer("residual_forward");
  require_defined(out, "residual_forward", "out");
  require_defined(a, "residual_forward", "a");
  require_defined(b, "residual_forward", "b");
  const Backend& be = select("residual_forward", {&out, &a, &b});
  require_numel(b, a.numel(), "residual_forward", "b");
  require_numel(out, a.numel(), "residual_forward", "out");
  be.residual_forward(out.raw(), a.raw(), b.raw(), ResidualParams{a.numel()});
}

void residual_backward(const Tensor& da, const Tensor& db, const Tensor& dout) {
  const OpTimer timer("residual_backward");
  if (!da.defined() && !db.defined()) return;
  require_defined(dout, "residual_backward", "dout");
  const Backend& be = select("residual_backward", {&da, &db, &dout});
  require_numel(da, dout.numel(), "residual_backward", "da");
  require_numel(db, dout.numel(), "residual_backward", "db");
  be.residual_backward(ptr(da), ptr(db), dout.raw(), ResidualParams{dout.numel()});
}

namespace {
CrossEntropyParams ce_params(const Tensor& logits, const Tensor& targets, int32_t ignore_index) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  GPTRAIN_CHECK(targets.numel() == N, "cross_entropy: {} targets for {} rows", targets.numel(), N);
  check_ids(targets, V, "target", ignore_index);
  return CrossEntropyParams{N, V, ignore_index};
}
}  // namespace

CrossEntropyResult cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                         const Tensor& targets, int32_t ignore_index) {
  const OpTimer timer("cross_entropy_forward");
  require_defined(losses, "cross_entropy_forward", "losses");
  require_defined(lse, "cross_entropy_forward", "lse");
  require_defined(logits, "cross_entropy_forward", "logits");
  require_defined(targets, "cross_entropy_forward", "targets");
  const Backend& be = select("cross_entropy_forward", {&logits}, {&targets}, {&losses, &lse});
  const CrossEntropyParams p = ce_params(logits, targets, ignore_index);
  require_numel(losses, p.N, "cross_entropy_forward", "losses");
  require_numel(lse, p.N, "cross_entropy_forward", "lse");
  be.cross_entropy_forward(losses.raw(), lse.raw(), logits.raw(), ids(targets), p);
  const LossTotal total = be.loss_total(losses.raw(), ids(targets), p);
  return {total.counted ? total.sum / static_cast<double>(total.counted) : 0.0, total.counted};
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse, const Tensor& targets,
                            float dloss, int32_t ignore_index) {
  const OpTimer timer("cross_entropy_backward");
  require_defined(dlogits, "cross_entropy_backward", "dlogits");
  require_defined(logits, "cross_entropy_backward", "logits");
  require_defined(lse, "cross_entropy_backward", "lse");
  require_defined(targets, "cross_entropy_backward", "targets");
  const Backend& be = select("cross_entropy_backward", {&dlogits, &logits}, {&targets}, {&lse});
  CrossEntropyParams p = ce_params(logits, targets, ignore_index);
  require_numel(dlogits, logits.numel(), "cross_entropy_backward", "dlogits");
  // The mean's gradient: dloss / counted on every counted row.
  const LossTotal counted = be.loss_total(nullptr, ids(targets), p);
  p.dloss_scale = counted.counted ? dloss / static_cast<float>(counted.counted) : 0.0f;
  be.cross_entropy_backward(dlogits.raw(), logits.raw(), lse.raw(), ids(targets), nullptr, p);
}

void cross_entropy_backward_rows(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                                 const Tensor& targets, const Tensor& row_dloss, int32_t ignore_index) {
  const OpTimer timer("cross_entropy_backward");
  require_defined(dlogits, "cross_entropy_backward_rows", "dlogits");
  require_defined(logits, "cross_entropy_backward_rows", "logits");
  require_defined(lse, "cross_entropy_backward_rows", "lse");
  require_defined(targets, "cross_entropy_backward_rows", "targets");
  require_defined(row_dloss, "cross_entropy_backward_rows", "row_dloss");
  const Backend& be = select("cross_entropy_backward_rows", {&dlogits, &logits}, {&targets}, {&lse, &row_dloss});
  const CrossEntropyParams p = ce_params(logits, targets, ignore_index);
  require_numel(dlogits, logits.numel(), "cross_entropy_backward_rows", "dlogits");
  require_numel(row_dloss, p.N, "cross_entropy_backward_rows", "row_dloss");
  be.cross_entropy_backward(dlogits.raw(), logits.raw(), lse.raw(), ids(targets), row_dloss.raw(), p);
}

void pool_forward(const Tensor& out, const Tensor& inp, PoolMode mode) {
  const OpTimer timer("pool_forward");
  require_defined(out, "pool_forward", "out");
  require_defined(inp, "pool_forward", "inp");
  const Backend& be = select("pool_forward", {&out, &inp});
  GPTRAIN_CHECK(inp.ndim() == 3, "pool_forward: input shape {}", shape_string(inp.shape()));
  const PoolParams p{inp.dim(0), inp.dim(1), inp.dim(2), mode};
  require_numel(out, p.B * p.C, "pool_forward", "out");
  be.pool_forward(out.raw(), inp.raw(), p);
}

void pool_backward(const Tensor& dinp, const Tensor& dout, PoolMode mode, InputGrad mode_dinp) {
  const OpTimer timer("pool_backward");
  if (!dinp.defined()) return;
  require_defined(dout, "pool_backward", "dout");
  const Backend& be = select("pool_backward", {&dinp, &dout});
  GPTRAIN_CHECK(dinp.ndim() == 3, "pool_backward: dinp shape {}", shape_string(dinp.shape()));
  const PoolParams p{dinp.dim(0), dinp.dim(1), dinp.dim(2), mode, mode_dinp};
  require_numel(dout, p.B * p.C, "pool_backward", "dout");
  be.pool_backward(dinp.raw(), dout.raw(), p);
}

void gather_rows_forward(const Tensor& out, const Tensor& inp, const Tensor& rows) {
  const OpTimer timer("gather_rows_forward");
  require_defined(out, "gather_rows_forward", "out");
  require_defined(inp, "gather_rows_forward", "inp");
  require_defined(rows, "gather_rows_forward", "rows");
  const Backend& be = select("gather_rows_forward", {&out, &inp}, {&rows});
  const int64_t C = inp.dim(-1), N = inp.numel() / C, R = rows.numel();
  require_numel(out, R * C, "gather_rows_forward", "out");
  check_ids(rows, N, "row");
  be.gather_rows_forward(out.raw(), inp.raw(), ids(rows), GatherRowsParams{R, N, C});
}

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWParams& params) {
  const OpTimer timer("adamw_step");
  for (const auto& [t, what] : {std::pair{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}})
    require_defined(*t, "adamw_step", what);
  const Backend& be = select("adamw_step", {&param, &grad, &m, &v});
  require_numel(grad, param.numel(), "adamw_step", "grad");
  require_numel(m, param.numel(), "adamw_step", "m");
  require_numel(v, param.numel(), "adamw_step", "v");
  GPTRAIN_CHECK(params.step >= 1, "adamw_step: step {} (counts from 1)", params.step);
  AdamWParams p = params;
  p.n = param.numel();
  be.adamw_step(param.raw(), grad.raw(), m.raw(), v.raw(), p);
}

void adamw_step_mixed(const Tensor& master, const Tensor& copy, const Tensor& grad, const Tensor& m, const Tensor& v,
                      const AdamWParams& params) {
  const OpTimer timer("adamw_step");
  for (const auto& [t, what] : {std::pair{&master, "master"}, {&copy, "copy"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}})
    require_defined(*t, "adamw_step_mixed", what);
  // The master weights and moments are the half-precision gradients' statistics type (float32).
  const Backend& be = select("adamw_step_mixed", {&grad, &copy}, {}, {&master, &m, &v});
  GPTRAIN_CHECK(copy.dtype() == DType::BF16, "adamw_step_mixed: the copy is {}, not bf16", dtype_name(copy.dtype()));
  for (const auto& [t, what] : {std::pair{&copy, "copy"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}})
    require_numel(*t, master.numel(), "adamw_step_mixed", what);
  GPTRAIN_CHECK(params.step >= 1, "adamw_step_mixed: step {} (counts from 1)", params.step);
  AdamWParams p = params;
  p.n = master.numel();
  be.adamw_step_mixed(master.device_data<float>(), copy.device_data<uint16_t>(), grad.raw(), m.device_data<float>(),
                      v.device_data<float>(), p);
}

double sum_squares(const Tensor& x) {
  const OpTimer timer("sum_squares");
  require_defined(x, "sum_squares", "x");
  return select("sum_squares", {&x}).sum_squares(x.raw(), x.numel());
}

void scale_(const Tensor& x, float factor) {
  const OpTimer timer("scale_");
  require_defined(x, "scale_", "x");
  select("scale_", {&x}).scale(x.raw(), factor, x.numel());
}

}  // namespace gptrain::ops
