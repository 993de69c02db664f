// The CUDA backend under the CPU backends' harness (tests/kernels/backend_test.cpp, built a second
// time as cuda_backend_test with GPTRAIN_TEST_CUDA): a Backend on host pointers that copies each
// operand to the GPU, runs the CUDA backend there and copies the outputs back, so every case,
// error bound and bitwise contract of the harness applies to the GPU kernels unchanged. Operands
// that share a host pointer share one device buffer (in-place and aliasing cases stay so).
// main() runs every Backend and Invariance case (the registry's is the CPU's) unless a
// --gtest_filter is given; every case skips, with a message, when no GPU is visible.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

using namespace gptrain::kernels;

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    ADD_FAILURE() << what << ": " << cudaGetErrorString(e);
    throw std::runtime_error(what);
  }
}

// The device copies of one call's operands.
class Stage {
 public:
  ~Stage() {
    for (auto& [host, b] : buffers_) cudaFree(b.device);
  }
  // An operand read by the kernel.
  template <class T>
  T* in(const T* host, int64_t count) {
    return static_cast<T*>(buffer(host, static_cast<size_t>(count) * sizeof(T), false));
  }
  // An operand written (or accumulated into, so its values go up too): copied back by finish().
  template <class T>
  T* out(T* host, int64_t count) {
    return static_cast<T*>(buffer(host, static_cast<size_t>(count) * sizeof(T), true));
  }
  void finish() {
    ok(cudaDeviceSynchronize(), "kernel");
    for (auto& [host, b] : buffers_)
      if (b.written) ok(cudaMemcpy(const_cast<void*>(host), b.device, b.bytes, cudaMemcpyDeviceToHost), "copy back");
  }

 private:
  struct Buffer {
    void* device = nullptr;
    size_t bytes = 0;
    bool written = false;
  };
  void* buffer(const void* host, size_t bytes, bool written) {
    if (!host) return nullptr;
    auto it = buffers_.find(host);
    if (it != buffers_.end()) {
      EXPECT_EQ(it->second.bytes, bytes) << "an aliased operand staged with two sizes";
      it->second.written |= written;
      return it->second.device;
    }
    Buffer b{nullptr, bytes, written};
    ok(cudaMalloc(&b.device, std::max<size_t>(bytes, 4)), "cudaMalloc");
    if (bytes) ok(cudaMemcpy(b.device, host, bytes, cudaMemcpyHostToDevice), "copy in");
    buffers_[host] = b;
    return b.device;
  }
  std::map<const void*, Buffer> buffers_;
};

const Backend& gpu() { return backend_for(Device::CUDA, DType::F32); }
const float* F(const void* p) { return static_cast<const float*>(p); }
float* F(void* p) { return static_cast<float*>(p); }

class StagedCuda final : public Backend {
 public:
  const char* name() const override { return "cuda (staged)"; }
  Device device() const override { return Device::CPU; }
  DType dtype() const override { return DType::F32; }

