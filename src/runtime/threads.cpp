#include "drifa/runtime/threads.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include <dlfcn.h>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace drifa {

int max_threads() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return settings::limits::kThreadsPerCore * cores;
}

namespace {

// OpenBLAS's thread setter and getter, looked up at run time: LibTorch reaches BLAS through
// Debian's libblas.so.3 alternative, which may be OpenBLAS or another implementation.
template <class F>
F openblas_function(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

int blas_threads() {
  auto get = openblas_function<int (*)()>("openblas_get_num_threads");
  return get ? get() : 0;
}

bool set_blas_threads(int n) {
  settings::check_integer("set_blas_threads", "threads", n, {1, max_threads()});
  auto set = openblas_function<void (*)(int)>("openblas_set_num_threads");
  if (set) set(n);
  return set != nullptr;
}

int default_threads() {
  const char* env = std::getenv("DRIFA_THREADS");
  if (env && *env) {
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    if (*end != '\0' || v < 1 || v > max_threads())
      throw Error(std::string("environment: DRIFA_THREADS: found '") + env + "', allowed an integer from 1 to " +
                  std::to_string(max_threads()));
    return static_cast<int>(v);
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

int configure_threads(int requested) {
  settings::check_integer("command line", "--threads", requested, {0, max_threads()});
  int n = requested > 0 ? requested : default_threads();
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  set_blas_threads(1);
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
