// safetensors reading and writing. A file is an 8-byte little-endian header length N, an N-byte
// JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
// then the data buffer. The reader memory-maps the file and makes every check of the reference
// implementation (huggingface/safetensors, tensor.rs) before any tensor is read, because the file
// may come from anywhere: header length at most 100 MB and inside the file, valid UTF-8 JSON that
// starts with '{', no duplicate keys, known dtypes, shape x dtype size = byte length with checked
// arithmetic, offsets that tile the buffer exactly (no gaps, overlaps or reversals; the last one
// ends at the end of the file, which is how a truncated download shows up).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/atomic_file.h"
#include "tensor/tensor.h"

namespace gptrain::io {

inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE

// Bytes per element of a safetensors dtype name ("F32", "BF16", "I64", ...); 0 when unknown.
// Every dtype the reference knows is accepted in a header; F32, F64, F16 and BF16 load as numbers.
size_t dtype_size(std::string_view dtype);

struct TensorInfo {
  std::string name;
  std::string dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data buffer (which follows the header)
  int64_t numel() const { return shape_numel(shape); }
};

class SafeTensorsFile {
 public:
  // Maps the file and validates its header; throws gptrain::Error naming the file and the field.
  static SafeTensorsFile open(const std::filesystem::path& path);
  // Validates bytes already in memory (fuzzing, tests). `owner` keeps them alive; `label` stands
  // for the file name in messages.
  static SafeTensorsFile from_bytes(std::shared_ptr<const void> owner, std::span<const std::byte> bytes,
                                    std::string label);

  const std::string& label() const;                 // the path, as used in messages
  const std::vector<TensorInfo>& tensors() const;   // in data-offset order
  const TensorInfo* find(std::string_view name) const;
  const TensorInfo& at(std::string_view name) const;  // throws naming the file and the tensor
  const std::map<std::string, std::string>& metadata() const;

  // The tensor's bytes exactly as stored (little-endian, row-major).
  std::span<const std::byte> raw(std::string_view name) const;
  // A new float32 tensor; F16, BF16 and F64 are converted.
  Tensor load(std::string_view name) const;
  // A new tensor of `dtype` (F32, F64, BF16 or F16): the stored bytes when the dtype is the file's,
  // else converted (to a half format by rounding to nearest even).
  Tensor load_as(std::string_view name, DType dtype) const;
  // Into an existing tensor (of any of those dtypes) whose shape must equal the stored shape.
  void load_into(std::string_view name, const Tensor& dst) const;

 private:
  SafeTensorsFile() = default;  // only open() and from_bytes() make one, always valid
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Streams an F32 safetensors file to disk through AtomicFile: the header is written first from
// the declared names and shapes, then each tensor's data in declaration order, so a caller can
// produce one tensor at a time (a transposed copy, zeros) without holding them all in memory.
class SafeTensorsWriter {
 public:
  SafeTensorsWriter(const std::filesystem::path& path, const std::vector<std::pair<std::string, Shape>>& tensors,
                    const std::map<std::string, std::string>& metadata = {});
  // The next declared tensor's values: exactly numel(shape) floats.
  void write(std::span<const float> values);
  // After the last tensor: flush and rename into place.
  void commit();

 private:
  AtomicFile file_;
  std::vector<std::pair<std::string, Shape>> tensors_;
  size_t next_ = 0;
};

// Writes tensors as F32 in the given order, atomically (safetensors' `save_file`).
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace gptrain::io
