#include "kernels/ops.h"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu.h"
#include "util/error.h"

namespace gptrain::ops {

using namespace gptrain::kernels;

namespace {

float* ptr(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// Every defined tensor must live on the CPU: the CUDA backend is not part of this build, and a
// tensor on another device reaching here would be a bug in the caller.
void require_cpu(std::initializer_list<const Tensor*> tensors, const char* op) {
  for (const Tensor* t : tensors)
    if (t->defined() && t->device() != Device::CPU)
      fail("{}: tensor on {} but gptrain was built without CUDA support", op, device_name(t->device()));
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

void embedding_forward(const Tensor& out, std::span<const int32_t> tokens, const Tensor& wte,
                       const Tensor& wpe, int64_t pos_offset) {
  const OpTimer timer("embedding_forward");
  require_cpu({&out, &wte, &wpe}, "embedding_forward");
  GPTRAIN_CHECK(out.ndim() == 3 && wte.ndim() == 2 && wpe.ndim() == 2 && wte.dim(1) == out.dim(2) &&
                    wpe.dim(1) == out.dim(2),
                "embedding_forward: out {} wte {} wpe {}", shape_string(out.shape()),
                shape_string(wte.shape()), shape_string(wpe.shape()));
  const EmbeddingParams p{out.dim(0), out.dim(1), out.dim(2), wte.dim(0), wpe.dim(0), pos_offset};
  GPTRAIN_CHECK(static_cast<int64_t>(tokens.size()) == p.B * p.T, "embedding_forward: {} tokens for B*T={}",
                tokens.size(), p.B * p.T);
  if (pos_offset < 0 || pos_offset + p.T > p.n_positions)
    fail("positions {}..{} exceed the model's context length {}", pos_offset, pos_offset + p.T - 1,
         p.n_positions);
  for (int32_t id : tokens)
    if (id < 0 || id >= p.V) fail("token id {} is out of range for a vocabulary of {}", id, p.V);
  cpu::embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), p);
}

void embedding_backward(const Tensor& dwte, const Tensor& dwpe, const Tensor& dout,
                        std::span<const int32_t> tokens, int64_t pos_offset) {
  const OpTimer timer("embedding_backward");
  require_cpu({&dwte, &dwpe, &dout}, "embedding_backward");
  if (!dwte.defined() && !dwpe.defined()) return;
  const Tensor& table = dwte.defined() ? dwte : dwpe;
  const EmbeddingParams p{dout.dim(0), dout.dim(1), dout.dim(2), dwte.defined() ? dwte.dim(0) : 0,
                          dwpe.defined() ? dwpe.dim(0) : 0, pos_offset};
  GPTRAIN_CHECK(table.dim(1) == p.C, "embedding_backward: table {} for dout {}", shape_string(table.shape()),
                shape_string(dout.shape()));
  GPTRAIN_CHECK(static_cast<int64_t>(tokens.size()) == p.B * p.T, "embedding_backward: token count");
  cpu::embedding_backward(ptr(dwte), ptr(dwpe), dout.data(), tokens.data(), p);
}

void dropout_forward(const Tensor& out, const Tensor& inp, float p, uint64_t seed) {
  const OpTimer timer("dropout_forward");
  require_cpu({&out, &inp}, "dropout_forward");
  require_numel(out, inp.numel(), "dropout_forward", "out");
  GPTRAIN_CHECK(p >= 0.0f && p <= 1.0f, "dropout probability {} outside [0, 1]", p);
  if (p == 0.0f) {
    if (out.data() != inp.data()) out.copy_from(inp);
    return;
  }
  cpu::dropout_forward(out.data(), inp.data(), DropoutParams{inp.numel(), p, seed});
}

void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, uint64_t seed) {
  const OpTimer timer("dropout_backward");
  require_cpu({&dinp, &dout}, "dropout_backward");
  if (!dinp.defined()) return;
  require_numel(dinp, dout.numel(), "dropout_backward", "dinp");
  if (p == 0.0f) {
    cpu::residual_backward(dinp.data(), nullptr, dout.data(), ResidualParams{dout.numel()});
    return;
  }
  cpu::dropout_backward(dinp.data(), dout.data(), DropoutParams{dout.numel(), p, seed});
}

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps) {
  const OpTimer timer("layernorm_forward");
  require_cpu({&out, &mean, &rstd, &inp, &weight, &bias}, "layernorm_forward");
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(out, N * C, "layernorm_forward", "out");
  require_numel(mean, N, "layernorm_forward", "mean");
  require_numel(rstd, N, "layernorm_forward", "rstd");
  require_numel(weight, C, "layernorm_forward", "weight");
  require_numel(bias, C, "layernorm_forward", "bias");
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(),
                         LayerNormParams{N, C, eps});
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight,
                        const Tensor& mean, const Tensor& rstd) {
  const OpTimer timer("layernorm_backward");
  require_cpu({&dinp, &dweight, &dbias, &dout, &inp, &weight, &mean, &rstd}, "layernorm_backward");
  const int64_t C = inp.dim(-1), N = inp.numel() / C;
  require_numel(dinp, N * C, "layernorm_backward", "dinp");
  require_numel(dout, N * C, "layernorm_backward", "dout");
  require_numel(dweight, C, "layernorm_backward", "dweight");
  require_numel(dbias, C, "layernorm_backward", "dbias");
  cpu::layernorm_backward(ptr(dinp), ptr(dweight), ptr(dbias), dout.data(), inp.data(), weight.data(),
                          mean.data(), rstd.data(), LayerNormParams{N, C});
}

