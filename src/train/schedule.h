// Learning-rate schedule of the book's appendix D: linear warmup from an initial lr to the peak,
// then (optionally) cosine decay to a minimum; constant peak lr when neither is configured.
#pragma once

#include <cmath>
#include <cstdint>

namespace gptrain {

struct LrSchedule {
  double peak_lr = 4e-4;
  double initial_lr = 0.0;  // lr of step 0 during warmup
  double min_lr = 0.0;      // floor of the cosine decay
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  bool cosine = false;

  // lr for the step with 0-based index `step` (the book's global_step after its increment).
  double at(int64_t step) const {
    if (step < warmup_steps)
      return initial_lr + static_cast<double>(step) * (peak_lr - initial_lr) / static_cast<double>(warmup_steps);
    if (!cosine || total_steps <= warmup_steps) return peak_lr;
    const double progress =
        static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
};

}  // namespace gptrain
