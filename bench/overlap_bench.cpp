// Would overlapping the gradient all-reduce with the backward pass make a step faster here?
// A stand-in for one rank's backward: L layers, each G single-threaded sgemms; the gradient of
// MB megabytes in L buckets. Three schedules, timed side by side in one run:
//   serial:    compute all layers, then one blocking all-reduce of the whole gradient (gptrain today);
//   bucketed:  after each layer, MPI_Iallreduce of its bucket, MPI_Test of every pending bucket
//              between sgemms (how a bucketed backward drives Open MPI, which has no progress
//              thread), MPI_Waitall at the end;
//   threaded:  a second thread runs the blocking all-reduces of the buckets as layers finish
//              (MPI_THREAD_MULTIPLE), the way PyTorch DDP's reducer thread does.
// Run: OPENBLAS_NUM_THREADS=1 mpirun -np 2 build/bench/overlap_bench [--mb 650] [--layers 12]
//      [--gemms 4] [--n 1024] [--reps 3]
// Uses MPI directly (a measurement of MPI itself; src/train sees only dist::Communicator).
#include <cblas.h>
#include <fmt/core.h>
#define OMPI_SKIP_MPICXX 1  // the C API only
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Work {
  int layers = 12, gemms = 4, n = 1024;
  double mb = 650;
  std::vector<float> a, b, c;
  std::vector<std::vector<float>> buckets;
  void gemm() {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                c.data(), n);
  }
};

double serial(Work& w, double* comm_s = nullptr) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now();
  for (int l = 0; l < w.layers; ++l)
    for (int g = 0; g < w.gemms; ++g) w.gemm();
  const double t1 = now();
  for (auto& b : w.buckets)
    MPI_Allreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  if (comm_s) *comm_s = now() - t1;
  return now() - t0;
}

double bucketed(Work& w) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now();
  std::vector<MPI_Request> pending;
  auto poke = [&] {
    for (auto& r : pending) {
      int done = 0;
      MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    }
  };
  for (int l = 0; l < w.layers; ++l) {
    for (int g = 0; g < w.gemms; ++g) {
      w.gemm();
      poke();
    }
    auto& b = w.buckets[l];
    pending.emplace_back();
    MPI_Iallreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                   &pending.back());
  }
  MPI_Waitall(static_cast<int>(pending.size()), pending.data(), MPI_STATUSES_IGNORE);
  return now() - t0;
}

double threaded(Work& w) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now();
  std::mutex m;
  std::condition_variable cv;
  int ready = 0;
  std::thread reducer([&] {
    for (int l = 0; l < w.layers; ++l) {
      {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return ready > l; });
      }
      auto& b = w.buckets[l];
      MPI_Allreduce(MPI_IN_PLACE, b.data(), static_cast<int>(b.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
  });
  for (int l = 0; l < w.layers; ++l) {
    for (int g = 0; g < w.gemms; ++g) w.gemm();
    {
      std::lock_guard<std::mutex> lock(m);
      ++ready;
    }
    cv.notify_one();
  }
  reducer.join();
  return now() - t0;
}

double compute_only(Work& w) {
  const double t0 = now();
  for (int l = 0; l < w.layers; ++l)
    for (int g = 0; g < w.gemms; ++g) w.gemm();
  return now() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  Work w;
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mb") w.mb = std::stod(argv[i + 1]);
    else if (a == "--layers") w.layers = std::stoi(argv[i + 1]);
    else if (a == "--gemms") w.gemms = std::stoi(argv[i + 1]);
    else if (a == "--n") w.n = std::stoi(argv[i + 1]);
    else if (a == "--reps") reps = std::stoi(argv[i + 1]);
  }
  const size_t nn = static_cast<size_t>(w.n) * w.n;
  w.a.assign(nn, 0.5f);
  w.b.assign(nn, 0.25f);
  w.c.assign(nn, 0.0f);
  const size_t per_bucket = static_cast<size_t>(w.mb * 1e6 / 4 / w.layers);
  w.buckets.assign(w.layers, std::vector<float>(per_bucket, 1.0f));
  if (rank == 0)
    fmt::print("# {} ranks, thread level {} (MULTIPLE = {}), {} layers x {} sgemm n={}, gradient {:.1f} MB in {} buckets\n",
               size, provided, MPI_THREAD_MULTIPLE, w.layers, w.gemms, w.n, per_bucket * 4.0 * w.layers / 1e6,
               w.layers);
  serial(w);  // warm-up: first touch of the buckets, shared-memory segments
  std::vector<double> ts, tb, tt, tc, ta;
  for (int r = 0; r < reps; ++r) {
    tc.push_back(compute_only(w));
    double comm = 0;
    ts.push_back(serial(w, &comm));
    ta.push_back(comm);
    tb.push_back(bucketed(w));
    if (provided >= MPI_THREAD_MULTIPLE) tt.push_back(threaded(w));
  }
  auto med = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double m[5] = {med(tc), med(ts), med(tb), med(tt), med(ta)};
  MPI_Allreduce(MPI_IN_PLACE, m, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank sets the step
  if (rank == 0)
    fmt::print("{{\"compute_s\": {:.3f}, \"serial_s\": {:.3f}, \"bucketed_s\": {:.3f}, \"threaded_s\": {:.3f}, "
               "\"allreduce_s\": {:.3f}}}\n",
               m[0], m[1], m[2], m[3], m[4]);
  MPI_Finalize();
  return 0;
}
