// Built without CUDA or NCCL.
#include "dist/communicator.h"
#include "util/error.h"

namespace gptrain::dist {

bool have_nccl() { return false; }

std::unique_ptr<Communicator> make_nccl() {
  fail("this gptrain was built without NCCL (it needs the CUDA toolkit and libnccl at build time)");
}

}  // namespace gptrain::dist
