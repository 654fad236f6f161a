#include "drifa/io/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "drifa/error.h"

namespace drifa::io {

void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path() && !fs::exists(target.parent_path()))
    throw Error("cannot write " + path + ": folder " + target.parent_path().string() + " does not exist");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw Error("cannot open " + tmp + " for writing");
      write(out);
      out.flush();
      if (!out) throw Error("writing " + path + " failed (disk full?)");
    }
    // Flush to disk before the rename so a crash cannot leave a renamed but empty file.
    if (FILE* f = std::fopen(tmp.c_str(), "rb")) {
      ::fsync(::fileno(f));
      std::fclose(f);
    }
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open " + what);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](std::ostream& o) { o << text; });
}

}  // namespace drifa::io
