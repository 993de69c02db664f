// Shared helpers of the tokenizer tests: the data directory (GPTRAIN_TEST_DATA_DIR, set by CTest),
// the GPT-2 tokenizer loaded once, file reading, and SHA-256 of token ids as the fixture generator
// (tests/tools/gen_tokenizer_fixtures.py) computes it.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"

namespace gptrain::test {

inline std::filesystem::path data_dir() {
  const char* env = std::getenv("GPTRAIN_TEST_DATA_DIR");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(GPTRAIN_SOURCE_DIR) / ".." / "shared" / "data";
}

// The texts of one collection of a data-texts fixture, split as the generators split them: the
// SMS file's message per line (label TAB text), else every string of a JSON document in order.
inline std::vector<std::string> collection_texts(const std::string& name, const std::string& raw) {
  std::vector<std::string> texts;
  if (name == "sms_spam") {
    std::istringstream in(raw);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) texts.push_back(line.substr(line.find('\t') + 1));
    return texts;
  }
  std::function<void(const nlohmann::ordered_json&)> collect = [&](const nlohmann::ordered_json& v) {
    if (v.is_string()) texts.push_back(v.get<std::string>());
    else if (v.is_array() || v.is_object())
      for (const auto& item : v) collect(item);
  };
  collect(nlohmann::ordered_json::parse(raw));
  return texts;
}

inline std::filesystem::path fixtures_dir() { return std::filesystem::path(GPTRAIN_FIXTURES_DIR) / "tokenizer"; }

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The GPT-2 tokenizer from <data dir>/gpt2_tokenizer, loaded once; nullptr when the files are absent.
inline const Tokenizer* gpt2_tokenizer() {
  static const std::unique_ptr<Tokenizer> tokenizer = [] {
    const auto dir = data_dir() / "gpt2_tokenizer";
    if (!std::filesystem::exists(dir / "encoder.json") || !std::filesystem::exists(dir / "vocab.bpe"))
      return std::unique_ptr<Tokenizer>();
    return std::make_unique<Tokenizer>(Tokenizer::from_dir(dir));
  }();
  return tokenizer.get();
}

#define GPTRAIN_REQUIRE_GPT2_TOKENIZER(var)                                                              \
  const ::gptrain::Tokenizer* var = ::gptrain::test::gpt2_tokenizer();                                   \
  if (!var)                                                                                            \
    GTEST_SKIP() << "GPT-2 vocabulary not found: expected encoder.json and vocab.bpe in "                \
                 << (::gptrain::test::data_dir() / "gpt2_tokenizer").string()                         \
                 << " (set GPTRAIN_TEST_DATA_DIR to the data directory)"

// A tokenizer.json of the data dir by its name in the fixtures (tests/tools/gen_hf_tokenizer_fixtures.py),
// loaded once; nullptr when the file is absent.
inline std::filesystem::path hf_tokenizer_path(const std::string& name) {
  static const std::map<std::string, std::string> kFiles = {
      {"llama3", "tokenizers/llama3/tokenizer.json"},
      {"llama3_vision", "tokenizers/llama3/llama-3.2-90b-vision/tokenizer.json"},
      {"qwen3", "tokenizers/qwen/tokenizer.json"}};
  return data_dir() / kFiles.at(name);
}
inline const Tokenizer* hf_tokenizer(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    const auto path = hf_tokenizer_path(name);
    it = loaded.emplace(name, std::filesystem::exists(path) ? std::make_unique<Tokenizer>(Tokenizer::from_tokenizer_json(path))
                                                           : nullptr).first;
  }
  return it->second.get();
}

#define GPTRAIN_REQUIRE_HF_TOKENIZER(var, name)                                                     \
  const ::gptrain::Tokenizer* var = ::gptrain::test::hf_tokenizer(name);                            \
  if (!var)                                                                                       \
    GTEST_SKIP() << "tokenizer \"" << (name) << "\" not found: expected "                           \
                 << ::gptrain::test::hf_tokenizer_path(name).string()                              \
                 << " (set GPTRAIN_TEST_DATA_DIR to the data directory)"

// SHA-256 (FIPS 180-4), enough for fixture hashes.
class Sha256 {
 public:
  void update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    length_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t{64} - fill_);
      std::copy(p, p + take, block_.begin() + static_cast<std::ptrdiff_t>(fill_));
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == 64) {
        compress();
        fill_ = 0;
      }
    }
  }
  void update_u32(uint32_t v) {
    const uint8_t le[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    update(le, 4);
  }
  std::string hex() {
    const uint64_t bits = length_ * 8;
    const uint8_t pad = 0x80;
    update(&pad, 1);
    const uint8_t zero = 0;
    while (fill_ != 56) update(&zero, 1);
    for (int i = 7; i >= 0; --i) {
      const uint8_t b = static_cast<uint8_t>(bits >> (i * 8));
      update(&b, 1);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (uint32_t word : state_)
      for (int shift = 28; shift >= 0; shift -= 4) out += kHex[(word >> shift) & 15];
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
  void compress() {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(block_[i * 4]) << 24 | uint32_t(block_[i * 4 + 1]) << 16 | uint32_t(block_[i * 4 + 2]) << 8 |
             block_[i * 4 + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::array<uint32_t, 8> v = state_;
    for (int i = 0; i < 64; ++i) {
      const uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
      const uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
      const uint32_t t1 = v[7] + s1 + ch + k[i] + w[i];
      const uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
      const uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
      const uint32_t t2 = s0 + maj;
      v = {t1 + t2, v[0], v[1], v[2], v[3] + t1, v[4], v[5], v[6]};
    }
    for (int i = 0; i < 8; ++i) state_[i] += v[i];
  }
  std::array<uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t fill_ = 0;
  uint64_t length_ = 0;
};

inline std::string sha256_hex(const std::string& bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

// sha256 of ids as little-endian uint32, the fixtures' "ids_sha256".
inline std::string sha256_ids(const std::vector<int32_t>& ids) {
  std::string bytes(ids.size() * 4, '\0');
  for (size_t i = 0; i < ids.size(); ++i)
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>(static_cast<uint32_t>(ids[i]) >> (8 * b));
  return sha256_hex(bytes);
}

}  // namespace gptrain::test