void matmul_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias) {
  const OpTimer timer("matmul_forward");
  require_cpu({&out, &inp, &weight, &bias}, "matmul_forward");
  GPTRAIN_CHECK(weight.ndim() == 2, "matmul_forward: weight shape {}", shape_string(weight.shape()));
  const int64_t OC = weight.dim(0), IC = weight.dim(1);
  GPTRAIN_CHECK(inp.dim(-1) == IC, "matmul_forward: input {} against weight {}", shape_string(inp.shape()),
                shape_string(weight.shape()));
  const int64_t N = inp.numel() / IC;
  require_numel(out, N * OC, "matmul_forward", "out");
  require_numel(bias, OC, "matmul_forward", "bias");
  cpu::matmul_forward(out.data(), inp.data(), weight.data(), ptr(bias), MatmulParams{N, IC, OC});
}

void matmul_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight) {
  const OpTimer timer("matmul_backward");
  require_cpu({&dinp, &dweight, &dbias, &dout, &inp, &weight}, "matmul_backward");
  const int64_t OC = weight.dim(0), IC = weight.dim(1), N = inp.numel() / IC;
  require_numel(dout, N * OC, "matmul_backward", "dout");
  require_numel(dinp, N * IC, "matmul_backward", "dinp");
  require_numel(dweight, OC * IC, "matmul_backward", "dweight");
  require_numel(dbias, OC, "matmul_backward", "dbias");
  cpu::matmul_backward(ptr(dinp), ptr(dweight), ptr(dbias), dout.data(), inp.data(), weight.data(),
                       MatmulParams{N, IC, OC});
}

namespace {
AttentionParams attention_params(const Tensor& qkv, int64_t n_head, float dropout_p, uint64_t seed) {
  GPTRAIN_CHECK(qkv.ndim() == 3 && qkv.dim(2) % 3 == 0, "attention: qkv shape {}", shape_string(qkv.shape()));
  const int64_t C = qkv.dim(2) / 3;
  GPTRAIN_CHECK(n_head > 0 && C % n_head == 0, "attention: {} channels do not split into {} heads", C, n_head);
  return AttentionParams{qkv.dim(0), qkv.dim(1), n_head, C / n_head, dropout_p, seed};
}
}  // namespace

void attention_forward(const Tensor& out, const Tensor& stats, const Tensor& qkv, int64_t n_head,
                       float dropout_p, uint64_t seed) {
  const OpTimer timer("attention_forward");
  require_cpu({&out, &stats, &qkv}, "attention_forward");
  const AttentionParams p = attention_params(qkv, n_head, dropout_p, seed);
  require_numel(out, p.B * p.T * p.NH * p.HS, "attention_forward", "out");
  require_numel(stats, p.B * p.NH * p.T * 2, "attention_forward", "stats");
  cpu::attention_forward(out.data(), stats.data(), qkv.data(), p);
}

