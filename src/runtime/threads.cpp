#include "drifa/runtime/threads.h"

#include <algorithm>
#include <thread>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace drifa {

int max_threads() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return settings::limits::kThreadsPerCore * cores;
}

int configure_threads(int requested) {
  settings::check_integer("command line", "--threads", requested, {0, max_threads()});
  int n = requested > 0 ? requested : static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return at::get_num_threads();
}

torch::Device pick_device(const std::string& spec) {
  if (spec == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("device '" + spec + "' requested but CUDA is not available in this build or machine");
    try {
      torch::Device d(spec);
      if (d.has_index() && d.index() >= static_cast<int>(torch::cuda::device_count()))
        throw Error("device '" + spec + "' does not exist (" + std::to_string(torch::cuda::device_count()) + " GPUs)");
      return d;
    } catch (const c10::Error&) {
      throw Error("cannot parse device '" + spec + "'");
    }
  }
  throw Error("device must be auto, cpu, cuda or cuda:N, got '" + spec + "'");
}

}  // namespace drifa
