#include "drifa/visual/plots.h"

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"

namespace fs = std::filesystem;

namespace drifa::visual {

namespace {

std::string quoted(const std::string& s) {  // a gnuplot double-quoted string
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (c == '\n') { o += "\\n"; continue; }
    o += c;
  }
  return o + "\"";
}

}  // namespace

std::string gnuplot_script(const Plot& p, const std::string& png_path) {
  std::ostringstream s;
  s.precision(10);
  s << "set terminal pngcairo size " << p.width << "," << p.height << " enhanced font 'Sans,10'\n";
  s << "set output " << quoted(png_path) << "\n";
  s << "set title " << quoted(p.title) << " noenhanced\n";
  s << "set xlabel " << quoted(p.xlabel) << " noenhanced\nset ylabel " << quoted(p.ylabel) << " noenhanced\n";
  s << "set grid\nset key outside right top noenhanced\nset style fill solid 0.5 border -1\n";
  if (p.xrange) s << "set xrange [" << p.xrange->first << ":" << p.xrange->second << "]\n";
  if (p.yrange) s << "set yrange [" << p.yrange->first << ":" << p.yrange->second << "]\n";
  if (p.logy) s << "set logscale y\n";
  for (size_t i = 0; i < p.series.size(); ++i) {
    s << "$d" << i << " << EOD\n";
    const auto& se = p.series[i];
    for (size_t k = 0; k < se.x.size() && k < se.y.size(); ++k) s << se.x[k] << " " << se.y[k] << "\n";
    if (se.x.empty()) s << "NaN NaN\n";  // gnuplot refuses an empty block
    s << "EOD\n";
  }
  s << "plot ";
  bool first = true;
  if (p.diagonal) {
    s << "x with lines dt 2 lc rgb '#888888' title 'perfect calibration'";
    first = false;
  }
  for (size_t i = 0; i < p.series.size(); ++i) {
    s << (first ? "" : ", ") << "$d" << i << " using 1:2 with " << p.series[i].style << " title " << quoted(p.series[i].title);
    first = false;
  }
  if (first) s << "NaN notitle";
  s << "\nset output\n";
  return s.str();
}

void plot_png(const Plot& plot, const std::string& png_path) {
  const std::string tmp = png_path + ".tmp.png", script = png_path + ".gp";
  io::atomic_write_text(script, gnuplot_script(plot, tmp));
  std::string shq = "'";
  for (char c : script) shq += c == '\'' ? std::string("'\\''") : std::string(1, c);
  const std::string cmd = "gnuplot " + shq + "' 2>&1";
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) throw Error("cannot run gnuplot (install Debian's gnuplot-nox)");
  char buf[512];
  while (fgets(buf, sizeof buf, f)) out += buf;
  const int rc = pclose(f);
  std::error_code ec;
  fs::remove(script, ec);
  if (rc != 0 || !fs::exists(tmp) || fs::file_size(tmp) == 0) {
    fs::remove(tmp, ec);
    if (rc == 127 * 256 || out.find("not found") != std::string::npos)
      throw Error("gnuplot is not installed (Debian package gnuplot-nox); needed for " + png_path);
    throw Error("gnuplot failed to draw " + png_path + ": " + out);
  }
  fs::rename(tmp, png_path);
}

}  // namespace drifa::visual
