// Data-parallel training on c10d/Gloo through the CLI: two ranks on loopback follow the same
// trajectory as one process with the same global batches; a lost rank stops the others with a
// clear error and leaves a checkpoint the job resumes from.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "drifa/io/safetensors.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using drifa::test::cli;
using drifa::test::read_json;
using drifa::test::run;

namespace {

// No dropout and no augmentation, so one process and two ranks see exactly the same numbers.
std::string deterministic_config(const drifa::test::TempDir& dir, const std::string& train_lines) {
  const auto cfg = drifa::test::make_run_config(dir, train_lines);
  auto text = drifa::test::read_bytes(cfg);
  text.replace(text.find("dropout = 0.1"), 13, "dropout = 0.0");
  text.replace(text.find("[augment]"), std::string("[augment]\nrotation = 10\ntranslate = 2\nbrightness = [0.9, 1.1]\n").size(), "");
  drifa::test::write_bytes(cfg, text);
  return cfg;
}

}  // namespace

TEST(Distributed, TwoRanksFollowOneProcessWithTheSameGlobalBatches) {
  drifa::test::TempDir dir;
  const auto cfg = deterministic_config(dir, "epochs = 2\nsteps_per_epoch = 3\n");
  // One intra-op thread everywhere: with Adam, parameters whose true gradient is ~0 (a conv bias
  // just before BatchNorm) move by the sign of rounding noise, so even the thread count shows.
  auto r = run(cli() + " train -q --no-test --nproc 2 --threads 1 -c " + cfg + " -o " + (dir / "ddp"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " train -q --no-test --micro-batches 2 --threads 1 -c " + cfg + " -o " + (dir / "one"));
  ASSERT_EQ(r.status, 0) << r.output;
  // the ranks agreed with each other after every epoch
  const auto log = read_json(dir / "ddp/log.json");
  ASSERT_EQ(log.size(), 2u);
  for (const auto& row : log) {
    EXPECT_EQ(row["ranks"].get<int>(), 2);
    EXPECT_EQ(row["rank_param_spread"].get<double>(), 0.0);
  }
  // and with the single process that accumulated the same two shards per step
  auto a = drifa::io::load_safetensors(dir / "ddp/checkpoint.safetensors");
  auto b = drifa::io::load_safetensors(dir / "one/checkpoint.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  double worst = 0;
  size_t compared = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& name = a.tensors[i].first;
    ASSERT_EQ(name, b.tensors[i].first);
    // BN running statistics are per rank during an epoch (rank 0's are kept); compare parameters
    if (name == "optimizer" || name.find("running_") != std::string::npos) continue;
    worst = std::max(worst, (a.tensors[i].second - b.tensors[i].second).abs().max().item<double>());
    ++compared;
  }
  std::cout << "[ddp] " << compared << " parameter tensors, largest difference 2 ranks vs 1 process: " << worst << "\n";
  EXPECT_GT(compared, 100u);
  EXPECT_LT(worst, 1e-5);
  // training moved the model (the comparison is not between two untouched initialisations)
  const auto one = read_json(dir / "one/log.json");
  EXPECT_NE(one[0]["val_loss"], one[1]["val_loss"]);
}

TEST(Distributed, ALostRankStopsTheOthersAndTheJobResumes) {
  drifa::test::TempDir dir;
  const auto cfg = deterministic_config(dir, "epochs = 6\n");
  const std::string out = dir / "run";
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  auto start = [&](int rank) {
    const std::string env = "RANK=" + std::to_string(rank) + " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                            std::to_string(port) + " ";
    const std::string log = dir / ("rank" + std::to_string(rank));
    auto r = run("(" + env + cli() + " train -q --no-test --threads 1 --dist-timeout 20 -c " + cfg + " -o " + out + " > " +
                 log + ".log 2>&1; echo $? > " + log + ".rc) > /dev/null 2>&1 & echo $!");
    return static_cast<pid_t>(std::stoi(r.output));
  };
  start(0);
  const pid_t shell1 = start(1);  // the subshell; rank 1 is its child
  bool killed = false;
  for (int i = 0; i < 2400 && !killed; ++i) {  // up to 2 minutes for the first checkpoint
    if (fs::exists(out + "/checkpoint.safetensors")) {
      auto child = run("pgrep -P " + std::to_string(shell1));
      if (!child.output.empty()) killed = ::kill(std::stoi(child.output), SIGKILL) == 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(killed) << drifa::test::read_bytes(dir / "rank0.log") << drifa::test::read_bytes(dir / "rank1.log");
  const auto t0 = std::chrono::steady_clock::now();
  // rank 0 notices and exits with a clear error within the timeout
  while (!fs::exists(dir / "rank0.rc") && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(90))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(fs::exists(dir / "rank0.rc")) << "rank 0 still running after 90 s";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_NE(std::stoi(drifa::test::read_bytes(dir / "rank0.rc")), 0);
  const auto log0 = drifa::test::read_bytes(dir / "rank0.log");
  EXPECT_NE(log0.find("lost a rank or timed out"), std::string::npos) << log0;
  std::cout << "[ddp] rank 0 stopped " << waited << " s after rank 1 was killed\n";
  EXPECT_LT(waited, 60.0);
  // the checkpoint is intact, and the job resumes from it to the end
  const auto ck = drifa::io::load_safetensors(out + "/checkpoint.safetensors");
  EXPECT_GT(ck.tensors.size(), 100u);
  auto r = run(cli() + " train --no-test --nproc 2 --resume -c " + cfg + " -o " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resuming after epoch"), std::string::npos) << r.output;
  EXPECT_EQ(read_json(out + "/log.json").size(), 6u);
}

TEST(Distributed, BadLaunchesGetClearErrors) {
  drifa::test::TempDir dir;
  const auto cfg = drifa::test::make_run_config(dir, "epochs = 1\n");
  auto r = run("RANK=3 WORLD_SIZE=2 " + cli() + " train -q -c " + cfg + " -o " + (dir / "a"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("RANK 3 is outside WORLD_SIZE 2"), std::string::npos) << r.output;
  r = run("RANK=0 WORLD_SIZE=x " + cli() + " train -q -c " + cfg + " -o " + (dir / "a"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("WORLD_SIZE='x' is not an integer"), std::string::npos) << r.output;
  // batch 8 cannot be cut into 3 equal shards
  r = run(cli() + " train -q --nproc 3 -c " + cfg + " -o " + (dir / "b"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("must split into 3 equal shards"), std::string::npos) << r.output;
  // a rank whose partner never comes gives up after the timeout
  r = run("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(40000 + ::getpid() % 20000) + " " + cli() +
          " train -q --dist-timeout 3 -c " + cfg + " -o " + (dir / "c"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("cannot join the group"), std::string::npos) << r.output;
}
