#include "drifa/runtime/tuning_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <torch/version.h>
#include <ATen/Parallel.h>

#include "drifa/io/atomic_file.h"
#include "drifa/runtime/precision.h"

namespace fs = std::filesystem;

namespace drifa {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

nlohmann::json read_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::cerr << "warning: " << path << ": not a JSON object; the tuning cache is ignored and will be replaced\n";
    return nlohmann::json::object();
  }
  return j;
}

// flock on PATH.lock for the read-modify-write of put(); released when it goes out of scope.
class FileLock {
 public:
  explicit FileLock(const std::string& path) : fd_(::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  bool held() const { return fd_ >= 0; }

 private:
  int fd_;
};

}  // namespace

std::string default_tuning_cache_path() {
  std::string dir = env(kCacheDirEnv);
  if (dir.empty() && !env("XDG_CACHE_HOME").empty()) dir = env("XDG_CACHE_HOME") + "/drifa";
  if (dir.empty() && !env("HOME").empty()) dir = env("HOME") + "/.cache/drifa";
  return dir.empty() ? "" : (fs::path(dir) / kTuningCacheFile).string();
}

std::string machine_key() {
  const auto& cpu = cpu_features();
  std::ostringstream o;
  o << isa_summary(cpu) << " | oneDNN " << onednn_isa() << " | " << at::get_num_threads() << " threads | torch "
    << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH;
  return o.str();
}

TuningCache::TuningCache(std::string path) : path_(path.empty() ? default_tuning_cache_path() : path == kNoCache ? "" : path) {}

std::optional<nlohmann::json> TuningCache::get(const std::string& key) const {
  if (!enabled()) return std::nullopt;
  const auto j = read_cache(path_);
  if (!j.contains(key)) return std::nullopt;
  return j.at(key);
}

nlohmann::json TuningCache::put(const std::string& key, const nlohmann::json& entry) const {
  if (!enabled()) return entry;
  try {
    fs::create_directories(fs::path(path_).parent_path());
    FileLock lock(path_);
    auto j = read_cache(path_);
    if (j.contains(key)) return j.at(key);  // the first measurement stays
    j[key] = entry;
    io::atomic_write_text(path_, j.dump(1));
  } catch (const std::exception& e) {
    static bool warned = false;
    if (!warned) std::cerr << "warning: the tuning cache " << path_ << " cannot be written (" << e.what() << "); each run measures again\n";
    warned = true;
  }
  return entry;
}

}  // namespace drifa
