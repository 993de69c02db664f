#include "kernels/backend.h"


#include "util/error.h"

namespace gptrain::kernels {

namespace {

std::vector<const Backend*>& registry() {
  static std::vector<const Backend*> list{&cpu_backend(), &cpu_bf16_backend(), &ref_backend()};
  return list;
}

}  // namespace

void register_backend(const Backend* backend) { registry().push_back(backend); }

std::vector<const Backend*> backends() { return registry(); }

const Backend& backend_for(Device device, DType dtype) {
  for (const Backend* b : registry())
    if (b->device() == device && b->dtype() == dtype) return *b;
  if (device == Device::CPU && dtype == DType::F16)
    fail("f16 tensors are a storage format on the CPU; the kernels compute in f32 or bf16 (convert with to(DType::F32))");
  for (const Backend* b : registry())
    if (b->device() == device)
      fail("no {} kernels on {}: its backend ({}) computes in other types (the {} kernels are not built yet)",
           dtype_name(dtype), device_name(device), b->name(), dtype_name(dtype));
  if (device != Device::CPU) fail("no {} kernels for {}: gptrain was built without {} support", dtype_name(dtype),
                                  device_name(device), device_name(device));
  fail("no kernels compute in {} on {}", dtype_name(dtype), device_name(device));
}

}  // namespace gptrain::kernels
