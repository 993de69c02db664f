// The gradient all-reduce of data-parallel training against its message size, through the
// Communicator the loop uses (dist/communicator.h: reduce-scatter + all-gather). Run under
// mpirun: `mpirun -np 2 build/bench/allreduce_bench [--max-mb 512] [--reps 10]`. Prints one JSON
// line per size from rank 0: bytes, median seconds, algorithm bandwidth (bytes / s) and bus
// bandwidth (2 (N - 1) / N x bytes / s, the ring's traffic per rank, as NCCL's tests report it).
#include <fmt/core.h>

#include <chrono>
#include <string>
#include <vector>

#include "bench_util.h"
#include "dist/communicator.h"

using namespace gptrain;
using bench::median;

int main(int argc, char** argv) {
  double max_mb = 512;
  int reps = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--max-mb" && i + 1 < argc) max_mb = std::stod(argv[++i]);
    else if (a == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    else {
      fmt::print(stderr, "usage: allreduce_bench [--max-mb MB] [--reps N]\n");
      return 2;
    }
  }
  dist::Communicator& comm = dist::world();
  const double n = comm.size();
  for (size_t count = 256; static_cast<double>(count) * 4 <= max_mb * 1e6; count *= 4) {
    std::vector<float> data(count, 1.0f);
    std::vector<double> seconds;
    comm.all_reduce_sum(data.data(), count);  // warm-up: first touch, connections
    for (int r = 0; r < reps; ++r) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.all_reduce_sum(data.data(), count);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    double mean_median = median(seconds);  // the ranks' medians, averaged
    comm.all_reduce_sum(&mean_median, 1);
    const double worst = mean_median / n;
    const double bytes = static_cast<double>(count) * 4;
    if (comm.is_main())
      fmt::print("{{\"ranks\": {}, \"backend\": \"{}\", \"bytes\": {:.0f}, \"seconds\": {:.6f}, \"algbw_gbs\": {:.3f}, "
                 "\"busbw_gbs\": {:.3f}}}\n",
                 comm.size(), comm.backend(), bytes, worst, bytes / worst / 1e9, 2 * (n - 1) / n * bytes / worst / 1e9);
  }
  return 0;
}
