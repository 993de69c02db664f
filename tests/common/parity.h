// What the parity tests against PyTorch share: float32's unit roundoff, the relative norm error,
// AdamW's options from a fixture's metadata, and the bound on parameters after AdamW steps.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "train/adamw.h"

namespace gptrain::testing_util {

inline constexpr double kU = 0x1.0p-24;  // float32's unit roundoff

inline std::vector<double> as_doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// |ours - ref| / |ref| in 2-norms, summed in double; a difference from an all-zero ref is huge.
inline double rel_error(const std::vector<float>& ours, const std::vector<float>& ref, double* ref_norm = nullptr) {
  double d = 0, r = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    d += (double(ours[i]) - ref[i]) * (double(ours[i]) - ref[i]);
    r += double(ref[i]) * ref[i];
  }
  if (ref_norm) *ref_norm = std::sqrt(r);
  return std::sqrt(d) / std::max(std::sqrt(r), 1e-300);
}

// A fixture's optimizer: {"lr", "weight_decay", "eps"} with "beta1"/"beta2" or "betas": [b1, b2].
inline AdamWOptions adamw_options(const nlohmann::json& j) {
  AdamWOptions o;
  o.lr = j["lr"];
  o.weight_decay = j["weight_decay"];
  o.eps = j["eps"];
  o.beta1 = j.contains("betas") ? j["betas"][0] : j["beta1"];
  o.beta2 = j.contains("betas") ? j["betas"][1] : j["beta2"];
  return o;
}

// Where parameters may be after AdamW steps taken from gradients that agree with the reference's
// within eps_grad relative to each tensor's largest |g| (parity_test.cpp derives it): the first
// steps move each weight by about lr g / |g|, so a gradient error dg changes an update by at most
// 2 |dg| / |g|, capped at the largest possible update (~2.5 lr); each step adds
// lr * min(2.5, 2 eps_grad max|g| / (|g_i| + 1e-8)), and the comparison allows 8u |p| more.
class AdamWParityBound {
 public:
  AdamWParityBound(double lr, double eps_grad) : lr_(lr), eps_grad_(eps_grad) {}

  // Before each step: the gradient that step will use.
  void add_step(const std::string& name, const std::vector<double>& grad) {
    double gmax = 0;
    for (double v : grad) gmax = std::max(gmax, std::fabs(v));
    std::vector<double>& b = bound_[name];
    b.resize(grad.size(), 0.0);
    for (size_t i = 0; i < grad.size(); ++i) b[i] += lr_ * std::min(2.5, 2 * eps_grad_ * gmax / (std::fabs(grad[i]) + 1e-8));
  }

  // How many elements of `ours` lie outside the bound around `ref`; the largest |ours - ref| / lr
  // is kept in *worst_update (if given) when larger.
  int outside(const std::string& name, const std::vector<double>& ours, const std::vector<double>& ref,
              double* worst_update = nullptr) const {
    const std::vector<double>& b = bound_.at(name);
    int bad = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      const double err = std::fabs(ours[i] - ref[i]);
      if (worst_update) *worst_update = std::max(*worst_update, err / lr_);
      if (!(err <= b[i] + 8 * kU * std::fabs(ref[i]))) ++bad;
    }
    return bad;
  }

 private:
  double lr_, eps_grad_;
  std::map<std::string, std::vector<double>> bound_;
};

}  // namespace gptrain::testing_util
