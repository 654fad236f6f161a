#pragma once
// How the process gets memory for tensors.
//
// LibTorch's CPU allocator is plain malloc. glibc serves large blocks (a [32, 64, 64, 64] float
// map is 33.5 MB) with a fresh mmap each time and unmaps them on free, so every forward and
// backward pass page-faults and zero-fills hundreds of MB again: about a third of a paper-size
// training step on the 2-core CPU. Keeping freed memory in the heap removes that cost; the peak
// resident size grows a little (measured in bench/run_bench.py).

namespace drifa {

// Serve every allocation up to 1 GiB from the heap and keep up to 2 GiB of freed memory for
// reuse (glibc mallopt; bench/run_bench.py gives the peer the same values as MALLOC_* variables). Idempotent; returns false where the C library refused (non-glibc).
// Entry points (the CLI, the benchmark) call it once at start-up; a C++ caller may do the same.
bool keep_freed_memory();

// Memory the process could still get (MemAvailable of /proc/meminfo, else physical memory);
// 0 when unknown. Used to refuse models that cannot fit before they are allocated.
long long available_memory_bytes();

}  // namespace drifa
