#pragma once
// Run-time settings every entry point applies: intra-op threads and the device.
#include <string>

#include <torch/types.h>

namespace drifa {

// LibTorch here defaults to one intra-op thread; DRIFA defaults to all cores.
// requested 0 means all cores; more than max_threads() (a small multiple of the cores, where
// more threads only add contention) or a negative number is refused. Returns the number in effect.
// It also puts OpenBLAS on the calling thread (blas_threads() below).
int configure_threads(int requested);
// What requested 0 means: DRIFA_THREADS from the environment when set (1 to max_threads(), else
// drifa::Error naming it), otherwise all cores. Several DRIFA processes sharing a machine (a
// parallel test run, a job scheduler's slots) each take their share this way: two processes of
// two threads on two cores ran a demo epoch 6x slower than one (13.3 s against 2.1 s, 2-core
// AVX-512 Xeon), not 2x, as every parallel region waits for a descheduled thread.
int default_threads();
int max_threads();

// The threads OpenBLAS uses for one call, or 0 where the BLAS in the process is not OpenBLAS.
// configure_threads sets it to 1: OpenBLAS's own pthreads and ATen's OpenMP pool spin against
// each other on a small machine (a demo training step spent 49 ms of its ~500 in 318 GEMMs of at
// most [32, 256] x [256, 128], 7 ms single-threaded), and the convolutions, where the arithmetic
// is, run in oneDNN on the OpenMP pool, not in BLAS.
int blas_threads();
// Sets OpenBLAS's threads, 1 to max_threads() (drifa::Error otherwise); no effect where the BLAS
// is not OpenBLAS, and then false.
bool set_blas_threads(int n);

// "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:N". Throws drifa::Error when
// CUDA is asked for and not available.
torch::Device pick_device(const std::string& spec);

}  // namespace drifa
