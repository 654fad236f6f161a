#pragma once
// Shared by the libFuzzer targets: every input either parses or is refused with drifa::Error.
// Any other exception escaping is a finding (abort), as are sanitizer reports and crashes.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <unistd.h>

#include "drifa/error.h"

namespace drifa::fuzz {

template <typename F>
int expect_clean(F&& f) {
  try {
    f();
  } catch (const drifa::Error&) {
    // refused with a message: the intended outcome for bad input
  } catch (const std::exception& e) {
    std::cerr << "finding: an exception other than drifa::Error escaped: " << e.what() << "\n";
    std::abort();
  }
  return 0;
}

// A per-process scratch folder (readers that take a folder read their files from it).
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("drifa-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write_file(const std::filesystem::path& p, const uint8_t* data, size_t size) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
}

}  // namespace drifa::fuzz
