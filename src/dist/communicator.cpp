#include "dist/communicator.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

#include "util/error.h"

namespace gptrain::dist {

namespace {

class SingleProcess final : public Communicator {
 public:
  SingleProcess() : Communicator(LaunchInfo{}) {}
  const char* backend() const override { return "single"; }
  void all_reduce_sum(float*, size_t) override {}
  void all_reduce_sum(double*, size_t) override {}
  int64_t all_reduce_max(int64_t value) override { return value; }
  void broadcast(void*, size_t, int root) override {
    if (root != 0) fail("broadcast from rank {} in a world of one process", root);
  }
  void barrier() override {}
  void reduce_scatter_sum(const float* send, float* recv, size_t count) override {
    if (send != recv) std::memmove(recv, send, count * sizeof(float));
  }
  void all_gather(const float* send, float* recv, size_t count) override {
    if (send != recv) std::memmove(recv, send, count * sizeof(float));
  }
  void gather(const float* send, float* recv, size_t count, int root) override {
    if (root != 0) fail("gather to rank {} in a world of one process", root);
    if (send != recv) std::memmove(recv, send, count * sizeof(float));
  }
  void reduce_scatter_blocks(float*, size_t, size_t) override {}
  void all_gather_blocks(float*, size_t, size_t) override {}
  void gather_blocks(const float* send, float* recv, size_t count, size_t, int root) override {
    gather(send, recv, count, root);
  }
};

std::optional<std::string> lookup(const std::map<std::string, std::string>* env, const char* name) {
  if (env) {
    const auto it = env->find(name);
    if (it == env->end()) return std::nullopt;
    return it->second;
  }
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

int parse_count(const std::map<std::string, std::string>* env, const char* name, int min_value) {
  const std::string text = *lookup(env, name);
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < min_value || v > (1 << 24))
    fail("the launcher's {}={:?} is not a number of at least {}", name, text, min_value);
  return static_cast<int>(v);
}

// Slurm's SLURM_NTASKS_PER_NODE may read "4" or "4(x2)"; the tasks on this node are then those.
int slurm_local_size(const std::map<std::string, std::string>* env) {
  for (const char* name : {"SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    const auto v = lookup(env, name);
    if (!v) continue;
    const int n = std::atoi(v->c_str());
    if (n >= 1) return n;
  }
  return 1;
}

}  // namespace

LaunchInfo detect_launch(const std::map<std::string, std::string>* env) {
  struct Scheme {
    const char* launcher;
    const char *rank, *size, *local_rank, *local_size;
  };
  static const Scheme schemes[] = {
      {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
       "OMPI_COMM_WORLD_LOCAL_SIZE"},
      {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", nullptr},
      {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
  };
  for (const Scheme& s : schemes) {
    if (!lookup(env, s.size) || !lookup(env, s.rank)) continue;
    LaunchInfo info;
    info.launcher = s.launcher;
    info.size = parse_count(env, s.size, 1);
    info.rank = parse_count(env, s.rank, 0);
    if (info.rank >= info.size) fail("the launcher's {}={} is not below {}={}", s.rank, info.rank, s.size, info.size);
    info.local_rank = lookup(env, s.local_rank) ? parse_count(env, s.local_rank, 0) : 0;
    info.local_size = s.local_size ? (lookup(env, s.local_size) ? parse_count(env, s.local_size, 1) : 1)
                                   : slurm_local_size(env);
    if (info.local_rank >= info.local_size)
      fail("the launcher's {}={} is not below its local size {}", s.local_rank, info.local_rank, info.local_size);
    return info;
  }
  return LaunchInfo{};
}

int bootstrap_port(int offset) {
  const char* v = std::getenv("MASTER_PORT");
  if (!v || !*v) fail("torchrun-style launch without MASTER_PORT (and MASTER_ADDR): set both, or start with mpirun");
  char* end = nullptr;
  const long port = std::strtol(v, &end, 10);
  if (*end != '\0' || port < 1 || port + offset > 65535)
    fail("MASTER_PORT={} is not a TCP port gptrain can use (it needs MASTER_PORT + {} too)", v, offset);
  return static_cast<int>(port + offset);
}

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

namespace {
Communicator* created_world = nullptr;
}

void abandon_world() {
  if (created_world) created_world->abandon();
}

Communicator& world() {
  static std::unique_ptr<Communicator> comm = [] {
    const LaunchInfo info = detect_launch();
    if (info.size == 1) return make_single_process();
    if (!have_mpi())
      fail("launched as rank {} of {} by {}, but this gptrain was built without MPI (install libopenmpi-dev and "
           "rebuild)",
           info.rank, info.size, info.launcher);
    return make_mpi();
  }();
  created_world = comm.get();
  return *comm;
}

int default_threads(const Communicator& comm) {
  if (comm.local_size() == 1) return 0;
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int per_rank = static_cast<int>(std::max<long>(1, cores) / comm.local_size());
  cpu_set_t bound;  // a launcher that binds ranks to cores (Open MPI's default for 2 ranks) caps them
  if (sched_getaffinity(0, sizeof bound, &bound) == 0) per_rank = std::min(per_rank, CPU_COUNT(&bound));
  return std::max(1, per_rank);
}

}  // namespace gptrain::dist
