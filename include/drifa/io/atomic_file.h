#pragma once
// Whole-file I/O. Nothing is lost: outputs are written to a temporary file next to the target,
// flushed, and renamed over it, so a reader sees either the old file or the complete new one.
#include <functional>
#include <ostream>
#include <string>

namespace drifa::io {

// Calls write(stream) on a temporary file, then renames it to path. Throws drifa::Error
// (naming path) if writing fails; the temporary file is removed on failure.
void atomic_write(const std::string& path, const std::function<void(std::ostream&)>& write);
void atomic_write_text(const std::string& path, const std::string& text);

// Removes the temporary files (NAME.tmp.PID) in dir, not below it, whose writer no longer runs:
// a writer killed while it wrote leaves one behind. A live writer's is kept. Returns the count.
int remove_stale_temporaries(const std::string& dir);

// The whole file as bytes. Throws drifa::Error "<path>: cannot open <what>" if it cannot be opened.
std::string read_file(const std::string& path, const std::string& what = "file");

}  // namespace drifa::io
