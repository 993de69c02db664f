// GGUF v3 writer: key/value encoding, tensor infos with aligned offsets, F32/F16/Q8_0 data.
#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "tensor/dtype.h"
#include "util/error.h"

namespace gptrain::io {

static_assert(std::endian::native == std::endian::little, "GGUF is written little-endian from host memory");

namespace {

template <class T>
void append_pod(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void append_string(std::string& out, std::string_view text) {
  append_pod<uint64_t>(out, text.size());
  out.append(text.data(), text.size());
}

uint64_t pad_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return "F32";
    case GgmlType::F16: return "F16";
    case GgmlType::Q8_0: return "Q8_0";
  }
  return "?";
}

uint64_t ggml_tensor_bytes(GgmlType type, const Shape& shape) {
  const auto numel = static_cast<uint64_t>(shape_numel(shape));
  switch (type) {
    case GgmlType::F32: return numel * 4;
    case GgmlType::F16: return numel * 2;
    case GgmlType::Q8_0: {
      const int64_t row = shape.empty() ? 1 : shape.back();
      GPTRAIN_CHECK(row % kQ8BlockSize == 0, "Q8_0 needs rows of a multiple of {}, got {}", kQ8BlockSize, row);
      return numel / kQ8BlockSize * kQ8BlockBytes;
    }
  }
  return 0;
}

void quantize_q8_0(std::span<const float> values, std::span<std::byte> out) {
  GPTRAIN_CHECK(values.size() % kQ8BlockSize == 0, "Q8_0 takes a multiple of {} values, got {}", kQ8BlockSize,
                values.size());
  const size_t blocks = values.size() / kQ8BlockSize;
  GPTRAIN_CHECK(out.size() == blocks * kQ8BlockBytes, "Q8_0 output of {} bytes for {} blocks", out.size(), blocks);
  for (size_t b = 0; b < blocks; ++b) {
    const float* x = values.data() + b * kQ8BlockSize;
    float amax = 0.0f;
    for (int64_t j = 0; j < kQ8BlockSize; ++j) amax = std::max(amax, std::fabs(x[j]));
    // An infinity or NaN would make every quotient of the block undefined as an int8.
    if (!std::isfinite(amax) || std::any_of(x, x + kQ8BlockSize, [](float v) { return std::isnan(v); }))
      fail("Q8_0: block {} holds a value that is not finite; a model with inf/NaN weights cannot be quantized", b);
    // As ggml's reference: the scale is kept in float for the quotient, stored rounded to f16.
    const float d = amax / 127.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    std::byte* block = out.data() + b * kQ8BlockBytes;
    const uint16_t d16 = float_to_f16(d);
    std::memcpy(block, &d16, 2);
    for (int64_t j = 0; j < kQ8BlockSize; ++j) {
      const auto q = static_cast<int8_t>(std::round(x[j] * inverse));  // roundf: halves away from zero
      block[2 + j] = static_cast<std::byte>(q);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Metadata

void GgufMetadata::begin(std::string_view key, GgufValueType type) {
  if (key.empty()) fail("GGUF metadata: empty key");
  if (contains(key)) fail("GGUF metadata: key '{}' added twice", key);
  keys_.emplace_back(key);
  append_string(encoded_, key);
  append_pod<uint32_t>(encoded_, static_cast<uint32_t>(type));
}

bool GgufMetadata::contains(std::string_view key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void GgufMetadata::add_u32(std::string_view key, uint32_t value) {
  begin(key, GgufValueType::U32);
  append_pod(encoded_, value);
}

void GgufMetadata::add_i32(std::string_view key, int32_t value) {
  begin(key, GgufValueType::I32);
  append_pod(encoded_, value);
}

void GgufMetadata::add_f32(std::string_view key, float value) {
  begin(key, GgufValueType::F32);
  append_pod(encoded_, value);
}

void GgufMetadata::add_bool(std::string_view key, bool value) {
  begin(key, GgufValueType::Bool);
  append_pod<uint8_t>(encoded_, value ? 1 : 0);
}

void GgufMetadata::add_string(std::string_view key, std::string_view value) {
  begin(key, GgufValueType::String);
  append_string(encoded_, value);
}

void GgufMetadata::add_strings(std::string_view key, std::span<const std::string> values) {
  begin(key, GgufValueType::Array);
  append_pod<uint32_t>(encoded_, static_cast<uint32_t>(GgufValueType::String));
  append_pod<uint64_t>(encoded_, values.size());
  for (const std::string& v : values) append_string(encoded_, v);
}

namespace {
template <class T>
void append_array(std::string& encoded, GgufValueType item, std::span<const T> values) {
  append_pod<uint32_t>(encoded, static_cast<uint32_t>(item));
  append_pod<uint64_t>(encoded, values.size());
  for (T v : values) append_pod(encoded, v);
}
}  // namespace

void GgufMetadata::add_i32s(std::string_view key, std::span<const int32_t> values) {
  begin(key, GgufValueType::Array);
  append_array(encoded_, GgufValueType::I32, values);
}

void GgufMetadata::add_u32s(std::string_view key, std::span<const uint32_t> values) {
  begin(key, GgufValueType::Array);
  append_array(encoded_, GgufValueType::U32, values);
}

void GgufMetadata::add_f32s(std::string_view key, std::span<const float> values) {
  begin(key, GgufValueType::Array);
  append_array(encoded_, GgufValueType::F32, values);
}

// ---------------------------------------------------------------------------------------------
// Writer

GgufWriter::GgufWriter(const std::filesystem::path& path, GgufMetadata metadata, std::vector<GgufTensorDecl> tensors)
    : file_(path), tensors_(std::move(tensors)) {
  if (!metadata.contains("general.alignment")) metadata.add_u32("general.alignment", kGgufAlignment);
  std::string header;
  append_pod<uint32_t>(header, kGgufMagic);
  append_pod<uint32_t>(header, kGgufVersion);
  append_pod<uint64_t>(header, tensors_.size());
  append_pod<uint64_t>(header, metadata.size());
  header += metadata.encoded();
  uint64_t offset = 0;
  std::vector<std::string_view> names;
  for (const GgufTensorDecl& t : tensors_) {
    if (t.name.empty()) fail("{}: a GGUF tensor needs a name", path.string());
    if (std::find(names.begin(), names.end(), t.name) != names.end())
      fail("{}: GGUF tensor '{}' declared twice", path.string(), t.name);
    names.push_back(t.name);
    if (t.shape.empty() || t.shape.size() > 4)
      fail("{}: GGUF tensor '{}' has {} dimensions; ggml takes 1 to 4", path.string(), t.name, t.shape.size());
    if (t.type == GgmlType::Q8_0 && t.shape.back() % kQ8BlockSize != 0)
      fail("{}: GGUF tensor '{}' as Q8_0 needs rows of a multiple of {}, got {}", path.string(), t.name,
           kQ8BlockSize, t.shape.back());
    append_string(header, t.name);
    append_pod<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (size_t d = t.shape.size(); d-- > 0;) append_pod<uint64_t>(header, static_cast<uint64_t>(t.shape[d]));
    append_pod<uint32_t>(header, static_cast<uint32_t>(t.type));
    append_pod<uint64_t>(header, offset);
    offset += pad_up(ggml_tensor_bytes(t.type, t.shape), kGgufAlignment);
  }
  file_.write(header.data(), header.size());
  pad_to_alignment();
}

void GgufWriter::pad_to_alignment() {
  static const char zeros[kGgufAlignment] = {};
  const uint64_t n = file_.bytes_written();
  file_.write(zeros, pad_up(n, kGgufAlignment) - n);
}

void GgufWriter::write(std::span<const float> values) {
  GPTRAIN_CHECK(next_ < tensors_.size(), "GGUF: {} tensors declared, a further one written", tensors_.size());
  const GgufTensorDecl& t = tensors_[next_];
  GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(t.shape), "GGUF tensor '{}': {} values for {}",
                t.name, values.size(), shape_numel(t.shape));
  switch (t.type) {
    case GgmlType::F32: file_.write(values.data(), values.size_bytes()); break;
    case GgmlType::F16: {
      buffer_.resize(values.size() * 2);
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = float_to_f16(values[i]);
        std::memcpy(buffer_.data() + 2 * i, &h, 2);
      }
      file_.write(buffer_.data(), buffer_.size());
      break;
    }
    case GgmlType::Q8_0:
      buffer_.resize(values.size() / kQ8BlockSize * kQ8BlockBytes);
      quantize_q8_0(values, buffer_);
      file_.write(buffer_.data(), buffer_.size());
      break;
  }
  pad_to_alignment();
  ++next_;
}

void GgufWriter::commit() {
  GPTRAIN_CHECK(next_ == tensors_.size(), "GGUF: {} of {} declared tensors written", next_, tensors_.size());
  file_.commit();
}

}  // namespace gptrain::io
