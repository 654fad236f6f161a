#pragma once
// Small helpers shared by the tests: temporary folders, running the CLI, file bytes.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

namespace drifa::test {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("drifa-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct RunResult {
  int status;
  std::string output;  // stdout and stderr together
};

// Runs a shell command, capturing its output.
inline RunResult run(const std::string& cmd) {
  RunResult r{0, ""};
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string cli() { return DRIFA_CLI; }

// Runs f, which must throw ErrorT; returns its message (and records a failure if nothing is thrown).
template <typename ErrorT>
std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const ErrorT& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

inline nlohmann::json read_json(const std::string& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Small synthetic data (drifa synth) in dir/data and a tiny run config for it; train_lines are
// appended to its [train] table.
inline std::string make_run_config(const TempDir& dir, const std::string& train_lines, int per_class = 8, int size = 32) {
  auto r = run(cli() + " synth -q -o " + (dir / "data") + " --size " + std::to_string(size) + " --train-per-class " +
               std::to_string(per_class) + " --test-per-class 4");
  EXPECT_EQ(r.status, 0) << r.output;
  const std::string cfg = dir / "data/run.toml";
  write_bytes(cfg, "seed = 3\n[model]\nwidths = \"tiny\"\ndropout = 0.1\nbn_momentum = 0.1\n"
                   "[data]\nimage_size = " + std::to_string(size) + "\nworkers = 2\n"
                   "[[data.modality]]\nname = \"derm\"\ntrain = \"derm/train\"\ntest = \"derm/test\"\n"
                   "[[data.modality]]\nname = \"mri\"\ntrain = \"mri/train\"\ntest = \"mri/test\"\n"
                   "[augment]\nrotation = 10\ntranslate = 2\nbrightness = [0.9, 1.1]\n"
                   "[train]\nbatch_size = 8\n" + train_lines);
  return cfg;
}

}  // namespace drifa::test
