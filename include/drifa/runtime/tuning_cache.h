#pragma once
// Where measured choices are kept between runs (cuDNN's benchmark mode, kept on disk): a JSON
// file of {key: entry}, the key naming what the measurement depends on (the processor, the
// kernels' ISA, the threads, the LibTorch version and what was measured), so a choice is timed
// once per machine and configuration and read back after.
//
// The first entry written for a key stays: two runs that measure at once both take the one
// written first, so every run of a configuration on a machine trains alike (a later run would
// otherwise be free to pick differently within the timing noise, and change its numbers).
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace drifa {

// The environment variable naming the cache's folder; without it $XDG_CACHE_HOME/drifa, then
// $HOME/.cache/drifa.
inline constexpr const char* kCacheDirEnv = "DRIFA_CACHE_DIR";
inline constexpr const char* kTuningCacheFile = "tuning.json";
// What TuningCache takes as its path to keep nothing (measure every run).
inline constexpr const char* kNoCache = "none";

// The default cache file (kCacheDirEnv, ...), "" where no folder can be named (no HOME).
std::string default_tuning_cache_path();

// What a measurement on this machine depends on: the processor and its flags, oneDNN's kernel
// ISA, intra-op threads, LibTorch's version, e.g.
// "Intel Xeon ... | avx2 avx512f avx512_bf16 | avx512_core_bf16 | 2 threads | torch 1.13.1".
std::string machine_key();

class TuningCache {
 public:
  // path: a cache file, kNoCache, or "" (default_tuning_cache_path()).
  explicit TuningCache(std::string path = "");
  // The entry for key, if one was kept. A cache file that cannot be read as JSON is treated as
  // empty (it is only a cache) and replaced by the next put, with a warning on stderr.
  std::optional<nlohmann::json> get(const std::string& key) const;
  // Keeps entry under key unless an entry is already there, under a lock on the file; returns
  // the entry that is kept (the earlier one where there was one). Where the file cannot be
  // written (a read-only home) returns entry and warns once.
  nlohmann::json put(const std::string& key, const nlohmann::json& entry) const;
  const std::string& path() const { return path_; }
  bool enabled() const { return !path_.empty(); }

 private:
  std::string path_;
};

}  // namespace drifa
