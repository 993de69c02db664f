// Data-parallel communication: the processes of one training run (ranks), each with the same
// model, exchange gradients and small values through a Communicator. Three implementations: the
// single process (world size 1, every collective a copy or nothing), MPI (Open MPI from Debian,
// compiled when found), and NCCL (compiled when CUDA and NCCL are found; buffers on the device).
// Only dist/ sees mpi.h and nccl.h; train/ uses this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace gptrain::dist {

// Where this process stands in its launch, read from the launcher's environment.
struct LaunchInfo {
  int rank = 0, size = 1;              // global
  int local_rank = 0, local_size = 1;  // on this node
  std::string launcher = "none";       // "mpirun" (Open MPI), "srun" (Slurm), "torchrun", "none"
};

// Open MPI's OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}, Slurm's SLURM_{PROCID,NTASKS,
// LOCALID,NTASKS_PER_NODE}, torchrun's RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, in that
// order; none of them: one process. A variable that is set but not a number in range is an error
// naming it. `env` maps names to values (tests); the process environment when null.
LaunchInfo detect_launch(const std::map<std::string, std::string>* env = nullptr);

// Under torchrun-style variables, gptrain's own bootstraps meet at MASTER_ADDR on MASTER_PORT +
// offset (torchrun's agent holds MASTER_PORT itself, for its TCPStore): offset 1 for the MPI
// rendezvous (CPU ranks), 2 for NCCL's. An error naming MASTER_PORT when it is missing or not a port.
int bootstrap_port(int offset);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend() const = 0;  // "single", "mpi", "nccl"
  int rank() const { return info_.rank; }
  int size() const { return info_.size; }
  int local_rank() const { return info_.local_rank; }
  int local_size() const { return info_.local_size; }
  bool is_main() const { return info_.rank == 0; }  // prints and writes for the run

  // Every rank's `data` replaced by the element-wise sum over ranks. The sum is taken in one
  // order every rank shares, so all ranks hold bit-identical results.
  virtual void all_reduce_sum(float* data, size_t count) = 0;
  virtual void all_reduce_sum(double* data, size_t count) = 0;
  // The largest value over ranks (stop flags, counts).
  virtual int64_t all_reduce_max(int64_t value) = 0;
  // root's `bytes` bytes at `data` copied to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // This rank failed and is leaving: make sure the others end too (ranks joined torchrun-style
  // exit at once, so their peers see it; mpirun ends a job by itself when a rank exits non-zero).
  virtual void abandon() {}
  // root's string to every rank (its length, then its bytes). Host memory: not for NCCL.
  void broadcast_string(std::string& s, int root) {
    int64_t length = static_cast<int64_t>(s.size());
    broadcast(&length, sizeof length, root);
    s.resize(static_cast<size_t>(length));
    broadcast(s.data(), s.size(), root);
  }
  // send [size * count]: rank r receives in recv [count] the sum over ranks of send's r-th block.
  virtual void reduce_scatter_sum(const float* send, float* recv, size_t count) = 0;
  // send [count] from every rank; recv [size * count] holds them in rank order.
  virtual void all_gather(const float* send, float* recv, size_t count) = 0;
  // The same into root's recv alone (the others' recv is not touched and may be null).
  virtual void gather(const float* send, float* recv, size_t count, int root) = 0;

  // Over a buffer of `count` elements in blocks of `block` (rank r's at r * block; the last
  // rank's holds the rest), in place: afterwards rank r's block holds that block's sum over the
  // ranks (the rest of its buffer is undefined). ZeRO's reduce-scatter, with no padded copy.
  virtual void reduce_scatter_blocks(float* data, size_t count, size_t block) = 0;
  // In place: every rank's buffer gets rank r's block from rank r.
  virtual void all_gather_blocks(float* data, size_t count, size_t block) = 0;
  // Rank r's block, given compact in send, into root's recv [count] at r * block.
  virtual void gather_blocks(const float* send, float* recv, size_t count, size_t block, int root) = 0;

 protected:
  explicit Communicator(const LaunchInfo& info) : info_(info) {}
  LaunchInfo info_;
};

// The one process of an unlaunched run.
std::unique_ptr<Communicator> make_single_process();
// MPI's world communicator (MPI initialised on the first call, finalised at exit); an error
// naming the build when gptrain was built without MPI.
std::unique_ptr<Communicator> make_mpi();
// NCCL over this rank's GPU (GPU local_rank; every pointer given to it is device memory):
// bootstrapped over MPI under mpirun/srun, or by NCCL itself from MASTER_ADDR:MASTER_PORT under
// torchrun-style variables. The CUDA backend's runs use it; an error naming the build without NCCL.
std::unique_ptr<Communicator> make_nccl();
bool have_mpi();   // built with MPI
bool have_nccl();  // built with NCCL (and CUDA)

// The communicator of this process: MPI when a launcher started more than one rank, else the
// single process. Created on first use; the same object after.
Communicator& world();
// A failing process's last call: world().abandon() if the world was created, else nothing.
void abandon_world();

// The CPU threads a rank gets by default: the node's cores divided among its local ranks, no more
// than the cores the launcher bound it to, at least 1; 0 (all cores) for a rank alone on its node.
int default_threads(const Communicator& comm);

}  // namespace gptrain::dist
