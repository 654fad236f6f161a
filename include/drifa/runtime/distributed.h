#pragma once
// Data-parallel training on PyTorch's c10d process groups (Gloo), launched as PyTorch users
// launch it: torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT),
// with a TCPStore on rank 0 as the rendezvous. c10d and Gloo stay behind this header.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace drifa {

struct DistributedEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool active() const { return world_size > 1; }
  // From the environment; world size 1 when WORLD_SIZE is unset. Throws drifa::Error on bad values.
  static DistributedEnv from_environment();
};

class ProcessGroup {
 public:
  // Joins the group (blocks until every rank has joined, up to timeout). A collective that waits
  // longer than timeout for a rank, or finds a rank gone, throws drifa::Error naming the group.
  ProcessGroup(const DistributedEnv& env, std::chrono::seconds timeout);
  ~ProcessGroup();
  int rank() const;
  int size() const;
  // Averages every parameter's gradient over the ranks: flattened into buckets of about
  // bucket_mb, one all-reduce per bucket.
  void average_gradients(torch::nn::Module& module, double bucket_mb = 25);
  // Rank 0's parameters and buffers (e.g. BN running statistics) to every rank.
  void broadcast_state(torch::nn::Module& module);
  // Smallest and largest value of x over the ranks.
  std::pair<double, double> min_max(double x);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `--nproc N`: runs N copies of this program (argv, without the launcher's own flag) as local
// ranks on loopback with torchrun's environment and a free port, threads_per_worker intra-op
// threads each. Waits for all; when one fails, the others get grace_seconds to exit (they notice
// the lost rank themselves), then are terminated. Returns 0 or the first failure's exit status.
int spawn_local_workers(int n, const std::vector<std::string>& argv, int threads_per_worker, int grace_seconds = 60);

}  // namespace drifa
