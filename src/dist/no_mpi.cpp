// Built without MPI: one process only.
#include "dist/communicator.h"
#include "util/error.h"

namespace gptrain::dist {

bool have_mpi() { return false; }

std::unique_ptr<Communicator> make_mpi() {
  fail("this gptrain was built without MPI (install libopenmpi-dev and rebuild to run under mpirun)");
}

}  // namespace gptrain::dist
