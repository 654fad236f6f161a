#include "drifa/runtime/distributed.h"

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// Debian's LibTorch is built with Gloo; its c10d header is compiled only with this macro.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include "drifa/error.h"

namespace drifa {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used != std::string(v).size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw Error(std::string("environment variable ") + name + "='" + v + "' is not an integer");
  }
}

}  // namespace

DistributedEnv DistributedEnv::from_environment() {
  DistributedEnv e;
  e.world_size = env_int("WORLD_SIZE", 1);
  e.rank = env_int("RANK", 0);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.master_port = env_int("MASTER_PORT", 29500);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  if (e.world_size < 1) throw Error("WORLD_SIZE must be >= 1, got " + std::to_string(e.world_size));
  if (e.rank < 0 || e.rank >= e.world_size)
    throw Error("RANK " + std::to_string(e.rank) + " is outside WORLD_SIZE " + std::to_string(e.world_size));
  return e;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0, size = 1;
  std::chrono::seconds timeout{60};

  void run(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      if (!work->wait(std::chrono::duration_cast<std::chrono::milliseconds>(timeout)))
        throw Error(std::string(what) + " did not complete");
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("rank " + std::to_string(rank) + ": the process group lost a rank or timed out after " +
                  std::to_string(timeout.count()) + " s during " + what + ": " + e.what());
    }
  }
  void allreduce(torch::Tensor& t, const char* what, c10d::ReduceOp op = c10d::ReduceOp::SUM) {
    std::vector<torch::Tensor> v{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
    run(pg->allreduce(v, o), what);
  }
};

ProcessGroup::ProcessGroup(const DistributedEnv& env, std::chrono::seconds timeout) : impl_(std::make_unique<Impl>()) {
  impl_->rank = env.rank;
  impl_->size = env.world_size;
  impl_->timeout = timeout;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<std::size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
    auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    // Loopback for a local group; across machines, the interface in GLOO_SOCKET_IFNAME (as in
    // PyTorch) or the address this machine's hostname resolves to.
    const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    opts->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                            : ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                : c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": cannot join the group at " +
                env.master_addr + ":" + std::to_string(env.master_port) + " within " + std::to_string(timeout.count()) +
                " s: " + e.what());
  }
}

ProcessGroup::~ProcessGroup() = default;
int ProcessGroup::rank() const { return impl_->rank; }
int ProcessGroup::size() const { return impl_->size; }

void ProcessGroup::average_gradients(torch::nn::Module& module, double bucket_mb) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> grads;
  for (auto& p : module.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  const auto limit = static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4);
  size_t i = 0;
  while (i < grads.size()) {
    std::vector<torch::Tensor> bucket;
    int64_t n = 0;
    while (i < grads.size() && (bucket.empty() || n + grads[i].numel() <= limit)) {
      bucket.push_back(grads[i].reshape({-1}));
      n += grads[i].numel();
      ++i;
    }
    auto flat = torch::cat(bucket);
    impl_->allreduce(flat, "the gradient all-reduce");
    flat.div_(impl_->size);
    int64_t off = 0;
    for (size_t k = i - bucket.size(); k < i; ++k) {
      const auto len = grads[k].numel();
      grads[k].copy_(flat.narrow(0, off, len).view_as(grads[k]));
      off += len;
    }
  }
}

void ProcessGroup::broadcast_state(torch::nn::Module& module) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> all;
  for (auto& p : module.parameters()) all.push_back(p);
  for (auto& b : module.buffers())
    if (b.is_floating_point()) all.push_back(b);
  for (auto& t : all) {
    std::vector<torch::Tensor> v{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    impl_->run(impl_->pg->broadcast(v, o), "the state broadcast");
    if (!t.is_contiguous()) t.copy_(v[0]);
  }
}

std::pair<double, double> ProcessGroup::min_max(double x) {
  auto lo = torch::full({1}, x, torch::kFloat64), hi = torch::full({1}, x, torch::kFloat64);
  impl_->allreduce(lo, "a consistency check", c10d::ReduceOp::MIN);
  impl_->allreduce(hi, "a consistency check", c10d::ReduceOp::MAX);
  return {lo.item<double>(), hi.item<double>()};
}

void ProcessGroup::barrier() {
  auto t = torch::zeros({1});
  impl_->allreduce(t, "a barrier");
}

int spawn_local_workers(int n, const std::vector<std::string>& argv, int threads_per_worker, int grace_seconds) {
  if (n < 1) throw Error("--nproc must be >= 1");
  // A free loopback port for the rendezvous.
  int port = 0;
  {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw Error("cannot find a free loopback port for the workers");
    port = ntohs(a.sin_port);
    ::close(s);
  }
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("cannot start worker " + std::to_string(r));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<std::string> args = argv;
      args.push_back("--threads");
      args.push_back(std::to_string(threads_per_worker));
      std::vector<char*> c;
      for (auto& s : args) c.push_back(s.data());
      c.push_back(nullptr);
      ::execv("/proc/self/exe", c.data());
      std::perror("execv");
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  int first_failure = 0;
  size_t left = pids.size();
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (left > 0) {
    int st = 0;
    const pid_t done = ::waitpid(-1, &st, WNOHANG);
    if (done > 0) {
      --left;
      const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
      if (code != 0 && first_failure == 0) {
        first_failure = code;
        int rank = 0;
        for (size_t r = 0; r < pids.size(); ++r)
          if (pids[r] == done) rank = static_cast<int>(r);
        std::cerr << "drifa: worker rank " << rank << " failed (exit status " << code << "); waiting up to " << grace_seconds
                  << " s for the others\n";
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
      }
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (auto p : pids) ::kill(p, SIGTERM);
      deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return first_failure;
}

}  // namespace drifa
