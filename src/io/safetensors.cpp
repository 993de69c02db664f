#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "util/error.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; a big-endian host needs byte swaps in load()");

namespace gptrain::io {

namespace {

using json = nlohmann::json;

// The reference's Dtype enum (tensor.rs) with element sizes. The sub-byte formats of newer
// releases (F4, F6_*) have no whole-byte size and are treated as unknown.
struct DtypeRow {
  std::string_view name;
  size_t size;
};
constexpr DtypeRow kDtypes[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1},
                                {"I16", 2},  {"U16", 2}, {"F16", 2},  {"BF16", 2},    {"I32", 4},
                                {"U32", 4},  {"F32", 4}, {"F64", 8},  {"I64", 8},     {"U64", 8}};

// Headers nest three levels (root, tensor entry, shape array); deeper values can only be unknown
// fields. The cap keeps hostile nesting from exhausting the stack or memory.
constexpr int kMaxJsonDepth = 8;

// Names and values from a hostile file go into messages: escape control bytes (and, for text
// that may not be valid UTF-8, every non-ASCII byte), cap the length.
std::string printable(std::string_view text, size_t max_len = 120, bool ascii_only = false) {
  std::string out;
  for (unsigned char c : text.substr(0, max_len)) {
    if (c < 0x20 || c == 0x7f || (ascii_only && c >= 0x80))
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (text.size() > max_len) out += "...";
  return out;
}

std::string quote_name(std::string_view name) { return fmt::format("'{}'", printable(name)); }

// A short rendering of a JSON value for "got ..." in messages.
std::string brief(const json& value) {
  return printable(value.dump(-1, ' ', true, json::error_handler_t::replace), 60);
}

// Thrown from inside the JSON parser callback (duplicate key, nesting) and turned into fail().
struct HeaderRejected {
  std::string message;
};

json parse_header(std::string_view header, const std::string& label) {
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) throw HeaderRejected{fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth)};
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(key).second)
          throw HeaderRejected{depth == 1 ? fmt::format("tensor {} is listed twice (duplicate key)", quote_name(key))
                                          : fmt::format("duplicate key {}", quote_name(key))};
        break;
      }
      case json::parse_event_t::object_end:
        keys.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(header.begin(), header.end(), check);
  } catch (const HeaderRejected& e) {
    fail("{}: invalid safetensors header: {}; the file is corrupt or was not written by a safetensors writer", label,
         e.message);
  } catch (const json::exception& e) {
    fail("{}: the safetensors header is not valid UTF-8 JSON ({}); the file is corrupt or not a safetensors file",
         label, printable(e.what(), 200, true));
  }
}

uint64_t unsigned_field(const json& value, const std::string& label, const std::string& name, const char* field) {
  if (!value.is_number_unsigned())
    fail("{}: tensor {}: every entry of '{}' must be a non-negative integer, got {}", label, quote_name(name), field,
         brief(value));
  return value.get<uint64_t>();
}

TensorInfo parse_tensor(const std::string& name, const json& entry, const std::string& label) {
  if (!entry.is_object())
    fail("{}: tensor {}: expected an object with dtype, shape and data_offsets, got {}", label, quote_name(name),
         brief(entry));
  TensorInfo info;
  info.name = name;
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) fail("{}: tensor {}: field '{}' is missing", label, quote_name(name), field);
  const json& dtype = entry.at("dtype");
  if (!dtype.is_string()) fail("{}: tensor {}: 'dtype' must be a string, got {}", label, quote_name(name), brief(dtype));
  info.dtype = dtype.get<std::string>();
  if (dtype_size(info.dtype) == 0)
    fail("{}: tensor {}: unknown dtype {} (known: BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, "
         "F32, F64, I64, U64)",
         label, quote_name(name), quote_name(info.dtype));
  const json& shape = entry.at("shape");
  if (!shape.is_array()) fail("{}: tensor {}: 'shape' must be an array, got {}", label, quote_name(name), brief(shape));
  for (const json& d : shape) {
    const uint64_t dim = unsigned_field(d, label, name, "shape");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail("{}: tensor {}: dimension {} does not fit in int64", label, quote_name(name), dim);
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& offsets = entry.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    fail("{}: tensor {}: 'data_offsets' must be [begin, end], got {}", label, quote_name(name), brief(offsets));
  info.begin = unsigned_field(offsets[0], label, name, "data_offsets");
  info.end = unsigned_field(offsets[1], label, name, "data_offsets");
  return info;
}

