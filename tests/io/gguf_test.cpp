// The GGUF writer against an independent reader (tests/common/gguf_reader.h): header, every
// key/value type, tensor infos (ne reversed, aligned offsets), data of each type, Q8_0 blocks
// against a scalar reference and their error bound, and the errors.
#include "io/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tensor/dtype.h"
#include "tests/common/gguf_reader.h"
#include "tests/common/temp_dir.h"
#include "util/error.h"

namespace gptrain::io {
namespace {

using testing_util::TempDir;

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

TEST(Gguf, HeaderKeyValuesTensorInfosAndData) {
  TempDir dir;
  GgufMetadata m;
  m.add_string("general.architecture", "gpt2");
  m.add_u32("gpt2.block_count", 3);
  m.add_i32("test.negative", -7);
  m.add_f32("test.eps", 1e-5f);
  m.add_bool("test.yes", true);
  m.add_bool("test.no", false);
  const std::vector<std::string> words = {"a", "", "Ġlow", "<|endoftext|>"};
  m.add_strings("test.words", words);
  const std::vector<int32_t> ints = {1, -2, 3};
  m.add_i32s("test.ints", ints);
  const std::vector<uint32_t> uints = {4000000000u};
  m.add_u32s("test.uints", uints);
  const std::vector<float> floats = {0.5f, -1.25f};
  m.add_f32s("test.floats", floats);
  m.add_strings("test.empty", std::vector<std::string>{});

  const std::vector<GgufTensorDecl> decls = {
      {"a", {3, 5}, GgmlType::F32}, {"b", {7}, GgmlType::F32}, {"c", {2, 3, 64}, GgmlType::F16},
      {"d", {3, 64}, GgmlType::Q8_0}};
  std::vector<std::vector<float>> data;
  GgufWriter w(dir / "x.gguf", m, decls);
  for (size_t i = 0; i < decls.size(); ++i) {
    data.push_back(random_values(static_cast<size_t>(shape_numel(decls[i].shape)), 10 + static_cast<uint32_t>(i)));
    w.write(data.back());
  }
  w.commit();

  const test::GgufFile f = test::read_gguf(dir / "x.gguf");  // checks offsets, padding and size
  EXPECT_EQ(f.version, 3u);
  ASSERT_EQ(f.keys.size(), 12u);  // 11 added + general.alignment
  EXPECT_EQ(f.keys[0], "general.architecture");
  EXPECT_EQ(f.at("general.architecture").s, "gpt2");
  EXPECT_EQ(f.at("general.alignment").type, 4u);
  EXPECT_EQ(f.at("general.alignment").u, 32u);
  EXPECT_EQ(f.at("gpt2.block_count").type, 4u);
  EXPECT_EQ(f.at("gpt2.block_count").u, 3u);
  EXPECT_EQ(f.at("test.negative").type, 5u);
  EXPECT_EQ(f.at("test.negative").i, -7);
  EXPECT_EQ(f.at("test.eps").type, 6u);
  EXPECT_EQ(static_cast<float>(f.at("test.eps").f), 1e-5f);
  EXPECT_EQ(f.at("test.yes").type, 7u);
  EXPECT_EQ(f.at("test.yes").u, 1u);
  EXPECT_EQ(f.at("test.no").u, 0u);
  EXPECT_EQ(f.at("test.words").type, 9u);
  EXPECT_EQ(f.at("test.words").item_type, 8u);
  EXPECT_EQ(f.at("test.words").strings, words);
  EXPECT_EQ(f.at("test.ints").item_type, 5u);
  EXPECT_EQ(f.at("test.ints").ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.at("test.uints").item_type, 4u);
  EXPECT_EQ(f.at("test.uints").ints, (std::vector<int64_t>{4000000000LL}));
  EXPECT_EQ(f.at("test.floats").item_type, 6u);
  EXPECT_EQ(f.at("test.floats").floats, (std::vector<double>{0.5, -1.25}));
  EXPECT_TRUE(f.at("test.empty").strings.empty());

  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.tensor("a").ne, (std::vector<uint64_t>{5, 3}));  // ggml order: row length first
  EXPECT_EQ(f.tensor("b").ne, (std::vector<uint64_t>{7}));
  EXPECT_EQ(f.tensor("c").ne, (std::vector<uint64_t>{64, 3, 2}));
  EXPECT_EQ(f.tensor("d").ne, (std::vector<uint64_t>{64, 3}));
  EXPECT_EQ(f.tensor("a").type, 0u);
  EXPECT_EQ(f.tensor("c").type, 1u);
  EXPECT_EQ(f.tensor("d").type, 8u);
  EXPECT_EQ(f.data_start % 32, 0u);
  for (const test::GgufTensor& t : f.tensors) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  // F32 bytes as given; F16 the round-to-nearest-even half of each value.
  EXPECT_EQ(std::memcmp(f.data(f.tensor("a")), data[0].data(), data[0].size() * 4), 0);
  EXPECT_EQ(std::memcmp(f.data(f.tensor("b")), data[1].data(), data[1].size() * 4), 0);
  const char* c = f.data(f.tensor("c"));
  for (size_t i = 0; i < data[2].size(); ++i) {
    uint16_t h;
    std::memcpy(&h, c + 2 * i, 2);
    ASSERT_EQ(h, float_to_f16(data[2][i])) << i;
    // and within half an f16 ulp of the value (normal range: 2^-11 relative)
    ASSERT_LE(std::fabs(f16_to_float(h) - data[2][i]), std::ldexp(std::fabs(data[2][i]), -11) + 1e-7f) << i;
  }
}

// ggml's quantize_row_q8_0_ref, restated: per block of 32, d = max|x| / 127, stored as f16;
// q = roundf(x * (1/d)) with the float d, halves away from zero; zeros for a zero block.
std::vector<uint8_t> reference_q8_0(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, id = d == 0.0f ? 0.0f : 1.0f / d;
    const uint16_t h = float_to_f16(d);
    out.push_back(static_cast<uint8_t>(h & 0xff));
    out.push_back(static_cast<uint8_t>(h >> 8));
    for (size_t j = 0; j < 32; ++j) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[b + j] * id))));
  }
  return out;
}

