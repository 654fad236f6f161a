#pragma once
// Plots for the report, drawn by gnuplot (Debian gnuplot-nox, pngcairo terminal): the data go
// inline into a script, gnuplot writes a PNG next to the target, and it is renamed into place.
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drifa::visual {

struct Series {
  std::string title;
  std::vector<double> x, y;
  std::string style = "lines";  // gnuplot "with" clause: lines, points pt 7 ps 0.6, boxes, steps, linespoints
};

struct Plot {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  std::optional<std::pair<double, double>> xrange, yrange;
  bool diagonal = false;  // draw y = x (reliability diagrams)
  bool logy = false;
  int width = 640, height = 420;
};

// Throws drifa::Error when gnuplot is missing or fails (with its message).
void plot_png(const Plot& plot, const std::string& png_path);

// The gnuplot script plot_png runs (for tests and for users who want to restyle a figure).
std::string gnuplot_script(const Plot& plot, const std::string& png_path);

}  // namespace drifa::visual