// Byte length of a tensor from its shape and dtype, failing on 64-bit overflow (the
// safetensors-cpp PoC: shape [4194305, 4194305, 211106198978564] wraps to 4 elements).
uint64_t checked_byte_size(const TensorInfo& info, const std::string& label) {
  uint64_t numel = 1;
  for (int64_t d : info.shape) {
    const auto dim = static_cast<uint64_t>(d);
    if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim)
      fail("{}: tensor {}: the element count of shape {} overflows 64 bits; the header is corrupt", label,
           quote_name(info.name), shape_string(info.shape));
    numel *= dim;
  }
  const uint64_t size = dtype_size(info.dtype);
  if (numel > std::numeric_limits<uint64_t>::max() / size)
    fail("{}: tensor {}: the byte size of shape {} x {} overflows 64 bits; the header is corrupt", label,
         quote_name(info.name), shape_string(info.shape), info.dtype);
  return numel * size;
}

// The memory map of a whole file, unmapped when the last SafeTensorsFile copy goes.
class Mapping {
 public:
  explicit Mapping(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int error = errno;
      fail("cannot open {}: {}{}", path.string(), std::strerror(error),
           error == ENOENT ? " (check the path; a model dir holds model.safetensors)" : "");
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int error = errno;
      ::close(fd);
      fail("cannot stat {}: {}", path.string(), std::strerror(error));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("{} is not a regular file", path.string());
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      // MAP_PRIVATE + PROT_READ: nothing we do can write to the file. If another process
      // truncates it while mapped, reads fault (SIGBUS); our own writers replace files by rename.
      void* addr = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        fail("cannot map {} ({} bytes) into memory: {}", path.string(), size_, std::strerror(error));
      }
      addr_ = addr;
    }
    ::close(fd);  // the mapping keeps the file alive
  }
  ~Mapping() {
    if (addr_) ::munmap(addr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), size_}; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace

size_t dtype_size(std::string_view dtype) {
  for (const DtypeRow& row : kDtypes)
    if (row.name == dtype) return row.size;
  return 0;
}

struct SafeTensorsFile::Impl {
  std::string label;
  std::shared_ptr<const void> owner;
  const std::byte* buffer = nullptr;  // the data buffer, after the header
  uint64_t buffer_size = 0;
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t, std::less<>> index;
  std::map<std::string, std::string> metadata;
};

SafeTensorsFile SafeTensorsFile::open(const std::filesystem::path& path) {
  auto mapping = std::make_shared<Mapping>(path);
  const std::span<const std::byte> bytes = mapping->bytes();
  return from_bytes(std::move(mapping), bytes, path.string());
}

SafeTensorsFile SafeTensorsFile::from_bytes(std::shared_ptr<const void> owner, std::span<const std::byte> bytes,
                                            std::string label) {
  auto impl = std::make_shared<Impl>();
  impl->label = std::move(label);
  impl->owner = std::move(owner);
  const std::string& file = impl->label;
  const uint64_t file_size = bytes.size();
  if (file_size < 8)
    fail("{}: {} bytes is too small for a safetensors file (it starts with an 8-byte header length); the file is "
         "empty or truncated, download it again",
         file, file_size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  if (header_len > kMaxHeaderBytes)
    fail("{}: header length {} bytes exceeds the safetensors limit of {} bytes; the file is corrupt or not a "
         "safetensors file",
         file, header_len, kMaxHeaderBytes);
  if (header_len > file_size - 8)
    fail("{}: header length {} bytes runs past the end of the file ({} bytes); the file is truncated, download it "
         "again",
         file, header_len, file_size);
  const std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8, header_len);
  if (header.empty() || header.front() != '{')
    fail("{}: the header must start with '{{' but starts with byte 0x{:02x}; not a safetensors file", file,
         header.empty() ? 0 : static_cast<unsigned char>(header.front()));
  const json root = parse_header(header, file);
  if (!root.is_object()) fail("{}: the header must be a JSON object, got {}", file, brief(root));

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail("{}: '__metadata__' must be an object of strings, got {}", file, brief(value));
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string())
          fail("{}: '__metadata__' entry {} must be a string, got {}", file, quote_name(meta_key), brief(meta_value));
        impl->metadata.emplace(meta_key, meta_value.get<std::string>());
      }
      continue;
    }
    impl->tensors.push_back(parse_tensor(key, value, file));
  }

  // The offsets must tile [0, buffer_size) exactly when sorted (reference Metadata::validate).
  impl->buffer = bytes.data() + 8 + header_len;
  impl->buffer_size = file_size - 8 - header_len;
  std::sort(impl->tensors.begin(), impl->tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t next = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : impl->tensors) {
    if (info.end < info.begin)
      fail("{}: tensor {}: data_offsets [{}, {}] are reversed (end before begin); the header is corrupt", file,
           quote_name(info.name), info.begin, info.end);
    if (info.end > impl->buffer_size)
      fail("{}: tensor {}: data_offsets [{}, {}] run past the end of the data ({} bytes); the file is truncated, "
           "download it again",
           file, quote_name(info.name), info.begin, info.end, impl->buffer_size);
    if (info.begin < next)
      fail("{}: tensor {}: data_offsets [{}, {}] overlap tensor {}, which ends at {}; the header is corrupt", file,
           quote_name(info.name), info.begin, info.end, quote_name(previous->name), next);
    if (info.begin > next)
      fail("{}: tensor {}: data_offsets [{}, {}] leave a gap: the previous tensor ends at {}; the header is corrupt",
           file, quote_name(info.name), info.begin, info.end, next);
    const uint64_t bytes_needed = checked_byte_size(info, file);
    if (info.end - info.begin != bytes_needed)
      fail("{}: tensor {}: shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}; the header is corrupt",
           file, quote_name(info.name), shape_string(info.shape), info.dtype, bytes_needed, info.begin, info.end,
           info.end - info.begin);
    next = info.end;
    previous = &info;
  }
  if (next != impl->buffer_size)
    fail("{}: the tensors end at byte {} of the data but the file holds {} data bytes ({} bytes of unexplained "
         "trailing data); the file is corrupt",
         file, next, impl->buffer_size, impl->buffer_size - next);
  for (size_t i = 0; i < impl->tensors.size(); ++i) impl->index.emplace(impl->tensors[i].name, i);

  SafeTensorsFile result;
  result.impl_ = std::move(impl);
  return result;
}