void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& stats,
                        int64_t n_head, float dropout_p, uint64_t seed) {
  const OpTimer timer("attention_backward");
  require_cpu({&dqkv, &dout, &qkv, &stats}, "attention_backward");
  const AttentionParams p = attention_params(qkv, n_head, dropout_p, seed);
  require_numel(dqkv, qkv.numel(), "attention_backward", "dqkv");
  require_numel(dout, p.B * p.T * p.NH * p.HS, "attention_backward", "dout");
  require_numel(stats, p.B * p.NH * p.T * 2, "attention_backward", "stats");
  cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), stats.data(), p);
}

void attention_decode_forward(const Tensor& out, const Tensor& qkv, const Tensor& k_cache, const Tensor& v_cache,
                              int64_t n_head, int64_t past) {
  const OpTimer timer("attention_decode_forward");
  require_cpu({&out, &qkv, &k_cache, &v_cache}, "attention_decode_forward");
  GPTRAIN_CHECK(qkv.ndim() == 3 && qkv.dim(2) % 3 == 0 && k_cache.ndim() == 3, "attention_decode: qkv {} cache {}",
                shape_string(qkv.shape()), shape_string(k_cache.shape()));
  const int64_t B = qkv.dim(0), Tn = qkv.dim(1), C = qkv.dim(2) / 3, max_T = k_cache.dim(1);
  GPTRAIN_CHECK(k_cache.dim(0) == B && k_cache.dim(2) == C && v_cache.shape() == k_cache.shape(),
                "attention_decode: cache {} for qkv {}", shape_string(k_cache.shape()), shape_string(qkv.shape()));
  GPTRAIN_CHECK(n_head > 0 && C % n_head == 0, "attention_decode: {} channels, {} heads", C, n_head);
  if (past < 0 || past + Tn > max_T) fail("the KV cache holds {} positions; {} + {} do not fit", max_T, past, Tn);
  require_numel(out, B * Tn * C, "attention_decode_forward", "out");
  // append k and v of the new positions
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const float* row = qkv.data() + (b * Tn + t) * 3 * C;
      std::copy(row + C, row + 2 * C, k_cache.data() + (b * max_T + past + t) * C);
      std::copy(row + 2 * C, row + 3 * C, v_cache.data() + (b * max_T + past + t) * C);
    }
  cpu::attention_decode_forward(out.data(), qkv.data(), k_cache.data(), v_cache.data(),
                                AttentionDecodeParams{B, Tn, n_head, C / n_head, past, max_T});
}

void gelu_forward(const Tensor& out, const Tensor& inp) {
  const OpTimer timer("gelu_forward");
  require_cpu({&out, &inp}, "gelu_forward");
  require_numel(out, inp.numel(), "gelu_forward", "out");
  cpu::gelu_forward(out.data(), inp.data(), GeluParams{inp.numel()});
}

void gelu_backward(const Tensor& dinp, const Tensor& inp, const Tensor& dout) {
  const OpTimer timer("gelu_backward");
  require_cpu({&dinp, &inp, &dout}, "gelu_backward");
  require_numel(dinp, inp.numel(), "gelu_backward", "dinp");
  require_numel(dout, inp.numel(), "gelu_backward", "dout");
  cpu::gelu_backward(dinp.data(), inp.data(), dout.data(), GeluParams{inp.numel()});
}

void residual_forward(const Tensor& out, const Tensor& a, const Tensor& b) {
  const OpTimer timer("residual_forward");
  require_cpu({&out, &a, &b}, "residual_forward");
  require_numel(b, a.numel(), "residual_forward", "b");
  require_numel(out, a.numel(), "residual_forward", "out");
  cpu::residual_forward(out.data(), a.data(), b.data(), ResidualParams{a.numel()});
}

void residual_backward(const Tensor& da, const Tensor& db, const Tensor& dout) {
  const OpTimer timer("residual_backward");
  require_cpu({&da, &db, &dout}, "residual_backward");
  require_numel(da, dout.numel(), "residual_backward", "da");
  require_numel(db, dout.numel(), "residual_backward", "db");
  cpu::residual_backward(ptr(da), ptr(db), dout.data(), ResidualParams{dout.numel()});
}

