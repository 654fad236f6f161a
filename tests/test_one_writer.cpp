// One writer per output folder (io/folder_lock.h): a second writer is refused with the holder's
// pid and command, the kernel frees the lock of a killed writer, nested writers in one process
// share it; readers refuse a calibration fitted on other weights than the folder holds.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using drifa::test::cli;
using drifa::test::run;

namespace drifa {
namespace {

// Exit status of util-linux flock(1) on the folder's lock file: 0 when it could take the lock,
// 7 when another open file description holds it.
int other_process_can_lock(const std::string& dir) {
  return run("flock -n -E 7 " + dir + "/" + io::kLockFile + " true").status;
}

TEST(OneWriter, NestedWritersInOneProcessShareTheLockAndOthersWait) {
  test::TempDir tmp;
  const std::string dir = tmp / "out";
  {
    io::FolderLock outer(dir);
    EXPECT_TRUE(fs::is_directory(dir));
    EXPECT_EQ(other_process_can_lock(dir), 7);
    {
      io::FolderLock inner(dir);  // train() inside train_ensemble(), evaluate_run() inside train()
      EXPECT_EQ(other_process_can_lock(dir), 7);
    }
    EXPECT_EQ(other_process_can_lock(dir), 7) << "the outer writer still holds it";
    const auto line = test::read_bytes(dir + "/" + io::kLockFile);
    EXPECT_EQ(line.rfind("pid " + std::to_string(::getpid()) + ": ", 0), 0u) << line;
    EXPECT_NE(line.find("drifa_tests"), std::string::npos) << line;
  }
  EXPECT_EQ(other_process_can_lock(dir), 0);
  // Taken again after release, and refused while another process holds it.
  io::FolderLock again(dir);
  EXPECT_EQ(other_process_can_lock(dir), 7);
}

TEST(OneWriter, TheNextWriterRemovesWhatAKilledWriterLeftHalfWritten) {
  test::TempDir tmp;
  const std::string dir = tmp / "out";
  fs::create_directories(dir + "/sub");
  const pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string mine = std::to_string(::getpid()), gone = std::to_string(dead);
  for (const std::string& f : std::vector<std::string>{"checkpoint.safetensors.tmp." + gone, "log.json.tmp." + gone, "metrics.json.tmp." + mine,
                        "notes.tmp.txt", "sub/config.json.tmp." + gone})
    test::write_bytes(dir + "/" + f, "half");
  {
    io::FolderLock lock(dir);
  }
  EXPECT_FALSE(fs::exists(dir + "/checkpoint.safetensors.tmp." + gone)) << "a dead writer's temporary goes";
  EXPECT_FALSE(fs::exists(dir + "/log.json.tmp." + gone));
  EXPECT_TRUE(fs::exists(dir + "/metrics.json.tmp." + mine)) << "a live writer's stays";
  EXPECT_TRUE(fs::exists(dir + "/notes.tmp.txt")) << "not a temporary of ours";
  EXPECT_TRUE(fs::exists(dir + "/sub/config.json.tmp." + gone)) << "sub-folders have their own writers";
  EXPECT_EQ(io::remove_stale_temporaries(dir + "/sub"), 1);
}

TEST(OneWriter, EveryWritingCommandRefusesAFolderInUseAndNamesTheHolder) {
  test::TempDir tmp;
  const auto cfg = test::make_run_config(tmp, "epochs = 1\n", 6, 32);
  const std::string run_dir = tmp / "run";
  const std::string holder = "another process is writing this folder (pid " + std::to_string(::getpid()) + ": ";
  auto refused = [&](const std::string& args, const std::string& folder) {
    io::FolderLock held(folder);
    const auto r = run(cli() + " " + args);
    EXPECT_NE(r.status, 0) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(holder), std::string::npos) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("drifa_tests"), std::string::npos) << "the holder's command: " << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  };
  refused("train -q --threads 2 -c " + cfg + " -o " + run_dir, run_dir);
  EXPECT_FALSE(fs::exists(run_dir + "/config.json")) << "a refused writer wrote nothing";
  EXPECT_FALSE(fs::exists(run_dir + "/checkpoint.safetensors"));
  auto r = run(cli() + " train -q --threads 2 -c " + cfg + " -o " + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto metrics = test::read_bytes(run_dir + "/metrics.json");

  refused("train -q --resume -c " + cfg + " -o " + run_dir, run_dir);
  refused("evaluate " + run_dir, run_dir);
  refused("calibrate -q " + run_dir, run_dir);
  refused("uq -q --passes 2 " + run_dir, run_dir + "/uq");
  refused("gradcam -q " + run_dir, run_dir + "/gradcam");
  refused("tsne -q " + run_dir, run_dir + "/tsne");
  refused("report -q " + run_dir, run_dir + "/plots");
  refused("ensemble -q -k 1 -c " + cfg + " -o " + (tmp / "ens"), tmp / "ens");
  EXPECT_FALSE(fs::exists(tmp / "ens/ensemble.json"));
  refused("cv -q -k 2 --epochs 1 -c " + cfg + " -o " + (tmp / "cv"), tmp / "cv");
  EXPECT_FALSE(fs::exists(tmp / "cv/cv.json"));
  EXPECT_EQ(test::read_bytes(run_dir + "/metrics.json"), metrics) << "the refused evaluate left the run's metrics alone";

  // A reader that writes only its own sub-folder may run while the run folder is held.
  {
    io::FolderLock training(run_dir);
    r = run(cli() + " uq -q --passes 2 --resamples 0 " + run_dir);
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_TRUE(fs::exists(run_dir + "/uq/uq.json"));
  }
  // Unheld, the commands run.
  r = run(cli() + " evaluate --resamples 0 " + run_dir);
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(OneWriter, TheKernelReleasesTheLockOfAKilledWriter) {
  test::TempDir tmp;
  const auto cfg = test::make_run_config(tmp, "epochs = 500\n", 6, 32);
  const std::string run_dir = tmp / "run";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string bin = cli(), out = run_dir;
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
    ::execl(bin.c_str(), bin.c_str(), "train", "-q", "--threads", "1", "-c", cfg.c_str(), "-o", out.c_str(), (char*)nullptr);
    _exit(127);
  }
  // Wait until the child holds the folder (its line names it), then kill it without warning.
  const std::string mine = "pid " + std::to_string(child) + ": ";
  bool held = false;
  for (int i = 0; i < 600 && !held; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    held = test::read_bytes(run_dir + "/" + io::kLockFile).rfind(mine, 0) == 0 && other_process_can_lock(run_dir) == 7;
  }
  ASSERT_TRUE(held) << "the training process never took the lock";
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(other_process_can_lock(run_dir), 0) << "nothing stale: the kernel dropped the dead writer's lock";
  EXPECT_NO_THROW(io::FolderLock again(run_dir));
}

TEST(OneWriter, ACalibrationFittedOnOtherWeightsIsRefused) {
  test::TempDir tmp;
  const auto cfg = test::make_run_config(tmp, "epochs = 1\n", 6, 32);
  const std::string run_dir = tmp / "run";
  auto r = run(cli() + " train -q --threads 2 -c " + cfg + " -o " + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " calibrate -q --passes 2 " + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto cal = test::read_json(run_dir + "/calibration.json");
  ASSERT_TRUE(cal.contains("weights")) << cal.dump();
  const auto best = run_dir + "/best.safetensors";
  auto loaded = runs::load_model(best);
  EXPECT_EQ(cal["weights"], nlohmann::json::array({runs::weights_hash(*loaded.net)}));
  r = run(cli() + " uq -q --passes 2 --resamples 0 " + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;

  // The weights change after calibrating (a retrained or replaced model); its metadata stays.
  {
    torch::NoGradGuard no_grad;
    loaded.net->parameters()[0].add_(0.01);
  }
  auto meta = loaded.metadata;
  meta.erase(runs::files::kConfigKey);
  runs::save_model(loaded.net, best, meta);
  EXPECT_NE(runs::weights_hash(*runs::load_model(best).net), cal["weights"][0].get<std::string>());
  r = run(cli() + " uq -q --passes 2 --resamples 0 " + run_dir);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("calibration.json: fitted on other model weights than the folder holds now (model 0: " +
                          cal["weights"][0].get<std::string>()),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("run it again"), std::string::npos) << r.output;
  const std::string img = tmp / "data/derm/test";
  r = run(cli() + " predict -q " + run_dir + " -i derm=" + fs::directory_iterator(fs::directory_iterator(img)->path())->path().string());
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("fitted on other model weights"), std::string::npos) << r.output;

  // Calibrated again, the folder is consistent and readers accept it.
  r = run(cli() + " calibrate -q --passes 2 " + run_dir);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " uq -q --passes 2 --resamples 0 " + run_dir);
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(OneWriter, AWeightsFingerprintDependsOnValuesNotOnMetadata) {
  test::TempDir tmp;
  ModelConfig c;
  c.widths = widths_preset("tiny");
  c.image_size = 32;
  auto net = DRIFANet(c);
  const auto h = runs::weights_hash(*net);
  EXPECT_EQ(h.size(), 16u);
  runs::save_model(net, tmp / "a.safetensors");
  runs::save_model(net, tmp / "b.safetensors", {{"note", "other metadata"}});
  EXPECT_EQ(runs::weights_hash(*runs::load_model(tmp / "a.safetensors").net), h);
  EXPECT_EQ(runs::weights_hash(*runs::load_model(tmp / "b.safetensors").net), h);
  {
    torch::NoGradGuard no_grad;
    net->parameters().back().view(-1)[0].add_(1e-6);
  }
  EXPECT_NE(runs::weights_hash(*net), h);
}

}  // namespace
}  // namespace drifa
