#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "util/error.h"
#include "util/rng.h"

namespace gptrain {

int32_t argmax(std::span<const float> logits) {
  // first maximum, as torch.argmax
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t sample_next(std::span<const float> logits, const SamplingOptions& o, uint64_t draw) {
  if (logits.empty()) fail("cannot sample from empty logits");
  if (!(o.temperature >= 0)) fail("temperature must be >= 0, got {}", o.temperature);
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("top-p must be in (0, 1], got {}", o.top_p);
  if (o.temperature == 0.0) return argmax(logits);
  const int64_t V = static_cast<int64_t>(logits.size());
  std::vector<double> z(logits.begin(), logits.end());
  if (o.top_k > 0 && o.top_k < V) {
    std::vector<double> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(), std::greater<>());
    const double kth = sorted[static_cast<size_t>(o.top_k - 1)];
    for (double& v : z)
      if (v < kth) v = -INFINITY;
  }
  const double maxv = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double& v : z) {
    v = std::exp((v - maxv) / o.temperature);
    sum += v;
  }
  for (double& v : z) v /= sum;
  if (o.top_p < 1.0) {
    std::vector<int32_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return z[a] > z[b]; });
    double cum = 0;
    size_t keep = 0;
    while (keep < idx.size() && cum < o.top_p) cum += z[idx[keep++]];
    for (size_t i = keep; i < idx.size(); ++i) z[idx[i]] = 0;
    sum = 0;
    for (double v : z) sum += v;
    for (double& v : z) v /= sum;
  }
  const double u = CounterRng(o.seed, 0x53414d504c45ULL).uniform_double(draw);
  double cum = 0;
  int32_t last_positive = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (z[i] <= 0) continue;
    cum += z[i];
    last_positive = static_cast<int32_t>(i);
    if (u < cum) return static_cast<int32_t>(i);
  }
  return last_positive;  // rounding left cum just below 1
}

}  // namespace gptrain
