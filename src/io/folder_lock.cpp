#include "drifa/io/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"

namespace fs = std::filesystem;

namespace drifa::io {

namespace {

struct Held {
  int fd = -1;
  int count = 0;
};

// The locks this process holds, by canonical folder. flock() conflicts between two open file
// descriptions even in one process, so a nested writer must reuse the outer one's descriptor.
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Held>& registry() {
  static std::map<std::string, Held> r;
  return r;
}

// This process's command line, spaces between the arguments (from /proc, so a library caller
// that never saw argv still names itself).
std::string own_command() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && s.back() == '\0') s.pop_back();
  for (auto& c : s)
    if (c == '\0' || c == '\n') c = ' ';
  if (s.size() > 300) s = s.substr(0, 297) + "...";
  return s.empty() ? "unknown command" : s;
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string read_holder(const std::string& lock_path) {
  std::ifstream in(lock_path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string canonical_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) throw Error(dir + ": cannot create the output folder" + (ec ? " (" + ec.message() + ")" : std::string()));
  return fs::canonical(dir).string();
}

}  // namespace

FolderLock::FolderLock(const std::string& dir) {
  const std::string key = canonical_dir(dir);
  std::lock_guard<std::mutex> guard(registry_mutex());
  auto& held = registry()[key];
  if (held.count > 0) {
    ++held.count;
    key_ = key;
    return;
  }
  const std::string lock_path = (fs::path(key) / kLockFile).string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    registry().erase(key);
    throw Error(dir + ": cannot open the lock file " + kLockFile + " (" + std::strerror(errno) + ")");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    registry().erase(key);
    if (err != EWOULDBLOCK) throw Error(dir + ": cannot lock the folder (" + std::string(std::strerror(err)) + ")");
    // The holder writes its line right after locking; give it a moment if it has not yet.
    std::string who = read_holder(lock_path);
    for (int i = 0; i < 20 && who.empty(); ++i) {
      ::usleep(10000);
      who = read_holder(lock_path);
    }
    throw Error(dir + ": another process is writing this folder (" + (who.empty() ? "pid unknown" : who) +
                "); wait for it to finish, or choose another folder");
  }
  // Informational only: the lock itself is the flock, which the kernel releases.
  const std::string line = "pid " + std::to_string(::getpid()) + ": " + own_command() + ", since " + now_text() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) {
    // A full disk must not stop the run before it starts: the lock holds without the line.
  }
  held.fd = fd;
  held.count = 1;
  key_ = key;
  // The folder's one writer now: what a killed writer left half-written goes.
  remove_stale_temporaries(key);
}

FolderLock::~FolderLock() {
  if (key_.empty()) return;
  std::lock_guard<std::mutex> guard(registry_mutex());
  auto it = registry().find(key_);
  if (it == registry().end()) return;
  if (--it->second.count == 0) {
    // Closing the descriptor releases the flock. The file stays: removing it would race with a
    // writer that has just opened it.
    ::close(it->second.fd);
    registry().erase(it);
  }
}

FolderLock::FolderLock(FolderLock&& o) noexcept : key_(std::move(o.key_)) { o.key_.clear(); }

FolderLock& FolderLock::operator=(FolderLock&& o) noexcept {
  if (this != &o) {
    this->~FolderLock();
    key_ = std::move(o.key_);
    o.key_.clear();
  }
  return *this;
}

}  // namespace drifa::io
