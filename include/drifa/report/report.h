#pragma once
// `drifa report`: one self-contained HTML file (every image embedded as a data: URI) for a run
// or ensemble folder: the config, training curves, test metrics with confusion matrices, the
// uncertainty study (table, reliability diagrams, uncertainty histograms), the Grad-CAM gallery
// (most uncertain cases first) and the t-SNE plots. Plots are drawn by gnuplot into DIR/plots.
#include <string>
#include <vector>

namespace drifa::report {

// Writes html_path atomically. Returns the parts that were left out because their inputs are
// missing (e.g. "uncertainty: run `drifa uq DIR`"). Throws drifa::Error when dir is not a run
// or ensemble folder.
std::vector<std::string> write_report(const std::string& dir, const std::string& html_path);

}  // namespace drifa::report
