#pragma once
// A one-line progress bar on stderr: position, loss, rate and ETA. Silent when quiet.
#include <chrono>
#include <string>

namespace drifa {

class Progress {
 public:
  Progress(std::string label, size_t total, bool quiet, std::string unit = "samples");
  // Call after each step: done = steps finished, items = samples in this step; loss NaN = none.
  void update(size_t done, size_t items, double loss);
  void finish(const std::string& summary);

 private:
  std::string label_, unit_;
  size_t total_;
  bool quiet_;
  size_t items_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);

}  // namespace drifa