namespace {
CrossEntropyParams ce_params(const Tensor& logits, std::span<const int32_t> targets, int32_t ignore_index) {
  const int64_t V = logits.dim(-1), N = logits.numel() / V;
  GPTRAIN_CHECK(static_cast<int64_t>(targets.size()) == N, "cross_entropy: {} targets for {} rows",
                targets.size(), N);
  for (int32_t t : targets)
    if (t != ignore_index && (t < 0 || t >= V))
      fail("target id {} is out of range for {} classes (and is not the ignore index {})", t, V, ignore_index);
  return CrossEntropyParams{N, V, ignore_index};
}
}  // namespace

CrossEntropyResult cross_entropy_forward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                         std::span<const int32_t> targets, int32_t ignore_index) {
  const OpTimer timer("cross_entropy_forward");
  require_cpu({&losses, &lse, &logits}, "cross_entropy_forward");
  const CrossEntropyParams p = ce_params(logits, targets, ignore_index);
  require_numel(losses, p.N, "cross_entropy_forward", "losses");
  require_numel(lse, p.N, "cross_entropy_forward", "lse");
  cpu::cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), p);
  double sum = 0.0;
  int64_t counted = 0;
  for (int64_t r = 0; r < p.N; ++r)
    if (targets[r] != ignore_index) {
      sum += losses[r];
      ++counted;
    }
  return {counted ? sum / static_cast<double>(counted) : 0.0, counted};
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            std::span<const int32_t> targets, float dloss, int32_t ignore_index) {
  const OpTimer timer("cross_entropy_backward");
  require_cpu({&dlogits, &logits, &lse}, "cross_entropy_backward");
  const CrossEntropyParams p = ce_params(logits, targets, ignore_index);
  require_numel(dlogits, logits.numel(), "cross_entropy_backward", "dlogits");
  int64_t counted = 0;
  for (int32_t t : targets) counted += t != ignore_index;
  const float per_row = counted ? dloss / static_cast<float>(counted) : 0.0f;
  std::vector<float> drow(static_cast<size_t>(p.N), per_row);
  cpu::cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), drow.data(), p);
}

void pool_forward(const Tensor& out, const Tensor& inp, PoolMode mode) {
  const OpTimer timer("pool_forward");
  require_cpu({&out, &inp}, "pool_forward");
  GPTRAIN_CHECK(inp.ndim() == 3, "pool_forward: input shape {}", shape_string(inp.shape()));
  const PoolParams p{inp.dim(0), inp.dim(1), inp.dim(2), mode};
  require_numel(out, p.B * p.C, "pool_forward", "out");
  cpu::pool_forward(out.data(), inp.data(), p);
}

void pool_backward(const Tensor& dinp, const Tensor& dout, PoolMode mode) {
  const OpTimer timer("pool_backward");
  require_cpu({&dinp, &dout}, "pool_backward");
  GPTRAIN_CHECK(dinp.ndim() == 3, "pool_backward: dinp shape {}", shape_string(dinp.shape()));
  const PoolParams p{dinp.dim(0), dinp.dim(1), dinp.dim(2), mode};
  require_numel(dout, p.B * p.C, "pool_backward", "dout");
  cpu::pool_backward(dinp.data(), dout.data(), p);
}

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWParams& params) {
  const OpTimer timer("adamw_step");
  require_cpu({&param, &grad, &m, &v}, "adamw_step");
  require_numel(grad, param.numel(), "adamw_step", "grad");
  require_numel(m, param.numel(), "adamw_step", "m");
  require_numel(v, param.numel(), "adamw_step", "v");
  GPTRAIN_CHECK(params.step >= 1, "adamw_step: step {} (counts from 1)", params.step);
  AdamWParams p = params;
  p.n = param.numel();
  cpu::adamw_step(param.data(), grad.data(), m.data(), v.data(), p);
}

double sum_squares(const Tensor& x) {
  const OpTimer timer("sum_squares");
  require_cpu({&x}, "sum_squares");
  return cpu::sum_squares(x.data(), x.numel());
}

void scale_(const Tensor& x, float factor) {
  const OpTimer timer("scale_");
  require_cpu({&x}, "scale_");
  cpu::scale(x.data(), factor, x.numel());
}

}  // namespace gptrain::ops
