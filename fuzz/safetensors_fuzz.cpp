// libFuzzer target for the safetensors reader (the reference fuzzes SafeTensors::deserialize the
// same way): any byte string must either be rejected with gptrain::Error or yield tensors whose
// every byte lies inside the input. Any other exception, a sanitizer report, a leak or a hang is a
// bug. Build instructions: fuzz/CMakeLists.txt.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/safetensors.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using gptrain::io::SafeTensorsFile;
  try {
    const SafeTensorsFile file =
        SafeTensorsFile::from_bytes(nullptr, {reinterpret_cast<const std::byte*>(data), size}, "fuzz-input");
    volatile unsigned sink = 0;
    for (const gptrain::io::TensorInfo& t : file.tensors()) {
      // Touch the first and last byte of each view: ASan reports any that lies outside the input.
      const std::span<const std::byte> raw = file.raw(t.name);
      if (!raw.empty()) sink = sink + static_cast<unsigned>(raw.front()) + static_cast<unsigned>(raw.back());
      if (file.find(t.name) != &t) __builtin_trap();  // the index must agree with the list
      if (t.dtype == "F32" || t.dtype == "F64" || t.dtype == "F16" || t.dtype == "BF16") {
        const gptrain::Tensor x = file.load(t.name);
        if (x.numel() != t.numel()) __builtin_trap();
        if (x.numel()) sink = sink + static_cast<unsigned>(x[x.numel() - 1] > 0.0f);
        const gptrain::Tensor h = file.load_as(t.name, gptrain::DType::BF16);  // kept or rounded
        if (h.numel() != t.numel()) __builtin_trap();
      }
    }
    for (const auto& [key, value] : file.metadata()) sink = sink + static_cast<unsigned>(key.size() + value.size());
  } catch (const gptrain::Error&) {
    // A clean rejection: what hostile input should get.
  }
  return 0;
}
