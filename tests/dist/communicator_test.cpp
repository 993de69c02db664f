// The launch read from each launcher's variables, the single process, and (under mpirun -np 2,
// the dist_test_2_ranks test) MPI's collectives: sums correct for any count and bit-identical on
// every rank, reduce-scatter / all-gather blocks in rank order, broadcast, max.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "util/error.h"

namespace gptrain::dist {
namespace {

using Env = std::map<std::string, std::string>;

TEST(Launch, reads_each_launchers_variables) {
  const Env none;
  EXPECT_EQ(detect_launch(&none).size, 1);
  EXPECT_EQ(detect_launch(&none).launcher, "none");
  const Env ompi{{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}};
  const LaunchInfo a = detect_launch(&ompi);
  EXPECT_EQ(a.launcher, "mpirun");
  EXPECT_EQ(a.rank, 3);
  EXPECT_EQ(a.size, 8);
  EXPECT_EQ(a.local_rank, 1);
  EXPECT_EQ(a.local_size, 2);
  const Env slurm{{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "2"}, {"SLURM_NTASKS_PER_NODE", "3(x2)"}};
  const LaunchInfo b = detect_launch(&slurm);
  EXPECT_EQ(b.launcher, "srun");
  EXPECT_EQ(b.rank, 5);
  EXPECT_EQ(b.local_size, 3);
  const Env torch{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                  {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}};
  const LaunchInfo c = detect_launch(&torch);
  EXPECT_EQ(c.launcher, "torchrun");
  EXPECT_EQ(c.size, 4);
  EXPECT_EQ(c.local_size, 4);
}

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Launch, bad_variables_are_errors_naming_them) {
  const Env not_number{{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "2"}};
  expect_error([&] { detect_launch(&not_number); }, "OMPI_COMM_WORLD_RANK=\"x\"");
  const Env too_big{{"RANK", "4"}, {"WORLD_SIZE", "4"}};
  expect_error([&] { detect_launch(&too_big); }, "RANK=4 is not below WORLD_SIZE=4");
  const Env zero{{"WORLD_SIZE", "0"}, {"RANK", "0"}};
  expect_error([&] { detect_launch(&zero); }, "WORLD_SIZE=\"0\"");
}

TEST(Launch, torchrun_bootstraps_meet_beside_master_port) {
  const char* saved = std::getenv("MASTER_PORT");
  const std::string keep = saved ? saved : "";
  setenv("MASTER_PORT", "29500", 1);
  EXPECT_EQ(bootstrap_port(1), 29501);  // torchrun's agent holds 29500 itself
  EXPECT_EQ(bootstrap_port(2), 29502);
  for (const char* bad : {"", "x29500", "0", "65535"}) {
    setenv("MASTER_PORT", bad, 1);
    EXPECT_THROW(bootstrap_port(1), Error) << bad;
  }
  if (saved)
    setenv("MASTER_PORT", keep.c_str(), 1);
  else
    unsetenv("MASTER_PORT");
}

TEST(SingleProcess, collectives_are_identities) {
  const auto c = make_single_process();
  EXPECT_EQ(c->size(), 1);
  EXPECT_TRUE(c->is_main());
  std::vector<float> v{1.5f, -2.0f};
  c->all_reduce_sum(v.data(), v.size());
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(c->all_reduce_max(7), 7);
  std::vector<float> out(2);
  c->reduce_scatter_sum(v.data(), out.data(), 2);
  EXPECT_EQ(out, v);
  EXPECT_EQ(default_threads(*c), 0);  // alone on its node: every core
}

// Under mpirun -np 2 (or more): the collectives of MPI.
class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (world().size() < 2) GTEST_SKIP() << "needs 2 or more ranks: ctest runs this under mpirun (dist_test_2_ranks)";
  }
};

TEST_F(Mpi, sums_are_right_and_the_same_bits_on_every_rank) {
  Communicator& c = world();
  const int n = c.size(), r = c.rank();
  for (size_t count : {1u, 2u, 3u, 7u, 1000u, 4097u}) {  // counts that do and do not split evenly
    std::vector<float> v(count);
    std::vector<double> d(count);
    for (size_t i = 0; i < count; ++i) {
      v[i] = std::sin(static_cast<float>(i * 7 + r * 13)) * std::pow(10.0f, static_cast<float>(i % 5) - 2);
      d[i] = v[i];
    }
    // The exact sum (double holds every partial sum of these few floats within its own rounding)
    // and the bound of recursive summation over n terms: gamma_{n-1} * sum |x| in each precision.
    std::vector<double> want(count, 0.0), abs_sum(count, 0.0);
    for (int k = 0; k < n; ++k)
      for (size_t i = 0; i < count; ++i) {
        const float x = std::sin(static_cast<float>(i * 7 + k * 13)) * std::pow(10.0f, static_cast<float>(i % 5) - 2);
        want[i] += x;
        abs_sum[i] += std::fabs(x);
      }
    const auto gamma = [&](double u) { return (n - 1) * u / (1 - (n - 1) * u); };
    c.all_reduce_sum(v.data(), count);
    c.all_reduce_sum(d.data(), count);
    for (size_t i = 0; i < count; ++i) {
      EXPECT_LE(std::fabs(v[i] - want[i]), (gamma(0x1.0p-24) + gamma(0x1.0p-53)) * abs_sum[i]) << "element " << i;
      EXPECT_LE(std::fabs(d[i] - want[i]), 2 * gamma(0x1.0p-53) * abs_sum[i]) << "element " << i;
    }
    // Every rank holds the same bits: gather everyone's result and compare with ours.
    std::vector<float> all(count * static_cast<size_t>(n));
    c.all_gather(v.data(), all.data(), count);
    for (int k = 0; k < n; ++k)
      EXPECT_EQ(std::memcmp(all.data() + k * count, v.data(), count * sizeof(float)), 0) << "rank " << k << " differs";
  }
}

TEST_F(Mpi, reduce_scatter_all_gather_broadcast_and_max) {
  Communicator& c = world();
  const int n = c.size(), r = c.rank();
  const size_t count = 5;
  std::vector<float> send(count * n);
  for (size_t i = 0; i < send.size(); ++i) send[i] = static_cast<float>(i + 100 * r);
  std::vector<float> mine(count);
  c.reduce_scatter_sum(send.data(), mine.data(), count);
  for (size_t i = 0; i < count; ++i) {
    float want = 0;
    for (int k = 0; k < n; ++k) want += static_cast<float>(r * count + i + 100 * k);
    EXPECT_EQ(mine[i], want);
  }
  std::vector<float> gathered(count * n);
  const std::vector<float> part(count, static_cast<float>(r));
  c.all_gather(part.data(), gathered.data(), count);
  for (int k = 0; k < n; ++k) EXPECT_EQ(gathered[k * count], static_cast<float>(k));
  int64_t value = r == n - 1 ? 42 : -1;
  c.broadcast(&value, sizeof value, n - 1);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(c.all_reduce_max(r), n - 1);
  c.barrier();
}

}  // namespace
}  // namespace gptrain::dist
