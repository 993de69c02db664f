#include "train/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace gptrain {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::string tick_label(double v) {
  const double a = std::fabs(v);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  if (a == std::floor(a)) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string render_svg(const PlotSpec& spec) {
  const double W = 640, H = 420, left = 70, right = 20, top = spec.top_label.empty() ? 40 : 70, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const PlotSeries& s : spec.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (spec.integer_x_ticks && x0 >= 0) x0 = 0;  // epochs start at 0, as the book's linspace
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto sy = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      W, H);
  if (!spec.title.empty())
    svg += fmt::format("<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n", W / 2,
                       escape(spec.title));
  // grid, ticks and labels
  std::vector<double> xt = nice_ticks(x0, x1, 8);
  if (spec.integer_x_ticks) {  // whole epochs, unless the run is shorter than two (then fractions)
    std::vector<double> whole = xt;
    std::erase_if(whole, [](double v) { return v != std::floor(v); });
    if (whole.size() >= 2) xt = whole;
    if (xt.empty()) xt = {x0};
  }
  for (double t : xt)
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        sx(t), top, top + ph, top + ph + 16, tick_label(t));
  for (double t : nice_ticks(y0, y1, 6))
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        left, sy(t), left + pw, left - 6, sy(t) + 4, tick_label(t));
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", left, top,
                     pw, ph);
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2, H - 18,
                     escape(spec.x_label));
  svg += fmt::format("<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n", top + ph / 2,
                     escape(spec.y_label));
  // top axis: ticks at nice values of top_x, placed by interpolating top_at
  if (!spec.top_label.empty() && spec.top_at.size() >= 2 && spec.top_at.size() == spec.top_x.size()) {
    const double t0 = spec.top_x.front(), t1 = spec.top_x.back();
    for (double t : nice_ticks(t0, t1, 6)) {
      auto it = std::lower_bound(spec.top_x.begin(), spec.top_x.end(), t);
      if (it == spec.top_x.end()) continue;
      const size_t i = static_cast<size_t>(it - spec.top_x.begin());
      double at = spec.top_at[i];
      if (i > 0 && spec.top_x[i] != spec.top_x[i - 1])
        at = spec.top_at[i - 1] + (t - spec.top_x[i - 1]) / (spec.top_x[i] - spec.top_x[i - 1]) *
                                      (spec.top_at[i] - spec.top_at[i - 1]);
      if (at < x0 || at > x1) continue;
      svg += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"black\"/>"
          "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
          sx(at), top - 5, top, top - 9, tick_label(t));
    }
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2, top - 30,
                       escape(spec.top_label));
  }
  // series
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"};
  double ly = top + 14;
  for (size_t k = 0; k < spec.series.size(); ++k) {
    const PlotSeries& s = spec.series[k];
    const std::string color = s.color.empty() ? palette[k % 4] : s.color;
    const std::string dash = s.dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", s.dash);
    std::string points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) points += fmt::format("{:.1f},{:.1f} ", sx(s.x[i]), sy(s.y[i]));
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{} points=\"{}\"/>\n", color, dash,
                       points);
    if (s.x.size() == 1)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", sx(s.x[0]), sy(s.y[0]), color);
    // legend, top right
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"{3}\" stroke-width=\"1.8\"{4}/>"
        "<text x=\"{5}\" y=\"{6:.1f}\">{7}</text>\n",
        left + pw - 150, ly, left + pw - 120, color, dash, left + pw - 114, ly + 4, escape(s.label));
    ly += 18;
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace gptrain
