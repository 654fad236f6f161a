// Training end to end through the CLI, as a user runs it: learning, resume after kill -9,
// NaN losses, evaluation outputs, and the bad inputs a hospital-style folder brings.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "drifa/data/csv.h"
#include "drifa/runs/model_file.h"
#include "drifa/io/safetensors.h"
#include "drifa/runtime/precision.h"
#include "drifa/training/policy.h"
#include "test_helpers.h"

using namespace drifa;
namespace fs = std::filesystem;
using test::cli;
using test::run;

using test::make_run_config;
using test::read_json;

TEST(Training, ResumeAfterKillMatchesAnUninterruptedRun) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 4\n");
  auto full = run(cli() + " train -q --no-test -c " + cfg + " -o " + (dir / "full"));
  ASSERT_EQ(full.status, 0) << full.output;

  // Start the same run, kill -9 it as soon as its first checkpoint exists, then resume.
  const std::string out = dir / "killed";
  auto bg = run(cli() + " train -q --no-test -c " + cfg + " -o " + out + " > " + (dir / "bg.log") + " 2>&1 & echo $!");
  const pid_t pid = std::stoi(bg.output);
  bool killed = false;
  for (int i = 0; i < 4800 && !killed; ++i) {  // up to 2 minutes for the first epoch
    if (fs::exists(out + "/checkpoint.safetensors")) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(killed) << test::read_bytes(dir / "bg.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto partial = read_json(out + "/log.json");
  EXPECT_LT(partial.size(), 4u) << "the run finished before it could be killed";
  // a second start without --resume refuses to overwrite the run
  auto again = run(cli() + " train -q -c " + cfg + " -o " + out);
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.output.find("use --resume"), std::string::npos) << again.output;

  // resuming with another setting is refused, naming the setting
  auto changed = run(cli() + " train -q --no-test -c " + cfg + " -o " + out + " --resume --precision fp32");
  EXPECT_NE(changed.status, 0);
  EXPECT_NE(changed.output.find("differs from the one this run was started with (train.precision: not set now, \"auto\" in config.json)"),
            std::string::npos)
      << changed.output;

  auto resumed = run(cli() + " train --no-test -c " + cfg + " -o " + out + " --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming after epoch"), std::string::npos) << resumed.output;

  auto a = read_json(dir / "full/log.json"), b = read_json(out + "/log.json");
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(a[e]["val_loss"], b[e]["val_loss"]) << "epoch " << e + 1;
    EXPECT_EQ(a[e]["train_loss"], b[e]["train_loss"]) << "epoch " << e + 1;
  }
  auto ma = io::load_safetensors(dir / "full/checkpoint.safetensors"), mb = io::load_safetensors(out + "/checkpoint.safetensors");
  ASSERT_EQ(ma.tensors.size(), mb.tensors.size());
  for (size_t i = 0; i < ma.tensors.size(); ++i) {
    if (ma.tensors[i].first == "optimizer") continue;  // serialized bytes; its effect shows in the weights
    EXPECT_TRUE(torch::equal(ma.tensors[i].second, mb.tensors[i].second)) << ma.tensors[i].first;
  }
  EXPECT_EQ(test::read_bytes(dir / "full/best.safetensors"), test::read_bytes(out + "/best.safetensors"));
}

// A config that names no precision trains in the one auto picks, says which and why, and records
// auto in config.json so a resume makes the same choice. The tiny model is below the size where
// auto times anything (training/tuning.h), so it trains in fp32 on every machine.
TEST(Training, DefaultPrecisionComesFromTheHardwareAndTheModelsSize) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 1\nsteps_per_epoch = 2\n");
  auto r = run(cli() + " train --no-test -c " + cfg + " -o " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("precision fp32 (auto: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GMAC per step, below 0.5: the plain path, not timed)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/tuning.json"));
  EXPECT_EQ(read_json(dir / "run/config.json")["train"]["precision"], "auto");
}

TEST(Training, NonFiniteLossStopsWithAClearMessage) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 3\nlr = 1e30\n");
  auto r = run(cli() + " train -q -c " + cfg + " -o " + (dir / "run"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("non-finite"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "run/best.safetensors") &&
               !fs::exists(dir / "run/checkpoint.safetensors"));  // never a best model without its run state
}

