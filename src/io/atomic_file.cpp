#include "drifa/io/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "drifa/error.h"
#include "drifa/io/settings.h"

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

int remove_stale_temporaries(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const auto at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 >= name.size()) continue;
    const std::string digits = name.substr(at + 5);
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

std::string read_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) throw Error(path + ": cannot open " + what + " (no such file)");
  if (fs::is_directory(st)) throw Error(path + ": cannot open " + what + ": it is a folder, not a file");
  if (!fs::is_regular_file(st)) throw Error(path + ": cannot open " + what + ": not a regular file (a FIFO, device or socket)");
  const auto size = fs::file_size(path, ec);
  if (!ec && size > static_cast<uintmax_t>(settings::limits::kMaxFileBytes))
    throw Error(path + ": " + what + " of " + std::to_string(size) + " bytes, larger than DRIFA reads (" +
                std::to_string(settings::limits::kMaxFileBytes) + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open " + what + " (no permission?)");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": reading the " + what + " failed");
  return bytes;
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](std::ostream& o) { o << text; });
}

}  // namespace drifa::io
