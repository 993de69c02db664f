// GGUF v3 writing (llama.cpp's model and adapter format; layout read from ggml's gguf-py
// gguf_writer.py and ggml-quants.c). A file is, all little-endian:
//   u32 magic "GGUF", u32 version 3, u64 tensor count, u64 key/value count,
//   key/value pairs: string key, u32 value type, value (arrays: u32 item type, u64 count, items;
//     strings: u64 byte length, bytes; bool: one byte),
//   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (ggml order: the row-major shape
//     reversed, ne[0] the length of a row), u32 ggml type, u64 offset inside the data section,
//   zero padding to general.alignment, then each tensor's data, each padded to the alignment.
// The writer streams: the header is fixed by the declared tensors, then their data is written
// one tensor at a time, converted to its type, through an AtomicFile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/atomic_file.h"
#include "tensor/tensor.h"

namespace gptrain::io {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufAlignment = 32;  // general.alignment; ggml's default
inline constexpr int64_t kQ8BlockSize = 32;     // QK8_0: values per Q8_0 block
inline constexpr size_t kQ8BlockBytes = 34;     // an f16 scale and 32 int8 values

// gguf_type: the value types of the key/value section.
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9,
  U64 = 10, I64 = 11, F64 = 12,
};

// ggml_type of a tensor: the three gptrain writes.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8 };
const char* ggml_type_name(GgmlType type);  // "F32", "F16", "Q8_0"

// Bytes of a tensor of `shape` (row-major) stored as `type`; Q8_0 needs rows of a multiple of 32.
uint64_t ggml_tensor_bytes(GgmlType type, const Shape& shape);

// ggml's quantize_row_q8_0_ref over `values` (a multiple of 32): per block of 32, d = max|x|/127
// stored as f16, q = roundf(x * (1/d)) in float (0 for an all-zero block). `out` holds
// values.size() / 32 * 34 bytes.
void quantize_q8_0(std::span<const float> values, std::span<std::byte> out);

// The key/value section, in the order added. Keys are unique (a second add of a key throws).
class GgufMetadata {
 public:
  void add_u32(std::string_view key, uint32_t value);
  void add_i32(std::string_view key, int32_t value);
  void add_f32(std::string_view key, float value);
  void add_bool(std::string_view key, bool value);
  void add_string(std::string_view key, std::string_view value);
  void add_strings(std::string_view key, std::span<const std::string> values);
  void add_i32s(std::string_view key, std::span<const int32_t> values);
  void add_u32s(std::string_view key, std::span<const uint32_t> values);
  void add_f32s(std::string_view key, std::span<const float> values);

  bool contains(std::string_view key) const;
  size_t size() const { return keys_.size(); }
  // The encoded pairs (key, then type and value), as the file holds them.
  const std::string& encoded() const { return encoded_; }

 private:
  void begin(std::string_view key, GgufValueType type);
  std::vector<std::string> keys_;
  std::string encoded_;
};

struct GgufTensorDecl {
  std::string name;
  Shape shape;  // row-major, as PyTorch's; written reversed as ggml's ne
  GgmlType type = GgmlType::F32;
};

// Usage: GgufWriter w(path, metadata, tensors); w.write(values) once per tensor, in order;
// w.commit(). general.alignment (32) is added to the metadata when it lacks it.
class GgufWriter {
 public:
  GgufWriter(const std::filesystem::path& path, GgufMetadata metadata, std::vector<GgufTensorDecl> tensors);
  // The next declared tensor's values, row-major: exactly numel(shape) floats, converted to its type.
  void write(std::span<const float> values);
  // After the last tensor: flush and rename into place.
  void commit();

  const std::vector<GgufTensorDecl>& tensors() const { return tensors_; }
  uint64_t bytes_written() const { return file_.bytes_written(); }

 private:
  void pad_to_alignment();
  AtomicFile file_;
  std::vector<GgufTensorDecl> tensors_;
  size_t next_ = 0;
  std::vector<std::byte> buffer_;  // one tensor's converted bytes
};

}  // namespace gptrain::io