TEST(Training, EvaluateWritesMetricsAndPredictions) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 1\n");
  ASSERT_EQ(run(cli() + " train -q --no-test -c " + cfg + " -o " + (dir / "run")).status, 0);
  auto r = run(cli() + " evaluate " + (dir / "run") + " --out " + (dir / "eval"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("macro F1"), std::string::npos) << r.output;
  auto m = read_json(dir / "eval/metrics.json");
  auto t = data::read_csv(dir / "eval/predictions.csv");
  // every test sample of both tasks exactly once (3 classes x 4 images each)
  ASSERT_EQ(t.rows.size(), 24u);
  const int tc = t.column("task", "p"), yc = t.column("true_label", "p"), pc = t.column("predicted_label", "p");
  int correct_mri = 0, n_mri = 0;
  for (const auto& row : t.rows) {
    if (row[tc] != "mri") continue;
    ++n_mri;
    correct_mri += row[yc] == row[pc];
    const double s = std::stod(row[t.column("prob_0", "p")]) + std::stod(row[t.column("prob_1", "p")]) +
                     std::stod(row[t.column("prob_2", "p")]);
    EXPECT_NEAR(s, 1.0, 1e-4);
  }
  EXPECT_EQ(n_mri, 12);
  EXPECT_DOUBLE_EQ(m["tasks"]["mri"]["accuracy"].get<double>(), correct_mri / 12.0);
  EXPECT_EQ(m["tasks"]["derm"]["classes"], (nlohmann::json{"annular", "irregular", "round"}));
  // a model for other modalities is refused
  ASSERT_EQ(run(cli() + " init --preset tiny --modalities 3 --classes 3,3,3 -o " + (dir / "m3.safetensors")).status, 0);
  auto bad = run(cli() + " evaluate " + (dir / "run") + " --model " + (dir / "m3.safetensors"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("takes 3 modalities, the run's data has 2"), std::string::npos) << bad.output;
}

TEST(Training, BadDataGivesClearErrors) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 1\n");
  const std::string data = dir / "data";
  auto train_err = [&](const std::string& extra = "") {
    auto r = run(cli() + " train -q -c " + cfg + " -o " + (dir / "run") + " " + extra);
    fs::remove_all(dir / "run");
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
    return r;
  };
  // corrupt image: error naming it; --skip-bad: warning with a count, run completes
  test::write_bytes(data + "/mri/train/solid/zz_corrupt.png", "\x89PNG\r\n\x1a\n garbage");
  auto r = train_err();
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("zz_corrupt.png: corrupt PNG header"), std::string::npos) << r.output;
  r = train_err("--skip-bad");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 bad images skipped"), std::string::npos) << r.output;
  fs::remove(data + "/mri/train/solid/zz_corrupt.png");
  // Files that decoders accept with a warning: a PNG whose chunk fails its CRC, a JPEG cut in its
  // data. Refused by name; --skip-bad skips both.
  {
    std::vector<uchar> png, jpg;
    cv::Mat m(32, 32, CV_8UC1);
    cv::randu(m, 0, 255);
    cv::imencode(".png", m, png);
    cv::imencode(".jpg", m, jpg);
    std::string p(png.begin(), png.end()), j(jpg.begin(), jpg.end());
    p[p.find("IDAT") + 6] ^= 0x55;
    test::write_bytes(data + "/mri/train/solid/zz_crc.png", p);
    test::write_bytes(data + "/mri/train/solid/zz_cut.jpg", j.substr(0, j.size() / 2) + "\xFF\xD9");
  }
  r = train_err();
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(r.output.find("zz_crc.png: corrupt PNG: chunk IDAT") != std::string::npos ||
              r.output.find("zz_cut.jpg: corrupt or truncated JPEG") != std::string::npos) << r.output;
  r = train_err("--skip-bad");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 bad images skipped"), std::string::npos) << r.output;
  fs::remove(data + "/mri/train/solid/zz_crc.png");
  fs::remove(data + "/mri/train/solid/zz_cut.jpg");
  // image too small
  cv::imwrite(data + "/mri/train/solid/zz_small.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(9)));
  r = train_err();
  EXPECT_NE(r.output.find("zz_small.png: image too small"), std::string::npos) << r.output;
  fs::remove(data + "/mri/train/solid/zz_small.png");
  // label sets that differ between train and test
  fs::rename(data + "/mri/test/cystic", data + "/mri/test/haemorrhage");
  r = train_err();
  EXPECT_NE(r.output.find("label sets disagree"), std::string::npos) << r.output;
  fs::rename(data + "/mri/test/haemorrhage", data + "/mri/test/cystic");
  // a class folder without images
  fs::create_directories(data + "/derm/train/zz_empty");
  r = train_err();
  EXPECT_NE(r.output.find("zz_empty contains no images"), std::string::npos) << r.output;
  fs::remove_all(data + "/derm/train/zz_empty");
  // a missing folder
  fs::rename(data + "/derm/train", data + "/derm/train_moved");
  r = train_err();
  EXPECT_NE(r.output.find("derm/train does not exist"), std::string::npos) << r.output;
  fs::rename(data + "/derm/train_moved", data + "/derm/train");
  // config mistakes
  test::write_bytes(dir / "bad.toml", "[data]\nimage_sise = 32\n");
  r = run(cli() + " train -c " + (dir / "bad.toml") + " -o " + (dir / "run"));
  EXPECT_NE(r.output.find("bad.toml: data.image_sise: unknown key; allowed: window_center, window_width, paired, modality, val_fraction"), std::string::npos) << r.output;
  test::write_bytes(dir / "one.toml", "[[data.modality]]\nname = \"a\"\ntrain = \"x\"\n");
  r = run(cli() + " train -c " + (dir / "one.toml") + " -o " + (dir / "run"));
  EXPECT_NE(r.output.find("one.toml: data.modality: found 1 modalities, allowed at least 2"), std::string::npos) << r.output;
  // still intact: the good configuration trains
  EXPECT_EQ(train_err().status, 0);
}

