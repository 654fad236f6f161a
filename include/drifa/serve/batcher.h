#pragma once
// Dynamic batching for the served model: requests that arrive together run as one forward pass.
// A bounded queue feeds one worker thread (the only thread that touches the model). The worker
// takes the oldest job, then every later job with the same key (jobs that can share a batch:
// the same modalities given, the same Monte Carlo passes and seed), until it has max_batch of
// them or max_wait has passed since it took the first. A full queue refuses new jobs at once
// (the service answers 503) instead of letting latency grow without bound.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace drifa::serve {

struct BatchOptions {
  int max_batch = 8;     // cases per batch
  int max_wait_ms = 5;   // how long the first job of a batch waits for company
  int queue = 64;        // jobs waiting (not yet in a batch) before submit() refuses
};

class Batcher {
 public:
  struct Job {
    virtual ~Job() = default;
    std::string key;  // jobs with equal keys may share a batch
  };
  using JobPtr = std::shared_ptr<Job>;
  // Runs one batch; called on the worker thread only. It must answer every job it is given and
  // not throw (the service turns an exception into an error answer per job).
  using Runner = std::function<void(std::vector<JobPtr>& batch)>;

  Batcher(BatchOptions opt, Runner run, std::function<void(int64_t waiting)> on_depth = {});
  ~Batcher();  // stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // false when the queue is full or the batcher has stopped.
  bool submit(JobPtr job);
  // Refuses new jobs, runs every job already queued, then joins the worker. Idempotent.
  void stop();
  int64_t waiting() const;
  const BatchOptions& options() const { return opt_; }

 private:
  void loop();
  std::vector<JobPtr> take_batch(std::unique_lock<std::mutex>& lock);

  BatchOptions opt_;
  Runner run_;
  std::function<void(int64_t)> on_depth_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobPtr> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace drifa::serve
