// Joining torchrun-style processes into one MPI communicator. Processes that torchrun (or any
// launcher setting RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) starts are MPI singletons: Open MPI
// connects singletons only through an ompi-server that all of them know. So, before MPI_Init,
// rank 0 starts ompi-server and listens at MASTER_PORT + 1 (torchrun's agent holds MASTER_PORT);
// every other rank connects to it at MASTER_ADDR and receives the server's URI (Open MPI's pmix_server_uri). After
// MPI_Init, join() grows the world one rank at a time: ranks 0..k-1 MPI_Comm_accept on rank 0's
// port, rank k MPI_Comm_connect's to it, and the two sides merge, so the result holds the ranks in
// RANK order. The socket carries only the URI and port names (the bootstrap, as NCCL's own);
// every gradient goes through MPI. The sockets stay open while the ranks run: a rank whose peer's
// socket closes without the peer's "bye" (it was killed, or failed) prints which rank ended and
// exits 1, as mpirun ends a job whose rank died; finish() says bye at a clean exit.
#pragma once

#include <mpi.h>

#include <atomic>
#include <thread>
#include <vector>

#include "dist/communicator.h"

namespace gptrain::dist {

class Rendezvous {
 public:
  explicit Rendezvous(const LaunchInfo& info);  // before MPI_Init
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;
  MPI_Comm join();  // after MPI_Init; collective over the WORLD_SIZE processes; starts the watch
  void finish();    // a clean exit: stop watching, say bye to the peers

 private:
  void watch();
  LaunchInfo info_;
  std::atomic<bool> finishing_{false};
  std::thread watcher_;
  std::vector<int> peers_;  // rank 0: the socket of rank r at [r]; others: rank 0's at [0]
};

}  // namespace gptrain::dist
