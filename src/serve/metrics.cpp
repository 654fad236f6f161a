#include "drifa/serve/metrics.h"

#include <sstream>
#include <string>

namespace drifa::serve {

namespace {

const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128};

// Prometheus label values escape backslash, double quote and newline.
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// A number as Prometheus reads it (Go's ParseFloat): shortest round-trip form.
std::string num(double v) {
  for (int digits = 6;; ++digits) {
    std::ostringstream s;
    s.precision(digits);
    s << v;
    if (digits >= 17 || std::stod(s.str()) == v) return s.str();
  }
}

void render_histogram(std::ostringstream& o, const std::string& name, const std::string& labels, const Histogram& h) {
  const std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    o << name << "_bucket{" << sep << "le=\"" << num(h.bounds[i]) << "\"} " << cumulative << "\n";
  }
  o << name << "_bucket{" << sep << "le=\"+Inf\"} " << h.count << "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  o << name << "_sum" << braces << " " << num(h.sum) << "\n";
  o << name << "_count" << braces << " " << h.count << "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds) : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}

void Histogram::observe(double v) {
  for (size_t i = 0; i < bounds.size(); ++i)
    if (v <= bounds[i]) {
      ++counts[i];
      break;
    }
  sum += v;
  ++count;
}

Metrics::Metrics() : batch_size_(kBatchBounds), batch_seconds_(kLatencyBounds) {}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{route, status}];
  if (status >= 400) ++errors_[route];
  latency_.try_emplace(route, kLatencyBounds).first->second.observe(seconds);
}

void Metrics::batch(int64_t cases, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  batch_size_.observe(static_cast<double>(cases));
  batch_seconds_.observe(seconds);
}

void Metrics::queue_depth(int64_t waiting) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_depth_ = waiting;
}

std::string Metrics::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream o;
  o << "# HELP drifa_requests_total HTTP requests answered, by route and status code.\n"
    << "# TYPE drifa_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    o << "drifa_requests_total{route=\"" << label(key.first) << "\",code=\"" << key.second << "\"} " << n << "\n";
  o << "# HELP drifa_request_errors_total HTTP requests answered with a 4xx or 5xx status, by route.\n"
    << "# TYPE drifa_request_errors_total counter\n";
  for (const auto& [route, n] : errors_) o << "drifa_request_errors_total{route=\"" << label(route) << "\"} " << n << "\n";
  o << "# HELP drifa_request_duration_seconds Time from a request's arrival to its answer, by route.\n"
    << "# TYPE drifa_request_duration_seconds histogram\n";
  for (const auto& [route, h] : latency_)
    render_histogram(o, "drifa_request_duration_seconds", "route=\"" + label(route) + "\"", h);
  o << "# HELP drifa_batch_size Cases per forward batch.\n# TYPE drifa_batch_size histogram\n";
  render_histogram(o, "drifa_batch_size", "", batch_size_);
  o << "# HELP drifa_batch_duration_seconds Time one batch spends in the model.\n"
    << "# TYPE drifa_batch_duration_seconds histogram\n";
  render_histogram(o, "drifa_batch_duration_seconds", "", batch_seconds_);
  o << "# HELP drifa_queue_depth Prediction requests waiting for a batch.\n# TYPE drifa_queue_depth gauge\n"
    << "drifa_queue_depth " << queue_depth_ << "\n";
  return o.str();
}

}  // namespace drifa::serve
