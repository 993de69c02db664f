// What the C++ benchmarks share: the process's peak RSS, a median, and the book's classifier.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"

namespace gptrain::bench {

inline double peak_rss_mb() {  // VmHWM
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The book's ch06 classifier on a GPT-2 preset: qkv bias (BASE_CONFIG for OpenAI's weights), no
// dropout, 2 classes read at the last position, untied. Empty for an unknown preset.
inline std::optional<ModelConfig> book_classifier_config(const std::string& preset) {
  ModelConfig cfg;
  if (!preset_config(preset, cfg)) return std::nullopt;
  cfg.qkv_bias = true;
  cfg.drop_rate = 0.0f;
  cfg.head = HeadType::Classifier;
  cfg.n_classes = 2;
  cfg.tie_weights = false;
  cfg.pooling = Pooling::Last;
  return cfg;
}

}  // namespace gptrain::bench
