// A small GGUF v3 reader for tests, written from the format (gguf-py's gguf_reader.py layout) and
// apart from src/io/gguf.cpp, so that a writer bug is not mirrored by its own reader. Strict: every
// byte of the file is accounted for (header, key/values, tensor infos, padding, data).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace gptrain::test {

struct GgufValue {
  uint32_t type = 0;       // gguf_type
  uint32_t item_type = 0;  // arrays
  uint64_t u = 0;          // unsigned ints, bool
  int64_t i = 0;           // signed ints
  double f = 0;            // floats
  std::string s;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

struct GgufTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct GgufFile {
  uint32_t version = 0;
  std::map<std::string, GgufValue> kv;
  std::vector<std::string> keys;  // in file order
  std::vector<GgufTensor> tensors;
  uint64_t data_start = 0;
  uint64_t alignment = 32;
  std::string bytes;

  const GgufTensor& tensor(const std::string& name) const {
    for (const GgufTensor& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
  bool has_tensor(const std::string& name) const {
    for (const GgufTensor& t : tensors)
      if (t.name == name) return true;
    return false;
  }
  const GgufValue& at(const std::string& key) const {
    auto it = kv.find(key);
    if (it == kv.end()) throw std::runtime_error("no key " + key);
    return it->second;
  }
  static uint64_t bytes_of(const GgufTensor& t) {
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    if (t.type == 0) return n * 4;
    if (t.type == 1) return n * 2;
    if (t.type == 8) return n / 32 * 34;
    throw std::runtime_error("type " + std::to_string(t.type));
  }
  const char* data(const GgufTensor& t) const { return bytes.data() + data_start + t.offset; }
  // Values as floats (F32 as stored, F16 widened, Q8_0 as q * f16(d)), row-major.
  std::vector<float> values(const std::string& name) const {
    const GgufTensor& t = tensor(name);
    uint64_t n = 1;
    for (uint64_t d : t.ne) n *= d;
    std::vector<float> out(n);
    const char* p = data(t);
    for (uint64_t k = 0; k < n; ++k) {
      if (t.type == 0) {
        std::memcpy(&out[k], p + 4 * k, 4);
      } else if (t.type == 1) {
        uint16_t h;
        std::memcpy(&h, p + 2 * k, 2);
        out[k] = f16_to_float(h);
      } else {
        const char* block = p + (k / 32) * 34;
        uint16_t d;
        std::memcpy(&d, block, 2);
        out[k] = static_cast<float>(static_cast<int8_t>(block[2 + k % 32])) * f16_to_float(d);
      }
    }
    return out;
  }
};

class GgufCursor {
 public:
  explicit GgufCursor(const std::string& b) : b_(b) {}
  template <class T>
  T pod() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("GGUF truncated at " + std::to_string(pos_));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    const auto n = pod<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("GGUF string past the end");
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  const std::string& b_;
  size_t pos_ = 0;
};

inline void read_scalar(GgufCursor& c, uint32_t type, GgufValue& v, bool into_array) {
  switch (type) {
    case 0: v.u = c.pod<uint8_t>(); break;
    case 1: v.i = c.pod<int8_t>(); break;
    case 2: v.u = c.pod<uint16_t>(); break;
    case 3: v.i = c.pod<int16_t>(); break;
    case 4: v.u = c.pod<uint32_t>(); break;
    case 5: v.i = c.pod<int32_t>(); break;
    case 6: v.f = c.pod<float>(); break;
    case 7: {
      const auto b = c.pod<uint8_t>();
      if (b > 1) throw std::runtime_error("bool byte " + std::to_string(b));
      v.u = b;
      break;
    }
    case 8: v.s = c.str(); break;
    case 10: v.u = c.pod<uint64_t>(); break;
    case 11: v.i = c.pod<int64_t>(); break;
    case 12: v.f = c.pod<double>(); break;
    default: throw std::runtime_error("value type " + std::to_string(type));
  }
  (void)into_array;
}

inline GgufFile read_gguf(const std::filesystem::path& path) {
  GgufFile f;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::stringstream s;
  s << in.rdbuf();
  f.bytes = s.str();
  GgufCursor c(f.bytes);
  if (c.pod<uint32_t>() != 0x46554747) throw std::runtime_error("bad magic");
  f.version = c.pod<uint32_t>();
  const auto n_tensors = c.pod<uint64_t>(), n_kv = c.pod<uint64_t>();
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = c.str();
    GgufValue v;
    v.type = c.pod<uint32_t>();
    if (v.type == 9) {
      v.item_type = c.pod<uint32_t>();
      const auto n = c.pod<uint64_t>();
      for (uint64_t i = 0; i < n; ++i) {
        GgufValue item;
        read_scalar(c, v.item_type, item, true);
        if (v.item_type == 8) v.strings.push_back(item.s);
        else if (v.item_type == 6 || v.item_type == 12) v.floats.push_back(item.f);
        else if (v.item_type == 1 || v.item_type == 3 || v.item_type == 5 || v.item_type == 11) v.ints.push_back(item.i);
        else v.ints.push_back(static_cast<int64_t>(item.u));
      }
    } else {
      read_scalar(c, v.type, v, false);
    }
    if (f.kv.count(key)) throw std::runtime_error("duplicate key " + key);
    f.keys.push_back(key);
    f.kv[key] = v;
  }
  if (f.kv.count("general.alignment")) f.alignment = f.kv["general.alignment"].u;
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.str();
    const auto n_dims = c.pod<uint32_t>();
    for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(c.pod<uint64_t>());
    t.type = c.pod<uint32_t>();
    t.offset = c.pod<uint64_t>();
    f.tensors.push_back(t);
  }
  const uint64_t a = f.alignment;
  f.data_start = (c.pos() + a - 1) / a * a;
  for (size_t p = c.pos(); p < f.data_start; ++p)
    if (f.bytes[p] != 0) throw std::runtime_error("non-zero padding before the data");
  // Offsets: aligned, in order, each tensor right after the previous one's padded end.
  uint64_t expected = 0;
  for (const GgufTensor& t : f.tensors) {
    if (t.offset != expected) throw std::runtime_error(t.name + ": offset " + std::to_string(t.offset));
    expected = (t.offset + GgufFile::bytes_of(t) + a - 1) / a * a;
  }
  if (f.data_start + expected != f.bytes.size())
    throw std::runtime_error("file size " + std::to_string(f.bytes.size()) + ", expected " +
                             std::to_string(f.data_start + expected));
  return f;
}

}  // namespace gptrain::test
