#include "drifa/data/isolated.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>

#include "drifa/error.h"

namespace drifa::data {

namespace {
bool write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
}  // namespace

std::string run_isolated(const std::function<std::string()>& work, const std::string& crash_prefix) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error(crash_prefix + ": cannot start (no pipe: " + std::strerror(errno) + ")");
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error(crash_prefix + ": cannot start (fork failed: " + std::strerror(errno) + ")");
  }
  if (pid == 0) {  // child: [ok, size] + the payload or the message, then exit
    ::close(fds[0]);
    // Die quietly on an assertion or crash (the parent reports it), not through inherited handlers.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, SIG_DFL);
    int64_t head[2] = {0, 0};
    std::string payload;
    try {
      payload = work();
      head[0] = 1;
    } catch (const std::exception& e) {
      payload = e.what();
    }
    head[1] = static_cast<int64_t>(payload.size());
    const bool ok = write_all(fds[1], head, sizeof head) && write_all(fds[1], payload.data(), payload.size());
    ::_exit(ok ? 0 : 3);
  }
  ::close(fds[1]);
  std::string got;
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got.append(buf, static_cast<size_t>(r));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int64_t head[2];
  const bool complete = WIFEXITED(status) && WEXITSTATUS(status) == 0 && got.size() >= sizeof head;
  if (complete) std::memcpy(head, got.data(), sizeof head);
  if (!complete || head[1] < 0 || got.size() != sizeof head + static_cast<size_t>(head[1]))
    throw Error(crash_prefix + (WIFSIGNALED(status) ? " stopped on it (signal " + std::to_string(WTERMSIG(status)) +
                                                          ", an internal assertion or crash)"
                                                    : std::string(" did not finish")));
  if (!head[0]) throw Error(got.substr(sizeof head));
  return got.substr(sizeof head);
}

}  // namespace drifa::data
