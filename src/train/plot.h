// A small SVG line-plot writer for the book's training plots: losses (or accuracies) against
// epochs on the bottom axis with a second, top axis for tokens (or examples) seen. No dependency;
// the file opens in any browser.
#pragma once

#include <string>
#include <vector>

namespace gptrain {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
  std::string dash;  // SVG stroke-dasharray; "" for a solid line
  std::string color;
};

struct PlotSpec {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  // Optional top axis: top_x[i] is the top-axis value at bottom-axis value top_at[i] (monotonic).
  std::string top_label;
  std::vector<double> top_at, top_x;
  bool integer_x_ticks = true;  // epochs
};

std::string render_svg(const PlotSpec& spec);

// Ticks at 1, 2 or 5 times a power of ten covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target);

}  // namespace gptrain
