#include "drifa/runtime/progress.h"

#include <cmath>
#include <cstdio>
#include <unistd.h>

namespace drifa {

std::string format_duration(double s) {
  if (!(s >= 0) || s > 360000) return "--:--";
  const int t = static_cast<int>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%02d:%02d", t / 60, t % 60);
  return buf;
}

Progress::Progress(std::string label, size_t total, bool quiet, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), quiet_(quiet),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

void Progress::update(size_t done, size_t items, double loss) {
  items_ += items;
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 5 times a second, and always at the end.
  if (done < total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.2) return;
  last_draw_ = now;
  const double el = std::chrono::duration<double>(now - start_).count();
  const double rate = el > 0 ? items_ / el : 0;
  const double eta = done > 0 ? el / done * (total_ - done) : -1;
  const int width = 24, fill = total_ ? static_cast<int>(width * done / total_) : width;
  std::string bar(fill, '=');
  if (fill < width) bar += '>' + std::string(width - fill - 1, ' ');
  // \r redraws in place on a terminal; in a log file each update is its own line.
  char loss_text[32] = "";
  if (!std::isnan(loss)) std::snprintf(loss_text, sizeof loss_text, " loss %.4f", loss);
  std::fprintf(stderr, "%s%s [%s] %zu/%zu%s  %.1f %s/s  ETA %s%s", isatty(2) ? "\r" : "", label_.c_str(),
               bar.c_str(), done, total_, loss_text, rate, unit_.c_str(), format_duration(eta).c_str(), isatty(2) ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& summary) {
  if (quiet_) return;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s %s (%s)\n", isatty(2) ? "\r\033[K" : "", label_.c_str(), summary.c_str(),
               format_duration(el).c_str());
}

}  // namespace drifa
