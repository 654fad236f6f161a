#pragma once
// One writer per output folder (a run, ensemble or cross-validation folder, or an analysis
// output folder). The writer holds an advisory flock(2) on FOLDER/.drifa.lock while it writes;
// the kernel drops it when the process ends, however it ends (kill -9 included), so nothing
// stale is ever left to clean up. A second writer is refused with the holder's pid, command and
// start time. Readers take no lock: every file is replaced atomically (io/atomic_file.h), and
// files that must agree carry a check of each other (calibration.json names the weights it was
// fitted on).
#include <memory>
#include <string>

namespace drifa::io {

inline constexpr const char* kLockFile = ".drifa.lock";

class FolderLock {
 public:
  // Creates the folder if needed and locks it, then removes the temporary files that killed
  // writers left in it (io::remove_stale_temporaries). Re-entrant within one process: a function that
  // writes a folder its caller already holds shares the caller's lock. Throws drifa::Error
  // "FOLDER: another process is writing this folder (pid N: drifa train ..., since ...)".
  explicit FolderLock(const std::string& dir);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  FolderLock(FolderLock&&) noexcept;
  FolderLock& operator=(FolderLock&&) noexcept;

 private:
  std::string key_;  // the folder's canonical path; empty once moved from
};

}  // namespace drifa::io