const std::string& SafeTensorsFile::label() const { return impl_->label; }
const std::vector<TensorInfo>& SafeTensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafeTensorsFile::metadata() const { return impl_->metadata; }

const TensorInfo* SafeTensorsFile::find(std::string_view name) const {
  const auto it = impl_->index.find(name);
  return it == impl_->index.end() ? nullptr : &impl_->tensors[it->second];
}

const TensorInfo& SafeTensorsFile::at(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info) fail("{}: no tensor named {} (the file holds {} tensors)", impl_->label, quote_name(name), impl_->tensors.size());
  return *info;
}

std::span<const std::byte> SafeTensorsFile::raw(std::string_view name) const {
  const TensorInfo& info = at(name);
  return {impl_->buffer + info.begin, static_cast<size_t>(info.end - info.begin)};
}

Tensor SafeTensorsFile::load(std::string_view name) const { return load_as(name, DType::F32); }

Tensor SafeTensorsFile::load_as(std::string_view name, DType dtype) const {
  const Tensor t = Tensor::empty(at(name).shape, dtype);
  load_into(name, t);
  return t;
}

void SafeTensorsFile::load_into(std::string_view name, const Tensor& dst) const {
  const TensorInfo& info = at(name);
  GPTRAIN_CHECK(dst.defined(), "load_into({}) needs a defined tensor", name);
  if (dst.shape() != info.shape)
    fail("{}: tensor {} has shape {} but {} was expected; the file does not match the model configuration",
         impl_->label, quote_name(info.name), shape_string(info.shape), shape_string(dst.shape()));
  if (dst.device() != Device::CPU) {  // read on the host, then one copy to the device
    dst.copy_from(load_as(name, dst.dtype()));
    return;
  }
  const std::byte* src = impl_->buffer + info.begin;
  const int64_t n = info.numel();
  const bool stored_half = info.dtype == "F16" || info.dtype == "BF16";
  if (info.dtype != "F32" && info.dtype != "F64" && !stored_half)
    fail("{}: tensor {} has dtype {}; only F32, F64, F16 and BF16 tensors can be loaded as numbers", impl_->label,
         quote_name(info.name), info.dtype);
  const std::string_view want = dst.dtype() == DType::F32    ? "F32"
                                : dst.dtype() == DType::F64  ? "F64"
                                : dst.dtype() == DType::BF16 ? "BF16"
                                : dst.dtype() == DType::F16  ? "F16"
                                                             : "";
  if (want.empty()) fail("{}: tensor {} cannot be loaded into an {} tensor", impl_->label, quote_name(info.name),
                         dtype_name(dst.dtype()));
  if (info.dtype == want) {  // stored as wanted: the bytes as they are
    if (n) std::memcpy(dst.raw(), src, static_cast<size_t>(n) * dtype_size(dst.dtype()));
    return;
  }
  // The data may sit at any byte offset in the mapping, so elements are copied, never cast in
  // place. One loop per stored type (a 1B model is 10^9 elements: no per-element dispatch), in
  // blocks of a stack buffer so the conversion to the target type is a second tight loop.
  constexpr int64_t kBlock = 4096;
  float block[kBlock];
  const auto convert = [&](auto&& store) {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t m = std::min(kBlock, n - b);
      if (info.dtype == "F32") {
        std::memcpy(block, src + 4 * b, static_cast<size_t>(m) * 4);
      } else if (info.dtype == "BF16") {
        uint16_t h[kBlock];
        std::memcpy(h, src + 2 * b, static_cast<size_t>(m) * 2);
        for (int64_t i = 0; i < m; ++i) block[i] = bf16_to_float(h[i]);
      } else if (info.dtype == "F16") {
        uint16_t h[kBlock];
        std::memcpy(h, src + 2 * b, static_cast<size_t>(m) * 2);
        for (int64_t i = 0; i < m; ++i) block[i] = f16_to_float(h[i]);
      }
      store(b, m);
    }
  };
  switch (dst.dtype()) {
    case DType::F32: {
      float* out = dst.data<float>();
      if (info.dtype == "F64") {  // rounded once
        for (int64_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, src + 8 * i, 8);
          out[i] = static_cast<float>(v);
        }
      } else {
        convert([&](int64_t b, int64_t m) { std::memcpy(out + b, block, static_cast<size_t>(m) * 4); });  // exact
      }
      break;
    }
    case DType::F64: {  // from F32, F16 or BF16 (F64 was copied above): exact
      double* out = dst.data<double>();
      convert([&](int64_t b, int64_t m) { std::copy(block, block + m, out + b); });
      break;
    }
    case DType::BF16: {
      uint16_t* out = dst.data<uint16_t>();
      if (info.dtype == "F64") {
        for (int64_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, src + 8 * i, 8);
          out[i] = float_to_bf16(static_cast<float>(v));
        }
      } else {
        convert([&](int64_t b, int64_t m) {
          for (int64_t i = 0; i < m; ++i) out[b + i] = float_to_bf16(block[i]);
        });
      }
      break;
    }
    case DType::F16: {
      uint16_t* out = dst.data<uint16_t>();
      if (info.dtype == "F64") {
        for (int64_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, src + 8 * i, 8);
          out[i] = float_to_f16(static_cast<float>(v));
        }
      } else {
        convert([&](int64_t b, int64_t m) {
          for (int64_t i = 0; i < m; ++i) out[b + i] = float_to_f16(block[i]);
        });
      }
      break;
    }
    case DType::I32: break;
  }
}

