#include "util/progress.h"

#include <cmath>

#include <fmt/core.h>
#include <unistd.h>

namespace gptrain {

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const int64_t t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(int64_t total_steps, double plain_interval)
    : total_(total_steps), tty_(::isatty(STDOUT_FILENO) != 0), plain_interval_(plain_interval) {}

void Progress::clear() {
  if (tty_ && drawn_) {
    fmt::print("\r\033[2K");
    drawn_ = false;
  }
}

void Progress::update(int64_t step, double loss, double tokens_per_s) {
  if (first_step_ < 0) {
    first_step_ = step - 1;
    since_start_.reset();
  }
  const double elapsed = since_start_.seconds();
  const int64_t done = step - first_step_;
  const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - step) : -1;
  // A NaN loss (a job without one, e.g. judge) leaves out loss and speed.
  const std::string line =
      std::isnan(loss) ? fmt::format("{}/{} | elapsed {} | ETA {}", step, total_, format_duration(elapsed), format_duration(eta))
                       : fmt::format("step {}/{} | loss {:.3f} | {:.0f} tok/s | elapsed {} | ETA {}", step, total_, loss,
                                     tokens_per_s, format_duration(elapsed), format_duration(eta));
  if (tty_) {
    fmt::print("\r\033[2K{}", line);
    std::fflush(stdout);
    drawn_ = true;
  } else if (since_plain_.seconds() - last_plain_ >= plain_interval_ || step == total_) {
    last_plain_ = since_plain_.seconds();
    fmt::print("[progress] {}\n", line);
    std::fflush(stdout);
  }
}

void Progress::print(const std::string& line) {
  clear();
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

void Progress::finish() {
  if (tty_ && drawn_) fmt::print("\n");
  drawn_ = false;
  std::fflush(stdout);
}

}  // namespace gptrain
