#pragma once
// One exception type for every user-facing failure: bad configs, bad files, bad data.
// The CLI prints what() and exits non-zero; library callers can catch it.
#include <stdexcept>
#include <string>

namespace drifa {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace drifa
