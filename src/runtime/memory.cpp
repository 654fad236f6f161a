#include "drifa/runtime/memory.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include <limits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace drifa {

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // Glibc 2.36 (Debian 12) takes an mmap threshold above its 32 MB default maximum. The trim
  // threshold is an int: INT_MAX, about 2 GiB, of freed memory stays at the heap top.
  bool ok = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1 && ok;
  ok = mallopt(M_TOP_PAD, 64 << 20) == 1 && ok;
  return ok;
#else
  return false;
#endif
}

long long available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long long kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<long long>(pages) * page : 0;
}

}  // namespace drifa
