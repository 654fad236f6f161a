#pragma once
// Run-time settings every entry point applies: intra-op threads and the device.
#include <string>

#include <torch/types.h>

namespace drifa {

// LibTorch here defaults to one intra-op thread; DRIFA defaults to all cores.
// requested 0 means all cores; more than max_threads() (a small multiple of the cores, where
// more threads only add contention) or a negative number is refused. Returns the number in effect.
int configure_threads(int requested);
int max_threads();

// "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N". Throws drifa::Error when
// CUDA is asked for and not available.
torch::Device pick_device(const std::string& spec);

}  // namespace drifa
