#include "drifa/serve/batcher.h"

#include <algorithm>

#include "drifa/error.h"

namespace drifa::serve {

Batcher::Batcher(BatchOptions opt, Runner run, std::function<void(int64_t)> on_depth)
    : opt_(opt), run_(std::move(run)), on_depth_(std::move(on_depth)) {
  if (opt_.max_batch < 1 || opt_.queue < 1 || opt_.max_wait_ms < 0)
    throw Error("batcher: max_batch and queue must be at least 1 and max_wait_ms not negative");
  worker_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() { stop(); }

bool Batcher::submit(JobPtr job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || static_cast<int>(queue_.size()) >= opt_.queue) return false;
    queue_.push_back(std::move(job));
    if (on_depth_) on_depth_(static_cast<int64_t>(queue_.size()));
  }
  cv_.notify_all();
  return true;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t Batcher::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

// Called with the lock held and the queue not empty.
std::vector<Batcher::JobPtr> Batcher::take_batch(std::unique_lock<std::mutex>& lock) {
  std::vector<JobPtr> batch{queue_.front()};
  queue_.pop_front();
  const std::string key = batch[0]->key;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opt_.max_wait_ms);
  const auto gather = [&] {
    for (auto it = queue_.begin(); it != queue_.end() && static_cast<int>(batch.size()) < opt_.max_batch;) {
      if ((*it)->key == key) {
        batch.push_back(*it);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  };
  gather();
  // Wait for company until the batch is full or the wait is over; stopping ends the wait too
  // (a draining server answers what it has without delay).
  while (static_cast<int>(batch.size()) < opt_.max_batch && !stopping_ &&
         cv_.wait_until(lock, deadline) != std::cv_status::timeout)
    gather();
  gather();
  if (on_depth_) on_depth_(static_cast<int64_t>(queue_.size()));
  return batch;
}

void Batcher::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued has run
    auto batch = take_batch(lock);
    lock.unlock();
    run_(batch);
    lock.lock();
  }
}

}  // namespace drifa::serve