SafeTensorsWriter::SafeTensorsWriter(const std::filesystem::path& path,
                                     const std::vector<std::pair<std::string, Shape>>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : file_(path), tensors_(tensors) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors_) {
    if (name.empty() || name == "__metadata__") fail("{}: cannot write a tensor named {}", path.string(), quote_name(name));
    if (!names.insert(name).second) fail("{}: tensor {} is listed twice", path.string(), quote_name(name));
    const uint64_t bytes = static_cast<uint64_t>(shape_numel(shape)) * 4;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    fail("{}: cannot write the header: {}", path.string(), e.what());  // e.g. a name that is not UTF-8
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // as the reference: data starts 8-byte aligned
  const uint64_t header_len = text.size();
  file_.write(&header_len, sizeof header_len);
  file_.write(text);
}

void SafeTensorsWriter::write(std::span<const float> values) {
  GPTRAIN_CHECK(next_ < tensors_.size(), "{}: more tensors written than declared", file_.path().string());
  const auto& [name, shape] = tensors_[next_];
  GPTRAIN_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "{}: tensor {} has {} values for shape {}",
                file_.path().string(), name, values.size(), shape_string(shape));
  file_.write(values.data(), values.size() * sizeof(float));
  ++next_;
}

void SafeTensorsWriter::commit() {
  GPTRAIN_CHECK(next_ == tensors_.size(), "{}: {} of {} tensors written", file_.path().string(), next_, tensors_.size());
  file_.commit();
}

void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, Shape>> shapes;
  for (const auto& [name, t] : tensors) {
    GPTRAIN_CHECK(t.defined() && t.dtype() == DType::F32, "{}: tensor {} must be a defined f32 tensor", path.string(),
                  name);
    shapes.emplace_back(name, t.shape());
  }
  SafeTensorsWriter writer(path, shapes, metadata);
  for (const auto& [name, t] : tensors) {
    const Tensor h = t.host();  // a device's tensor one at a time through the host
    writer.write({h.data<float>(), static_cast<size_t>(h.numel())});
  }
  writer.commit();
}

}  // namespace gptrain::io
