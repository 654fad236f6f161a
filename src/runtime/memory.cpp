#include "drifa/runtime/memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace drifa {

bool keep_freed_memory() {
#if defined(__GLIBC__)
  constexpr int kMmapThreshold = 1 << 30;  // bytes; glibc >= 2.35 accepts values above 32 MB
  constexpr long kKeep = 4L << 30;
  bool ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1;
  // M_TRIM_THRESHOLD takes an int: clamp. Freed memory above it at the heap top goes back to the OS.
  ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(kKeep > 0x7fffffffL ? 0x7fffffffL : kKeep)) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 64 << 20) == 1 && ok;
  return ok;
#else
  return false;
#endif
}

}  // namespace drifa
