// The MPI communicator (Open MPI). Sums are reduce-scatter + all-gather (MPI_Reduce_scatter_block,
// MPI_Allgather): each block is reduced on one rank, in one order, and copied to the others, so
// every rank ends with the same bits (MPI_Allreduce does not promise that). Errors are fatal: a
// rank that dies makes mpirun end the others, naming it. Under mpirun/srun the ranks are
// MPI_COMM_WORLD; started torchrun-style they join one communicator through ompi-server.
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <memory>
#include <unistd.h>
#include <type_traits>
#include <vector>

#include "dist/communicator.h"
#include "dist/mpi_rendezvous.h"
#include "util/error.h"

namespace gptrain::dist {

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("{} failed: {}", what, std::string(text, static_cast<size_t>(len)));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const LaunchInfo& info, MPI_Comm comm, std::unique_ptr<Rendezvous> rendezvous)
      : Communicator(info), comm_(comm), rendezvous_(std::move(rendezvous)) {}
  // Destroyed at a clean exit (world() is a static), before MPI_Finalize runs.
  ~MpiCommunicator() override {
    if (rendezvous_) rendezvous_->finish();
  }
  void abandon() override {
    if (!rendezvous_) return;  // under mpirun, mpirun ends the others when this rank exits non-zero
    std::fflush(nullptr);
    ::_exit(1);  // no bye: the peers' watch sees this rank end
  }
  const char* backend() const override { return "mpi"; }

  void all_reduce_sum(float* data, size_t count) override { sum(data, count); }
  void all_reduce_sum(double* data, size_t count) override { sum(data, count); }

  int64_t all_reduce_max(int64_t value) override {
    int64_t out = 0;
    check(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, comm_), "MPI_Allreduce");
    return out;
  }
  void broadcast(void* data, size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes;) {  // MPI counts are int
      const int n = static_cast<int>(std::min<size_t>(bytes - done, 1u << 30));
      check(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_), "MPI_Bcast");
      done += static_cast<size_t>(n);
    }
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  void reduce_scatter_sum(const float* send, float* recv, size_t count) override {
    check(MPI_Reduce_scatter_block(send, recv, static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm_),
          "MPI_Reduce_scatter_block");
  }
  void all_gather(const float* send, float* recv, size_t count) override {
    check(MPI_Allgather(send, static_cast<int>(count), MPI_FLOAT, recv, static_cast<int>(count), MPI_FLOAT,
                        comm_),
          "MPI_Allgather");
  }
  void reduce_scatter_blocks(float* data, size_t count, size_t block) override {
    const Blocks b = blocks(count, block);
    // MPI_IN_PLACE leaves rank r's result at the start of its buffer: move it to its block.
    check(MPI_Reduce_scatter(MPI_IN_PLACE, data, b.counts.data(), MPI_FLOAT, MPI_SUM, comm_),
          "MPI_Reduce_scatter");
    const size_t mine = static_cast<size_t>(b.counts[static_cast<size_t>(rank())]);
    std::memmove(data + static_cast<size_t>(b.displs[static_cast<size_t>(rank())]), data, mine * sizeof(float));
  }
  void all_gather_blocks(float* data, size_t count, size_t block) override {
    const Blocks b = blocks(count, block);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, b.counts.data(), b.displs.data(), MPI_FLOAT,
                         comm_),
          "MPI_Allgatherv");
  }
  void gather_blocks(const float* send, float* recv, size_t count, size_t block, int root) override {
    const Blocks b = blocks(count, block);
    check(MPI_Gatherv(send, b.counts[static_cast<size_t>(rank())], MPI_FLOAT, recv, b.counts.data(), b.displs.data(),
                      MPI_FLOAT, root, comm_),
          "MPI_Gatherv");
  }
  void gather(const float* send, float* recv, size_t count, int root) override {
    check(MPI_Gather(send, static_cast<int>(count), MPI_FLOAT, recv, static_cast<int>(count), MPI_FLOAT, root,
                     comm_),
          "MPI_Gather");
  }

 private:
  // In place: blocks of ceil(count / size) reduced on their rank and gathered back; the tail
  // beyond the last whole block is padded into scratch.
  template <class T>
  void sum(T* data, size_t count) {
    const size_t n = static_cast<size_t>(size());
    const size_t block = (count + n - 1) / n;
    if (count == 0) return;
    if (block > static_cast<size_t>(1) << 30) fail("all-reduce of {} values: more than MPI's int count per rank", count);
    const MPI_Datatype t = mpi_type<T>();
    const bool padded = block * n != count;
    if (padded) scratch_.resize(block * n * sizeof(T));
    T* send = data;
    if (padded) {
      send = reinterpret_cast<T*>(scratch_.data());
      std::copy(data, data + count, send);
      std::fill(send + count, send + block * n, T(0));
    }
    std::vector<T>& mine = block_of<T>();
    mine.resize(block);
    check(MPI_Reduce_scatter_block(send, mine.data(), static_cast<int>(block), t, MPI_SUM, comm_),
          "MPI_Reduce_scatter_block");
    check(MPI_Allgather(mine.data(), static_cast<int>(block), t, send, static_cast<int>(block), t, comm_),
          "MPI_Allgather");
    if (padded) std::copy(send, send + count, data);
  }
  template <class T>
  std::vector<T>& block_of() {
    if constexpr (std::is_same_v<T, float>)
      return block_f_;
    else
      return block_d_;
  }
  struct Blocks {
    std::vector<int> counts, displs;
  };
  Blocks blocks(size_t count, size_t block) const {
    if (count > static_cast<size_t>(1) << 31 || block * static_cast<size_t>(size()) < count)
      fail("{} values in blocks of {} over {} ranks: beyond MPI's int counts or not covered", count, block, size());
    Blocks b;
    for (int r = 0; r < size(); ++r) {
      const size_t begin = std::min(count, static_cast<size_t>(r) * block), end = std::min(count, begin + block);
      b.counts.push_back(static_cast<int>(end - begin));
      b.displs.push_back(static_cast<int>(begin));
    }
    return b;
  }
  MPI_Comm comm_;  // MPI_COMM_WORLD, or the world joined torchrun-style
  std::unique_ptr<Rendezvous> rendezvous_;
  std::vector<char> scratch_;
  std::vector<float> block_f_;
  std::vector<double> block_d_;
};

}  // namespace

bool have_mpi() { return true; }

std::unique_ptr<Communicator> make_mpi() {
  LaunchInfo info = detect_launch();
  const bool torchrun = info.launcher == "torchrun" && info.size > 1;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized && torchrun) fail("torchrun-style launch: MPI was initialised before gptrain could join its ranks");
  // Torchrun-style processes are MPI singletons: ompi-server and a rendezvous at MASTER_ADDR set
  // up before MPI_Init, the world joined after it (mpi_rendezvous.h).
  std::unique_ptr<Rendezvous> rendezvous;
  if (torchrun) rendezvous = std::make_unique<Rendezvous>(info);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
  }
  MPI_Comm comm = torchrun ? rendezvous->join() : MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (rank != info.rank || size != info.size) {  // e.g. a launcher the variables did not describe
    info.rank = rank;
    info.size = size;
  }
  MPI_Comm local;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &info.local_rank);
  MPI_Comm_size(local, &info.local_size);
  MPI_Comm_free(&local);
  if (info.launcher == "none") info.launcher = "mpi";
  return std::make_unique<MpiCommunicator>(info, comm, std::move(rendezvous));
}

}  // namespace gptrain::dist
