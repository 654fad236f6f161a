#pragma once
// What `drifa serve` counts, rendered in the Prometheus text exposition format (version 0.0.4):
// requests by route and status code, errors, request latency, batch sizes and batch times as
// histograms, and the queue depth. Thread-safe.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace drifa::serve {

// A cumulative histogram over fixed upper bounds (the +Inf bucket is the count).
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bound: observations <= bound (not cumulative here)
  double sum = 0;
  uint64_t count = 0;
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
};

class Metrics {
 public:
  Metrics();
  // One answered request: route (the path as routed, never the raw URL), status, wall seconds.
  void request(const std::string& route, int status, double seconds);
  // One batch through the model: cases in it and its wall seconds.
  void batch(int64_t cases, double seconds);
  void queue_depth(int64_t waiting);
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> errors_;
  std::map<std::string, Histogram> latency_;  // per route
  Histogram batch_size_, batch_seconds_;
  int64_t queue_depth_ = 0;
};

}  // namespace drifa::serve
