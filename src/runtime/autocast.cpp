#include "drifa/runtime/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace drifa {

namespace {
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
bool is_on(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void set_on(bool cuda, bool on) {
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, cuda ? at::kHalf : at::kBFloat16);
}
#else
bool is_on(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_on(bool cuda, bool on) {
  if (cuda) {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(at::kHalf);
  } else {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
}
#endif
}  // namespace

bool autocast_enabled(torch::Device device) { return is_on(device.is_cuda()); }

AutocastGuard::AutocastGuard(bool enabled, torch::Device device) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
  prev_ = is_on(cuda_);
  set_on(cuda_, true);
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  set_on(cuda_, prev_);
  at::autocast::clear_cache();
}

}  // namespace drifa
