// NCCL's communicator comes with the CUDA backend (issue 20); until then this build has none.
#include "dist/communicator.h"

namespace gptrain::dist {

bool have_nccl() { return false; }

}  // namespace gptrain::dist
