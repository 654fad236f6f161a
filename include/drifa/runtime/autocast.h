#pragma once
// Mixed precision: bfloat16 autocast on CPU (AVX-512 BF16) or float16 on CUDA, as a scoped
// guard. The autocast API changed between LibTorch 1.13 and 2.x; the difference lives here only.
#include <torch/types.h>

namespace drifa {

// Whether autocast is on for this device's type in this thread.
bool autocast_enabled(torch::Device device);

class AutocastGuard {
 public:
  AutocastGuard(bool enabled, torch::Device device);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_, cuda_, prev_ = false;
};

}  // namespace drifa
