#pragma once
// Runs a decoder that may abort in a child process. Debian's GDCM keeps its assert()s, and many
// fire on malformed values (fuzzing found them in the 2-D DICOM decoder and in ITK's DICOM series
// reader): in-process, one bad file would end a training run. The child sends back its bytes or
// its error; if it dies, the input is refused with a message instead.
#include <functional>
#include <string>

namespace drifa::data {

// work() runs in a forked child; its return value comes back. A drifa::Error (or any
// std::exception) it throws is rethrown here as drifa::Error with the same message. If the
// child dies or does not finish, throws drifa::Error(crash_prefix + " stopped on it (signal N,
// an internal assertion or crash)" or " did not finish").
std::string run_isolated(const std::function<std::string()>& work, const std::string& crash_prefix);

}  // namespace drifa::data