// A member stopped while it evaluated its test part (its training done, no done.json and no
// metrics.json yet) is resumed from its final checkpoint and evaluated when the same command runs
// again, not skipped (the chaos matrix found it skipped, when done.json came before metrics.json).
TEST(Training, AnEnsembleMemberStoppedWhileEvaluatingIsEvaluatedOnTheRerun) {
  test::TempDir dir;
  const auto cfg = make_run_config(dir, "epochs = 2\n");
  const std::string ens = dir / "ens", cmd = cli() + " ensemble -q --threads 2 -k 1 -c " + cfg + " -o " + ens;
  auto r = run(cmd);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto metrics = read_json(ens + "/member-0/metrics.json");
  const auto best = test::read_bytes(ens + "/member-0/best.safetensors");
  fs::remove(ens + "/member-0/done.json");
  fs::remove(ens + "/member-0/metrics.json");
  fs::remove(ens + "/member-0/predictions.csv");
  r = run(cmd);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(fs::exists(ens + "/member-0/metrics.json")) << "the member was skipped, its metrics never written";
  EXPECT_EQ(read_json(ens + "/member-0/metrics.json"), metrics);
  EXPECT_TRUE(fs::exists(ens + "/member-0/done.json"));
  EXPECT_EQ(test::read_bytes(ens + "/member-0/best.safetensors"), best) << "no epoch was trained again";
  // done.json comes last, so no kill leaves it beside a member without its metrics.
  EXPECT_GE(fs::last_write_time(ens + "/member-0/done.json"), fs::last_write_time(ens + "/member-0/metrics.json"));
}

// The schedule around the epochs (training/policy.h), Keras semantics, on a made-up loss sequence.
TEST(Policy, PlateauEarlyStoppingAndTheBestModelFollowKeras) {
  runs::TrainConfig tc;
  tc.plateau_patience = 2;
  tc.plateau_factor = 0.5;
  tc.min_lr = 0.2;
  tc.early_stop_patience = 3;
  training::TrainerState st;
  st.lr = 1.0;
  struct Want {
    double loss;
    bool improved, best, lr_reduced;
    double lr;
    bool stop;
  };
  const Want seq[] = {
      {1.0, true, true, false, 1.0, false},
      {0.99995, false, true, false, 1.0, false},  // lower, but not by 1e-4: best, not an improvement
      {0.9999, false, true, true, 0.5, false},    // second epoch without improvement: lr halves
      {0.5, true, true, false, 0.5, false},       // waits reset
      {0.6, false, false, false, 0.5, false},
      {0.6, false, false, true, 0.25, false},
      {0.6, false, false, false, 0.25, true},     // third without improvement: early stop
  };
  int64_t epoch = 0;
  for (const auto& w : seq) {
    const auto v = training::judge_epoch(st, tc, ++epoch, w.loss);
    EXPECT_EQ(v.improved, w.improved) << "epoch " << epoch;
    EXPECT_EQ(v.best, w.best) << "epoch " << epoch;
    EXPECT_EQ(v.lr_reduced, w.lr_reduced) << "epoch " << epoch;
    EXPECT_DOUBLE_EQ(st.lr, w.lr) << "epoch " << epoch;
    EXPECT_EQ(training::patience_spent(st, tc), w.stop) << "epoch " << epoch;
    EXPECT_EQ(st.epoch, epoch);
  }
  EXPECT_EQ(st.best_epoch, 4);
  EXPECT_DOUBLE_EQ(st.best_val_loss, 0.5);
  // min_lr is a floor: 0.25 * 0.5 would go below it
  for (int i = 0; i < 2; ++i) training::judge_epoch(st, tc, ++epoch, 0.7);
  EXPECT_DOUBLE_EQ(st.lr, 0.2);
}
