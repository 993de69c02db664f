#include "util/signals.h"

#include <csignal>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace gptrain {

namespace {

std::atomic<int> g_signal{0};
const char* g_message = "\ngptrain: stop requested; finishing the current step and saving a checkpoint "
                        "(signal again to abort)\n";

void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) {
    // second signal: default action now
    ::signal(sig, SIG_DFL);
    ::raise(sig);
    return;
  }
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, g_message, std::strlen(g_message));
}

}  // namespace

void install_stop_handlers(const char* message) {
  if (message) g_message = message;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking reads return so the loop can notice
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void restore_default_stop_handlers() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

bool stop_requested() { return g_signal.load(std::memory_order_relaxed) != 0; }
int stop_signal() { return g_signal.load(std::memory_order_relaxed); }
void reset_stop_request() { g_signal.store(0); }

}  // namespace gptrain
