// The live progress line (step/total, loss, tokens/s, ETA): redrawn in place on a terminal, plain
// lines at most every `plain_interval` seconds when the output is piped or redirected. Ordinary
// log lines go through print() so they never collide with the progress line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "util/timer.h"

namespace gptrain {

class Progress {
 public:
  explicit Progress(int64_t total_steps, double plain_interval = 30.0);
  // After step `step` (1-based count of steps done in total), at `loss`, `tokens_per_s` recently
  // (a NaN loss: a job without one; the line shows the count and the times only).
  void update(int64_t step, double loss, double tokens_per_s);
  void print(const std::string& line);  // a normal line (newline appended)
  void finish();                        // leaves the terminal on a fresh line

 private:
  void clear();
  int64_t total_;
  int64_t first_step_ = -1;
  bool tty_;
  bool drawn_ = false;
  double plain_interval_;
  Timer since_start_, since_plain_;
  double last_plain_ = -1e9;
};

std::string format_duration(double seconds);

}  // namespace gptrain
