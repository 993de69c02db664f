#include "dist/mpi_rendezvous.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "util/error.h"

namespace gptrain::dist {

namespace {

using Clock = std::chrono::steady_clock;

// How long ranks wait for each other (torchrun's own rendezvous waits 900 s by default; ranks
// started by hand may be seconds apart). GPTRAIN_RENDEZVOUS_TIMEOUT overrides, in seconds.
Clock::time_point deadline() {
  double seconds = 300;
  if (const char* v = std::getenv("GPTRAIN_RENDEZVOUS_TIMEOUT")) seconds = std::atof(v);
  return Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

int remaining_ms(Clock::time_point until) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
  return ms > 0 ? static_cast<int>(ms) : 0;
}

std::string env_or_fail(const char* name, int size) {
  const char* v = std::getenv(name);
  if (!v || !*v) fail("torchrun-style launch of {} ranks without {}", size, name);
  return v;
}

void send_line(int fd, const std::string& line, const char* what) {
  const std::string data = line + "\n";
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) fail("rendezvous: sending the {} failed: {}", what, std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

std::string read_line(int fd, Clock::time_point until, const char* what) {
  std::string line;
  char c = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms(until));
    if (ready == 0) fail("rendezvous: timed out waiting for the {}", what);
    if (ready < 0 && errno == EINTR) continue;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    if (n == 0) fail("rendezvous: the peer closed the connection before sending the {} (did it fail?)", what);
    if (n < 0) fail("rendezvous: reading the {} failed: {}", what, std::strerror(errno));
    if (c == '\n') return line;
    if (line.size() > 4096) fail("rendezvous: the {} is longer than 4 KB: not a gptrain peer", what);
    line += c;
  }
}

addrinfo* resolve(const std::string& host, const std::string& port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(passive ? nullptr : host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0) fail("rendezvous: MASTER_ADDR={}, port {}: {}", host, port, gai_strerror(rc));
  return found;
}

int listen_at(const std::string& port) {
  addrinfo* found = resolve("", port, true);
  int fd = -1;
  std::string why = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ai_family == AF_INET6) {
      const int zero = 0;  // IPv4 peers too
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 64) == 0) break;
    why = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(found);
  if (fd < 0) fail("rendezvous: rank 0 cannot listen at port {} (MASTER_PORT + 1): {}", port, why);
  return fd;
}

int connect_to(const std::string& host, const std::string& port, Clock::time_point until) {
  for (;;) {  // rank 0 may not listen yet: retry until the deadline
    addrinfo* found = resolve(host, port, false);
    for (addrinfo* a = found; a; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        ::freeaddrinfo(found);
        return fd;
      }
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (remaining_ms(until) == 0)
      fail("rendezvous: no rank 0 listening at MASTER_ADDR={} port {} (MASTER_PORT + 1): timed out", host, port);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

pid_t server_pid = -1;

void stop_server() {
  if (server_pid <= 0) return;
  ::kill(server_pid, SIGTERM);
  ::waitpid(server_pid, nullptr, 0);
  server_pid = -1;
}

// Open MPI's ompi-server, a child that dies with this process; its URI once it has written it.
std::string start_ompi_server(Clock::time_point until) {
  char dir_template[] = "/tmp/gptrain-ompi-server-XXXXXX";
  if (!::mkdtemp(dir_template)) fail("rendezvous: cannot make a temporary dir: {}", std::strerror(errno));
  const std::string dir = dir_template, uri_file = dir + "/uri";
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("rendezvous: fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::execlp("ompi-server", "ompi-server", "--no-daemonize", "-r", uri_file.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  server_pid = pid;
  std::atexit(stop_server);  // registered before MPI_Init's finalizer, so it runs after it
  for (;;) {
    std::ifstream in(uri_file);
    std::string uri;
    if (in && std::getline(in, uri) && !uri.empty()) {
      ::unlink(uri_file.c_str());
      ::rmdir(dir.c_str());
      return uri;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server_pid = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        fail("torchrun-style launch on CPUs needs Open MPI's ompi-server on PATH (Debian: openmpi-bin)");
      fail("rendezvous: ompi-server exited before reporting its URI (status {})", status);
    }
    if (remaining_ms(until) == 0) fail("rendezvous: ompi-server did not report its URI in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fail("rendezvous: {} failed: {}", what, std::string(text, static_cast<size_t>(len)));
}

}  // namespace

Rendezvous::Rendezvous(const LaunchInfo& info) : info_(info), peers_(static_cast<size_t>(info.size), -1) {
  const std::string addr = env_or_fail("MASTER_ADDR", info.size), port = std::to_string(bootstrap_port(1));
  const Clock::time_point until = deadline();
  const std::string hello = "gptrain-rendezvous 1 size " + std::to_string(info.size);
  std::string uri;
  if (info.rank == 0) {
    uri = start_ompi_server(until);
    const int listener = listen_at(port);
    for (int joined = 1; joined < info.size; ++joined) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(until)) <= 0)
        fail("rendezvous: {} of {} ranks reached port {} (MASTER_PORT + 1) before the timeout", joined, info.size,
             port);
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) fail("rendezvous: accept failed: {}", std::strerror(errno));
      const std::string line = read_line(fd, until, "greeting");
      const size_t rank_at = line.rfind(" rank ");
      if (rank_at == std::string::npos || line.substr(0, rank_at) != hello)
        fail("rendezvous: a peer at port {} said '{}', expected '{} rank R' (a different WORLD_SIZE or "
             "not gptrain)",
             port, line, hello);
      const int r = std::atoi(line.c_str() + rank_at + 6);
      if (r <= 0 || r >= info.size || peers_[static_cast<size_t>(r)] >= 0)
        fail("rendezvous: rank {} joined twice or is out of range for WORLD_SIZE={}", r, info.size);
      peers_[static_cast<size_t>(r)] = fd;
    }
    ::close(listener);
    for (int r = 1; r < info.size; ++r) send_line(peers_[static_cast<size_t>(r)], uri, "ompi-server URI");
  } else {
    peers_[0] = connect_to(addr, port, until);
    send_line(peers_[0], hello + " rank " + std::to_string(info.rank), "greeting");
    uri = read_line(peers_[0], until, "ompi-server URI from rank 0");
  }
  ::setenv("OMPI_MCA_pmix_server_uri", uri.c_str(), 1);
}

