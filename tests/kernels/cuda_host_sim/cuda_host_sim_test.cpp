// What the host stand-in of the CUDA runtime (this folder) checks beyond the GPU tests it also runs
// (cuda_host_sim_backend_test, cuda_host_sim_bf16_test with flash attention's bounds): the
// parameter gradients' column sums (column_sums.cuh, through kernels.cu's and llama_kernels.cu's
// launchers), float32 and bf16 storage, bit for bit the fixed order they promise: chunks of
// kColumnChunk rows each summed in row order, then the chunks in order onto the old value (all
// compiled here without contraction, so the host's arithmetic is the order's).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda/launch.h"
#include "tensor/dtype.h"
#include "tests/kernels/harness.h"

namespace gptrain::test {
namespace {

// Values of storage type T: float32 as they are, bf16 as bits (its loads exact, its stores rounded).
template <class T>
struct Storage {
  std::vector<T> data;
  explicit Storage(const std::vector<float>& v) {
    for (const float x : v) data.push_back(encode(x));
  }
  static T encode(float x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return float_to_bf16(x);
  }
  static float decode(T x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return bf16_to_float(x);
  }
  float at(int64_t i) const { return decode(data[static_cast<size_t>(i)]); }
};

// What the column sums promise: for each column, chunks of kColumnChunk rows summed in row order
// in float32, the chunks' sums added in order, onto the old value, stored once.
template <class T, class Term>
std::vector<T> chunked_sums(const Storage<T>& old, int64_t rows, int64_t C, Term term) {
  std::vector<T> out(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    float total = 0.0f;
    for (int64_t k = 0; k < kernels::cuda::column_chunks(rows); ++k) {
      float s = 0.0f;
      for (int64_t r = k * kernels::cuda::kColumnChunk; r < std::min(rows, (k + 1) * kernels::cuda::kColumnChunk); ++r)
        s += term(r, c);
      total += s;
    }
    out[static_cast<size_t>(c)] = Storage<T>::encode(old.at(c) + total);
  }
  return out;
}

template <class T>
void expect_column_sums_in_their_order() {
  const int64_t N = 1000, C = 300;  // 8 chunks, the last of 104 rows; two blocks of columns, the second partial
  const std::string type = std::is_same_v<T, float> ? "float32" : "bf16";
  const Storage<T> dout(random_floats(N * C, 1)), inp(random_floats(N * C, 2)), old_w(random_floats(C, 3)),
      old_b(random_floats(C, 4));
  std::vector<float> partial(static_cast<size_t>(2 * kernels::cuda::column_partials(N, C)));
  {
    std::vector<T> db = old_b.data;
    kernels::cuda::column_sums_add(db.data(), dout.data.data(), N, C, partial.data());
    EXPECT_EQ(db, chunked_sums(old_b, N, C, [&](int64_t n, int64_t c) { return dout.at(n * C + c); }))
        << "bias gradient, " << type;
  }
  {
    const std::vector<float> mean = random_floats(N, 5), rstd = random_floats(N, 6, 0.5f, 2.0f);
    std::vector<T> dw = old_w.data, db = old_b.data;
    const kernels::LayerNormParams p{N, C, 1e-5f, kernels::InputGrad::Write};
    kernels::cuda::layernorm_backward<T>(nullptr, dw.data(), db.data(), dout.data.data(), inp.data.data(), nullptr,
                                         mean.data(), rstd.data(), p, partial.data());
    const auto norm_dy = [&](int64_t n, int64_t c) {
      return (inp.at(n * C + c) - mean[n]) * rstd[n] * dout.at(n * C + c);
    };
    EXPECT_EQ(dw, chunked_sums(old_w, N, C, norm_dy)) << "LayerNorm weight gradient, " << type;
    EXPECT_EQ(db, chunked_sums(old_b, N, C, [&](int64_t n, int64_t c) { return dout.at(n * C + c); }))
        << "LayerNorm bias gradient, " << type;
    std::vector<T> only_b = old_b.data;  // the bias alone
    kernels::cuda::layernorm_backward<T>(nullptr, nullptr, only_b.data(), dout.data.data(), inp.data.data(), nullptr,
                                         mean.data(), rstd.data(), p, partial.data());
    EXPECT_EQ(only_b, db) << "LayerNorm bias gradient alone, " << type;
    std::vector<float> rms(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) rms[n] = rstd[n];
    std::vector<T> dr = old_w.data;
    kernels::cuda::rmsnorm_backward<T>(nullptr, dr.data(), dout.data.data(), inp.data.data(), nullptr, rms.data(),
                                       kernels::RmsNormParams{N, C, 1e-6f, kernels::InputGrad::Write}, partial.data());
    EXPECT_EQ(dr, chunked_sums(old_w, N, C, [&](int64_t n, int64_t c) {
                return inp.at(n * C + c) * rms[n] * dout.at(n * C + c);
              }))
        << "RMSNorm weight gradient, " << type;
  }
  {
    // Qwen3's query/key norms: heads of 64 in rows of qkv; row r of a sum is (n, head) with the
    // heads of a row consecutive.
    kernels::QkNormParams p{};
    p.N = 150;
    p.NH = 4;
    p.NKV = 2;
    p.HS = 64;
    p.eps = 1e-6f;
    const int64_t W = p.qkv_width(), heads = p.NH + p.NKV;
    const Storage<T> g(random_floats(p.N * W, 7)), x(random_floats(p.N * W, 8)), oq(random_floats(p.HS, 9)),
        ok(random_floats(p.HS, 10));
    const std::vector<float> rstd = random_floats(p.N * heads, 11, 0.5f, 2.0f);
    std::vector<float> scratch(static_cast<size_t>(kernels::cuda::column_partials(p.N * p.NH, p.HS)));
    std::vector<T> dq = oq.data, dk = ok.data;
    kernels::cuda::qk_norm_backward<T>(nullptr, dq.data(), dk.data(), g.data.data(), x.data.data(), nullptr, nullptr,
                                       rstd.data(), p, scratch.data());
    const auto term = [&](int64_t h0, int64_t count) {
      return [&, h0, count](int64_t r, int64_t c) {
        const int64_t n = r / count, h = h0 + r % count, i = n * W + h * p.HS + c;
        return x.at(i) * rstd[n * heads + h] * g.at(i);
      };
    };
    EXPECT_EQ(dq, chunked_sums(oq, p.N * p.NH, p.HS, term(0, p.NH))) << "query norm weight gradient, " << type;
    EXPECT_EQ(dk, chunked_sums(ok, p.N * p.NKV, p.HS, term(p.NH, p.NKV))) << "key norm weight gradient, " << type;
  }
}

TEST(CudaHostSim, column_sums_take_their_fixed_order_in_float32_and_bf16) {
  expect_column_sums_in_their_order<float>();
  expect_column_sums_in_their_order<uint16_t>();
}

}  // namespace
}  // namespace gptrain::test