  void embedding_forward(void* out, const int32_t* tokens, const int32_t* positions, const void* wte, const void* wpe,
                         const EmbeddingParams& p) const override {
    Stage s;
    const int64_t N = p.B * p.T;
    gpu().embedding_forward(s.out(F(out), N * p.C), s.in(tokens, N), s.in(positions, N), s.in(F(wte), p.V * p.C),
                            s.in(F(wpe), p.n_positions * p.C), p);
    s.finish();
  }
  void embedding_backward(void* dwte, void* dwpe, const void* dout, const int32_t* tokens, const int32_t* positions,
                          const EmbeddingParams& p) const override {
    Stage s;
    const int64_t N = p.B * p.T;
    gpu().embedding_backward(s.out(F(dwte), p.V * p.C), s.out(F(dwpe), p.n_positions * p.C), s.in(F(dout), N * p.C),
                             s.in(tokens, N), s.in(positions, N), p);
    s.finish();
  }
  void dropout_forward(void* out, const void* inp, const DropoutParams& p) const override {
    Stage s;
    gpu().dropout_forward(s.out(F(out), p.n), s.in(F(inp), p.n), p);
    s.finish();
  }
  void dropout_backward(void* dinp, const void* dout, const DropoutParams& p) const override {
    Stage s;
    gpu().dropout_backward(s.out(F(dinp), p.n), s.in(F(dout), p.n), p);
    s.finish();
  }
  void layernorm_forward(void* out, void* mean, void* rstd, const void* inp, const void* weight, const void* bias,
                         const LayerNormParams& p) const override {
    Stage s;
    gpu().layernorm_forward(s.out(F(out), p.N * p.C), s.out(F(mean), p.N), s.out(F(rstd), p.N), s.in(F(inp), p.N * p.C),
                            s.in(F(weight), p.C), s.in(F(bias), p.C), p);
    s.finish();
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const void* mean, const void* rstd, const LayerNormParams& p) const override {
    Stage s;
    gpu().layernorm_backward(s.out(F(dinp), p.N * p.C), s.out(F(dweight), p.C), s.out(F(dbias), p.C),
                             s.in(F(dout), p.N * p.C), s.in(F(inp), p.N * p.C), s.in(F(weight), p.C), s.in(F(mean), p.N),
                             s.in(F(rstd), p.N), p);
    s.finish();
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias,
                      const MatmulParams& p) const override {
    Stage s;
    gpu().matmul_forward(s.out(F(out), p.N * p.OC), s.in(F(inp), p.N * p.IC), s.in(F(weight), p.OC * p.IC),
                         s.in(F(bias), p.OC), p);
    s.finish();
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                       const MatmulParams& p) const override {
    Stage s;
    gpu().matmul_backward(s.out(F(dinp), p.N * p.IC), s.out(F(dweight), p.OC * p.IC), s.out(F(dbias), p.OC),
                          s.in(F(dout), p.N * p.OC), s.in(F(inp), p.N * p.IC), s.in(F(weight), p.OC * p.IC), p);
    s.finish();
  }
  void matmul_forward_half(void* out, const void* inp, const uint16_t* weight, DType weight_type, const void* bias,
                           const MatmulParams& p) const override {
    Stage s;
    gpu().matmul_forward_half(s.out(F(out), p.N * p.OC), s.in(F(inp), p.N * p.IC), s.in(weight, p.OC * p.IC),
                              weight_type, s.in(F(bias), p.OC), p);
    s.finish();
  }
  void lora_forward(void* out, const void* inp, const void* A, const void* B, const LoraParams& p) const override {
    Stage s;
    gpu().lora_forward(s.out(F(out), p.N * p.OC), s.in(F(inp), p.N * p.IC), s.in(F(A), p.S * p.R * p.IC),
                       s.in(F(B), p.seg[p.S] * p.R), p);
    s.finish();
  }
  void lora_backward(void* dinp, void* dA, void* dB, const void* dout, const void* inp, const void* A, const void* B,
                     const LoraParams& p) const override {
    Stage s;
    gpu().lora_backward(s.out(F(dinp), p.N * p.IC), s.out(F(dA), p.S * p.R * p.IC), s.out(F(dB), p.seg[p.S] * p.R),
                        s.in(F(dout), p.N * p.OC), s.in(F(inp), p.N * p.IC), s.in(F(A), p.S * p.R * p.IC),
                        s.in(F(B), p.seg[p.S] * p.R), p);
    s.finish();
  }
  void lora_merge(void* weight, const void* A, const void* B, const LoraParams& p) const override {
    Stage s;
    gpu().lora_merge(s.out(F(weight), p.OC * p.IC), s.in(F(A), p.S * p.R * p.IC), s.in(F(B), p.seg[p.S] * p.R), p);
    s.finish();
  }
  void attention_forward(void* out, void* stats, const void* qkv, const AttentionParams& p) const override {
    Stage s;
    const int64_t rows = p.B * p.T;
    gpu().attention_forward(s.out(F(out), rows * p.NH * p.HS), s.out(F(stats), p.B * p.NH * p.T * 2),
                            s.in(F(qkv), rows * p.qkv_width()), p);
    s.finish();
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* stats,
                          const AttentionParams& p) const override {
    Stage s;
    const int64_t rows = p.B * p.T;
    gpu().attention_backward(s.out(F(dqkv), rows * p.qkv_width()), s.in(F(dout), rows * p.NH * p.HS),
                             s.in(F(qkv), rows * p.qkv_width()), s.in(F(stats), p.B * p.NH * p.T * 2), p);
    s.finish();
  }
  void attention_decode_forward(void* out, const void* qkv, const DecodeSeq* seqs,
                                const AttentionDecodeParams& p) const override {
    Stage s;
    int64_t rows = 0;
    std::vector<DecodeSeq> device(seqs, seqs + p.n_seqs);
    const int64_t KV = p.NKV * p.HS;
    for (DecodeSeq& d : device) {  // the caches on the device too
      rows += d.rows;
      d.k_cache = s.out(F(d.k_cache), d.max_T * KV);
      d.v_cache = s.out(F(d.v_cache), d.max_T * KV);
    }
    gpu().attention_decode_forward(s.out(F(out), rows * p.NH * p.HS), s.in(F(qkv), rows * p.qkv_width()),
                                   device.data(), p);
    s.finish();
  }
  void rmsnorm_forward(void* out, void* rstd, const void* inp, const void* weight, const RmsNormParams& p) const override {
    Stage s;
    gpu().rmsnorm_forward(s.out(F(out), p.N * p.C), s.out(F(rstd), p.N), s.in(F(inp), p.N * p.C), s.in(F(weight), p.C),
                          p);
    s.finish();
  }
  void rmsnorm_backward(void* dinp, void* dweight, const void* dout, const void* inp, const void* weight,
                        const void* rstd, const RmsNormParams& p) const override {
    Stage s;
    gpu().rmsnorm_backward(s.out(F(dinp), p.N * p.C), s.out(F(dweight), p.C), s.in(F(dout), p.N * p.C),
                           s.in(F(inp), p.N * p.C), s.in(F(weight), p.C), s.in(F(rstd), p.N), p);
    s.finish();
  }
  void qk_norm_forward(void* out, void* rstd, const void* inp, const void* qw, const void* kw,
                       const QkNormParams& p) const override {
    Stage s;
    const int64_t W = p.qkv_width();
    gpu().qk_norm_forward(s.out(F(out), p.N * W), s.out(F(rstd), p.N * (p.NH + p.NKV)), s.in(F(inp), p.N * W),
                          s.in(F(qw), p.HS), s.in(F(kw), p.HS), p);
    s.finish();
  }
  void qk_norm_backward(void* dinp, void* dqw, void* dkw, const void* dout, const void* inp, const void* qw,
                        const void* kw, const void* rstd, const QkNormParams& p) const override {
    Stage s;
    const int64_t W = p.qkv_width();
    gpu().qk_norm_backward(s.out(F(dinp), p.N * W), s.out(F(dqw), p.HS), s.out(F(dkw), p.HS), s.in(F(dout), p.N * W),
                           s.in(F(inp), p.N * W), s.in(F(qw), p.HS), s.in(F(kw), p.HS),
                           s.in(F(rstd), p.N * (p.NH + p.NKV)), p);
    s.finish();
  }
  void rope_table(void* c, void* sn, const void* inv_freq, const int32_t* positions,
                  const RopeTableParams& p) const override {
    Stage s;
    gpu().rope_table(s.out(F(c), p.N * p.half), s.out(F(sn), p.N * p.half), s.in(F(inv_freq), p.half),
                     s.in(positions, p.N), p);
    s.finish();
  }
  void rope_forward(void* qkv, const void* c, const void* sn, const RopeParams& p) const override {
    Stage s;
    gpu().rope_forward(s.out(F(qkv), p.N * p.qkv_width()), s.in(F(c), p.N * (p.HS / 2)), s.in(F(sn), p.N * (p.HS / 2)),
                       p);
    s.finish();
  }
  void rope_backward(void* dqkv, const void* c, const void* sn, const RopeParams& p) const override {
    Stage s;
    gpu().rope_backward(s.out(F(dqkv), p.N * p.qkv_width()), s.in(F(c), p.N * (p.HS / 2)),
                        s.in(F(sn), p.N * (p.HS / 2)), p);
    s.finish();
  }
  void swiglu_forward(void* out, const void* inp, const SwigluParams& p) const override {
    Stage s;
    gpu().swiglu_forward(s.out(F(out), p.N * p.M), s.in(F(inp), p.N * 2 * p.M), p);
    s.finish();
  }
  void swiglu_backward(void* dinp, const void* inp, const void* dout, const SwigluParams& p) const override {
    Stage s;
    gpu().swiglu_backward(s.out(F(dinp), p.N * 2 * p.M), s.in(F(inp), p.N * 2 * p.M), s.in(F(dout), p.N * p.M), p);
    s.finish();
  }
  void gelu_forward(void* out, const void* inp, const GeluParams& p) const override {
    Stage s;
    gpu().gelu_forward(s.out(F(out), p.n), s.in(F(inp), p.n), p);
    s.finish();
  }
  void gelu_backward(void* dinp, const void* inp, const void* dout, const GeluParams& p) const override {
    Stage s;
    gpu().gelu_backward(s.out(F(dinp), p.n), s.in(F(inp), p.n), s.in(F(dout), p.n), p);
    s.finish();
  }
  void residual_forward(void* out, const void* a, const void* b, const ResidualParams& p) const override {
    Stage s;
    gpu().residual_forward(s.out(F(out), p.n), s.in(F(a), p.n), s.in(F(b), p.n), p);
    s.finish();
  }
  void residual_backward(void* da, void* db, const void* dout, const ResidualParams& p) const override {
    Stage s;
    gpu().residual_backward(s.out(F(da), p.n), s.out(F(db), p.n), s.in(F(dout), p.n), p);
    s.finish();
  }
  void cross_entropy_forward(void* losses, void* lse, const void* logits, const int32_t* targets,
                             const CrossEntropyParams& p) const override {
    Stage s;
    gpu().cross_entropy_forward(s.out(F(losses), p.N), s.out(F(lse), p.N), s.in(F(logits), p.N * p.V),
                                s.in(targets, p.N), p);
    s.finish();
  }
  void cross_entropy_backward(void* dlogits, const void* logits, const void* lse, const int32_t* targets,
                              const void* dloss, const CrossEntropyParams& p) const override {
    Stage s;
    gpu().cross_entropy_backward(s.out(F(dlogits), p.N * p.V), s.in(F(logits), p.N * p.V), s.in(F(lse), p.N),
                                 s.in(targets, p.N), s.in(F(dloss), p.N), p);
    s.finish();
  }
  LossTotal loss_total(const void* losses, const int32_t* targets, const CrossEntropyParams& p) const override {
    Stage s;
    return gpu().loss_total(s.in(F(losses), p.N), s.in(targets, p.N), p);
  }
  void pool_forward(void* out, const void* inp, const PoolParams& p) const override {
    Stage s;
    gpu().pool_forward(s.out(F(out), p.B * p.C), s.in(F(inp), p.B * p.T * p.C), p);
    s.finish();
  }
  void pool_backward(void* dinp, const void* dout, const PoolParams& p) const override {
    Stage s;
    gpu().pool_backward(s.out(F(dinp), p.B * p.T * p.C), s.in(F(dout), p.B * p.C), p);
    s.finish();
  }
  void gather_rows_forward(void* out, const void* inp, const int32_t* rows, const GatherRowsParams& p) const override {
    Stage s;
    gpu().gather_rows_forward(s.out(F(out), p.R * p.C), s.in(F(inp), p.N * p.C), s.in(rows, p.R), p);
    s.finish();
  }
  void adamw_step(void* param, const void* grad, void* m, void* v, const AdamWParams& p) const override {
    Stage s;
    gpu().adamw_step(s.out(F(param), p.n), s.in(F(grad), p.n), s.out(F(m), p.n), s.out(F(v), p.n), p);
    s.finish();
  }
  double sum_squares(const void* x, int64_t n) const override {
    Stage s;
    return gpu().sum_squares(s.in(F(x), n), n);
  }
  void scale(void* x, float factor, int64_t n) const override {
    Stage s;
    gpu().scale(s.out(F(x), n), factor, n);
    s.finish();
  }
};

// Skips every case, saying why, when there is no GPU (CI, this project's CPU machines).
class NeedsGpu : public ::testing::Environment {
 public:
  void SetUp() override {
    if (!kernels::cuda::init()) GTEST_SKIP() << "no CUDA device visible: " << kernels::cuda::device_description();
    std::printf("CUDA device: %s\n", kernels::cuda::device_description().c_str());
  }
};

}  // namespace

std::vector<const kernels::Backend*> staged_cuda_backends() {
  static const StagedCuda staged;
  if (!kernels::cuda::init()) return {};
  return {&staged};
}

}  // namespace gptrain::test

// The harness's backend cases; a --gtest_filter replaces the list.
int main(int argc, char** argv) {
  GTEST_FLAG_SET(filter, "Backend.*:Invariance.*:-Backend.registry");  // every op; the registry is the CPU's
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new gptrain::test::NeedsGpu);
  return RUN_ALL_TESTS();
}