TEST(Gguf, Q8_0BlocksEqualTheScalarReferenceWithinTheirBound) {
  std::vector<float> x = random_values(32 * 40, 7, 0.05f);
  for (size_t j = 0; j < 32; ++j) x[32 + j] = 0.0f;  // an all-zero block: d = 0, q = 0
  x[64 + 5] = 1000.0f;                                // one huge value dominating its block
  // d = 1 exactly: 2.5 and -2.5 round away from zero (roundf), not to even
  for (size_t j = 0; j < 32; ++j) x[96 + j] = 0.0f;
  x[96] = 127.0f, x[97] = 2.5f, x[98] = -2.5f, x[99] = 0.5f, x[100] = -126.5f;
  std::vector<std::byte> q(x.size() / 32 * 34);
  quantize_q8_0(x, q);
  const std::vector<uint8_t> ref = reference_q8_0(x);
  ASSERT_EQ(std::memcmp(q.data(), ref.data(), ref.size()), 0);
  auto qv = [&](size_t i) { return static_cast<int8_t>(q[(i / 32) * 34 + 2 + i % 32]); };
  EXPECT_EQ(qv(96), 127);
  EXPECT_EQ(qv(97), 3);
  EXPECT_EQ(qv(98), -3);
  EXPECT_EQ(qv(99), 1);
  EXPECT_EQ(qv(100), -127);
  for (size_t j = 0; j < 32; ++j) EXPECT_EQ(qv(32 + j), 0);
  // Error bound of each value: |x - q d16| <= |x - q d| + |q| |d - d16| <= d/2 (rounding of x/d,
  // plus the float product's own rounding) + 127 * 2^-11 d (d16 = f16(d), half an ulp of 11 bits).
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    int max_q = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    uint16_t h;
    std::memcpy(&h, q.data() + b * 34, 2);
    const float d16 = f16_to_float(h);
    for (size_t j = 0; j < 32; ++j) {
      const size_t i = b * 32 + j;
      max_q = std::max(max_q, std::abs(static_cast<int>(qv(i))));
      const double bound = 0.5 * d * (1 + 1e-6) + 127.0 * std::ldexp(static_cast<double>(d), -11);
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - qv(i) * static_cast<double>(d16)), bound) << "value " << i;
    }
    if (amax > 0) {
      EXPECT_EQ(max_q, 127) << "block " << b;  // the largest value maps to +-127
    }
  }
}

TEST(Gguf, Errors) {
  TempDir dir;
  GgufMetadata m;
  m.add_u32("k", 1);
  EXPECT_THROW(m.add_u32("k", 2), Error);
  EXPECT_THROW(GgufWriter(dir / "a.gguf", GgufMetadata{}, {{"t", {2, 33}, GgmlType::Q8_0}}), Error);
  EXPECT_THROW(GgufWriter(dir / "b.gguf", GgufMetadata{}, {{"t", {2}, GgmlType::F32}, {"t", {2}, GgmlType::F32}}),
               Error);
  std::vector<float> v(32 * 2, std::nanf(""));
  std::vector<std::byte> out(2 * 34);
  EXPECT_THROW(quantize_q8_0(v, out), Error);
  {
    GgufWriter w(dir / "c.gguf", GgufMetadata{}, {{"t", {2}, GgmlType::F32}});
    const float two[2] = {1, 2};
    w.write(two);
    EXPECT_THROW(w.write(two), Error);  // more tensors than declared
  }  // destroyed without commit: nothing at the path
  EXPECT_FALSE(std::filesystem::exists(dir / "c.gguf"));
  GgufWriter w(dir / "d.gguf", GgufMetadata{}, {{"t", {2}, GgmlType::F32}});
  EXPECT_THROW(w.commit(), Error);  // a declared tensor was never written
}

}  // namespace
}  // namespace gptrain::io
