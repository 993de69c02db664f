// The NCCL communicator: the ranks' GPUs exchange device buffers (every pointer passed to its
// collectives is device memory of this rank's GPU). Sums are reduce-scatter + all-gather, as the
// MPI communicator's, so every rank holds the same bits. Bootstrap: under mpirun/srun, rank 0's
// ncclUniqueId goes to the others over MPI; under torchrun-style variables, NCCL_COMM_ID =
// MASTER_ADDR:(MASTER_PORT + 2) gives every rank the same id and rank 0 serves NCCL's own bootstrap
// there (NCCL's mechanism; nothing of ours on the wire). The rank takes GPU local_rank.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <string>

#include "dist/communicator.h"
#include "util/error.h"

namespace gptrain::dist {

namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("{} failed: {}", what, cudaGetErrorString(e));
}
void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) fail("{} failed: {}", what, ncclGetErrorString(r));
}

template <class T>
ncclDataType_t nccl_type();
template <>
ncclDataType_t nccl_type<float>() { return ncclFloat; }
template <>
ncclDataType_t nccl_type<double>() { return ncclDouble; }

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& info, const ncclUniqueId& id) : Communicator(info) {
    int devices = 0;
    check_cuda(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
    if (devices == 0) fail("NCCL: no GPU visible to rank {}", info.rank);
    check_cuda(cudaSetDevice(info.local_rank % devices), "cudaSetDevice");
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check_nccl(ncclCommInitRank(&comm_, info.size, id, info.rank), "ncclCommInitRank");
    check_cuda(cudaMalloc(&small_, 64), "cudaMalloc");
  }
  ~NcclCommunicator() override {
    cudaFree(small_);
    cudaFree(scratch_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  const char* backend() const override { return "nccl"; }

  void all_reduce_sum(float* data, size_t count) override { sum(data, count); }
  void all_reduce_sum(double* data, size_t count) override { sum(data, count); }

  int64_t all_reduce_max(int64_t value) override {
    check_cuda(cudaMemcpyAsync(small_, &value, sizeof value, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
    check_nccl(ncclAllReduce(small_, small_, 1, ncclInt64, ncclMax, comm_, stream_), "ncclAllReduce");
    check_cuda(cudaMemcpyAsync(&value, small_, sizeof value, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    sync();
    return value;
  }
  void broadcast(void* data, size_t bytes, int root) override {
    check_nccl(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast");
    sync();
  }
  void barrier() override { all_reduce_max(0); }
  void reduce_scatter_sum(const float* send, float* recv, size_t count) override {
    check_nccl(ncclReduceScatter(send, recv, count, ncclFloat, ncclSum, comm_, stream_), "ncclReduceScatter");
    sync();
  }
  void all_gather(const float* send, float* recv, size_t count) override {
    check_nccl(ncclAllGather(send, recv, count, ncclFloat, comm_, stream_), "ncclAllGather");
    sync();
  }
  void gather(const float* send, float* recv, size_t count, int root) override {
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    if (rank() == root)
      for (int r = 0; r < size(); ++r) check_nccl(ncclRecv(recv + r * count, count, ncclFloat, r, comm_, stream_), "ncclRecv");
    check_nccl(ncclSend(send, count, ncclFloat, root, comm_, stream_), "ncclSend");
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    sync();
  }
  // NCCL's blocks are equal: a buffer that is not size x block long goes through a padded copy.
  void reduce_scatter_blocks(float* data, size_t count, size_t block) override {
    float* buf = padded(data, count, block, true);
    check_nccl(ncclReduceScatter(buf, buf + rank() * block, block, ncclFloat, ncclSum, comm_, stream_),
               "ncclReduceScatter");
    unpad(buf, data, count, block);
  }
  void all_gather_blocks(float* data, size_t count, size_t block) override {
    float* buf = padded(data, count, block, true);
    check_nccl(ncclAllGather(buf + rank() * block, buf, block, ncclFloat, comm_, stream_), "ncclAllGather");
    unpad(buf, data, count, block);
  }
  void gather_blocks(const float* send, float* recv, size_t count, size_t block, int root) override {
    const auto part = [&](int r) { return std::min(count, (r + 1) * block) - std::min(count, r * block); };
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    if (rank() == root)
      for (int r = 0; r < size(); ++r)
        if (part(r)) check_nccl(ncclRecv(recv + r * block, part(r), ncclFloat, r, comm_, stream_), "ncclRecv");
    if (part(rank())) check_nccl(ncclSend(send, part(rank()), ncclFloat, root, comm_, stream_), "ncclSend");
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    sync();
  }

 private:
  void sync() { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  template <class T>
  void sum(T* data, size_t count) {
    if (count == 0) return;
    const size_t n = static_cast<size_t>(size()), block = (count + n - 1) / n;
    T* buf = data;
    if (block * n != count) {  // pad to equal blocks in scratch
      buf = static_cast<T*>(scratch(block * n * sizeof(T)));
      check_cuda(cudaMemsetAsync(buf + count, 0, (block * n - count) * sizeof(T), stream_), "cudaMemsetAsync");
      check_cuda(cudaMemcpyAsync(buf, data, count * sizeof(T), cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
    }
    const ncclDataType_t t = nccl_type<T>();
    check_nccl(ncclReduceScatter(buf, buf + rank() * block, block, t, ncclSum, comm_, stream_), "ncclReduceScatter");
    check_nccl(ncclAllGather(buf + rank() * block, buf, block, t, comm_, stream_), "ncclAllGather");
    if (buf != data)
      check_cuda(cudaMemcpyAsync(data, buf, count * sizeof(T), cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
    sync();
  }
  float* padded(float* data, size_t count, size_t block, bool copy_in) {
    const size_t n = static_cast<size_t>(size());
    if (block * n < count) fail("NCCL: {} values in blocks of {} over {} ranks", count, block, n);
    if (block * n == count) return data;
    float* buf = static_cast<float*>(scratch(block * n * sizeof(float)));
    if (copy_in) check_cuda(cudaMemcpyAsync(buf, data, count * sizeof(float), cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
    return buf;
  }
  void unpad(float* buf, float* data, size_t count, size_t) {
    if (buf != data)
      check_cuda(cudaMemcpyAsync(data, buf, count * sizeof(float), cudaMemcpyDeviceToDevice, stream_), "cudaMemcpyAsync");
    sync();
  }
  void* scratch(size_t bytes) {
    if (bytes > scratch_bytes_) {
      cudaFree(scratch_);
      check_cuda(cudaMalloc(&scratch_, bytes), "cudaMalloc");
      scratch_bytes_ = bytes;
    }
    return scratch_;
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* small_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

}  // namespace

bool have_nccl() { return true; }

std::unique_ptr<Communicator> make_nccl() {
  const LaunchInfo info = detect_launch();
  ncclUniqueId id{};
  if (info.launcher == "torchrun" && info.size > 1) {
    const char* addr = std::getenv("MASTER_ADDR");
    if (!addr) fail("torchrun-style launch of {} ranks without MASTER_ADDR", info.size);
    const int port = bootstrap_port(2);  // torchrun's agent holds MASTER_PORT
    setenv("NCCL_COMM_ID", fmt::format("{}:{}", addr, port).c_str(), 1);  // the same id on every rank
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  } else if (info.size > 1) {  // mpirun / srun: rank 0's id over MPI
    Communicator& host = world();
    if (host.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host.broadcast(&id, sizeof id, 0);
  } else {
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  }
  return std::make_unique<NcclCommunicator>(info, id);
}

}  // namespace gptrain::dist