Rendezvous::~Rendezvous() {
  if (watcher_.joinable()) {  // not finished cleanly: the peers see the sockets close without a bye
    finishing_ = true;
    watcher_.join();
  }
  for (int fd : peers_)
    if (fd >= 0) ::close(fd);
}

void Rendezvous::finish() {
  finishing_ = true;
  if (watcher_.joinable()) watcher_.join();
  for (int& fd : peers_)
    if (fd >= 0) {
      const char bye[] = "bye\n";
      (void)::send(fd, bye, sizeof bye - 1, MSG_NOSIGNAL);
      ::close(fd);
      fd = -1;
    }
}

void Rendezvous::watch() {
  std::vector<int> ranks;
  std::vector<pollfd> fds;
  for (size_t r = 0; r < peers_.size(); ++r)
    if (peers_[r] >= 0) {
      ranks.push_back(static_cast<int>(r));
      fds.push_back(pollfd{peers_[r], POLLIN, 0});
    }
  while (!finishing_ && !fds.empty()) {
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      char buffer[8];
      const ssize_t n = ::recv(fds[i].fd, buffer, sizeof buffer, 0);
      if (n > 0 && std::string(buffer, static_cast<size_t>(n)).rfind("bye", 0) == 0) {
        fds[i].fd = -1;  // that peer finished cleanly; poll ignores negative fds
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      std::fprintf(stderr,
                   "gptrain: rank %d of %d ended without finishing (its connection to rank %d closed); rank %d "
                   "stops\n",
                   ranks[i], info_.size, info_.rank, info_.rank);
      std::fflush(nullptr);
      ::_exit(1);
    }
    bool open = false;
    for (const pollfd& p : fds) open |= p.fd >= 0;
    if (!open) return;
  }
}

MPI_Comm Rendezvous::join() {
  const Clock::time_point until = deadline();
  MPI_Comm group = MPI_COMM_NULL;
  char port[MPI_MAX_PORT_NAME] = {};
  if (info_.rank == 0) {
    check_mpi(MPI_Open_port(MPI_INFO_NULL, port), "MPI_Open_port");
    check_mpi(MPI_Comm_dup(MPI_COMM_SELF, &group), "MPI_Comm_dup");
  } else {
    const std::string name = read_line(peers_[0], until, "MPI port name from rank 0");
    if (name.size() >= sizeof port) fail("rendezvous: rank 0's MPI port name is too long");
    std::memcpy(port, name.data(), name.size());
    MPI_Comm inter = MPI_COMM_NULL;
    check_mpi(MPI_Comm_connect(port, MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter), "MPI_Comm_connect");
    check_mpi(MPI_Intercomm_merge(inter, 1, &group), "MPI_Intercomm_merge");
    MPI_Comm_free(&inter);
  }
  // Ranks 0..k-1 take in rank k, in order, until all have joined.
  for (int k = info_.rank + 1; k < info_.size; ++k) {
    if (info_.rank == 0) send_line(peers_[static_cast<size_t>(k)], port, "MPI port name");
    MPI_Comm inter = MPI_COMM_NULL, grown = MPI_COMM_NULL;
    check_mpi(MPI_Comm_accept(port, MPI_INFO_NULL, 0, group, &inter), "MPI_Comm_accept");
    check_mpi(MPI_Intercomm_merge(inter, 0, &grown), "MPI_Intercomm_merge");
    MPI_Comm_free(&inter);
    MPI_Comm_free(&group);
    group = grown;
  }
  if (info_.rank == 0) MPI_Close_port(port);
  MPI_Comm_set_errhandler(group, MPI_ERRORS_ARE_FATAL);
  watcher_ = std::thread([this] { watch(); });
  return group;
}

}  // namespace gptrain::dist
