// Speed settings chosen by measuring (training/tuning.h, runtime/tuning_cache.h): the search over
// a made-up timer (what it times, in which order, what it keeps), the cache (first entry stays,
// a broken file is only a cache), the real timing on a small model, and `drifa train` with
// precision auto timing once per machine and configuration.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <random>

#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/model/attention_kernels.h"
#include "drifa/model/recompute.h"
#include "drifa/runtime/threads.h"
#include "drifa/runtime/tuning_cache.h"
#include "drifa/training/tuning.h"
#include "test_helpers.h"

using namespace drifa;
using namespace drifa::training;
namespace fs = std::filesystem;

namespace {

// The four knobs, as knobs_for would give them on a CPU with bf16 and threads.
std::vector<Knob> all_knobs() {
  return {{"bf16", [](SpeedSettings s) { return s.bf16 = true, s; }},
          {"channels-last", [](SpeedSettings s) { return s.channels_last = true, s; }},
          {"attention kernels", [](SpeedSettings s) { if (!s.bf16 && !s.channels_last) s.attention_kernels = true; return s; }},
          {"threaded BLAS", [](SpeedSettings s) { return s.blas_threads = 2, s; }}};
}

std::string code(const SpeedSettings& s) { return s.str(); }

}  // namespace

TEST(Tuning, SearchKeepsAChangeOnlyWhenItIsClearlyFaster) {
  // seconds per step by settings; anything not listed costs 1.0
  std::map<std::string, double> cost{{"fp32", 1.0}, {"bf16", 0.6}, {"bf16, channels-last", 0.59}, {"bf16, BLAS x2", 0.3}};
  std::vector<std::string> calls;
  const auto time = [&](const SpeedSettings& s) {
    calls.push_back(code(s));
    return cost.count(code(s)) ? cost[code(s)] : 1.0;
  };
  const auto t = search(all_knobs(), time);
  // bf16 wins (0.6 < 0.95); channels-last under bf16 is faster by less than the margin, so not
  // taken; the kernels do not apply under bf16 (not timed); threaded BLAS wins.
  EXPECT_EQ(code(t.chosen), "bf16, BLAS x2");
  EXPECT_EQ(t.source, "measured");
  // the plain path first, then each candidate in pairs with the best so far, in alternating
  // order: (best, alt) (alt, best) (best, alt), the first pair reusing the best's latest timing
  // when it was the last one (after bf16 was kept, and the plain path at the start)
  const std::string b = "bf16", cl = "bf16, channels-last", bl = "bf16, BLAS x2";
  const std::vector<std::string> expect{"fp32", b, b, "fp32", "fp32", b,  // bf16 against fp32
                                        cl, cl, b, b, cl,                 // channels-last against bf16
                                        b, bl, bl, b, b, bl};             // BLAS against bf16
  EXPECT_EQ(calls, expect);
  ASSERT_EQ(t.timings.size(), 4u);
  EXPECT_EQ(code(t.timings[0].settings), "fp32");
  EXPECT_DOUBLE_EQ(t.timings[0].seconds, 1.0);
  EXPECT_DOUBLE_EQ(t.timings[3].seconds, 0.3);
  // what decided each: the median ratio against the best then (none for the plain path)
  EXPECT_EQ(t.timings[0].ratio, 0.0);
  EXPECT_DOUBLE_EQ(t.timings[1].ratio, 0.6);
  EXPECT_DOUBLE_EQ(t.timings[2].ratio, 0.59 / 0.6);
  EXPECT_DOUBLE_EQ(t.timings[3].ratio, 0.5);
  const auto table = t.table();
  EXPECT_NE(table.find("bf16, BLAS x2"), std::string::npos) << table;
  EXPECT_NE(table.find("3.33x  (median 0.50 of the best then)  <- chosen"), std::string::npos) << table;
  // JSON round trip, as the cache and tuning.json keep it
  const auto back = Tuning::from_json(t.to_json(), "t");
  EXPECT_EQ(back.chosen, t.chosen);
  ASSERT_EQ(back.timings.size(), t.timings.size());
  EXPECT_DOUBLE_EQ(back.timings[1].seconds, t.timings[1].seconds);
  EXPECT_DOUBLE_EQ(back.timings[2].ratio, t.timings[2].ratio);
  EXPECT_EQ(back.timings[0].ratio, 0.0);
  // a cache or tuning.json with a broken ratio: an error naming the file and the key (a file's
  // 1e400 fails earlier, in nlohmann's parser: the cache is then read as broken, test below)
  for (const nlohmann::json& bad : {nlohmann::json("fast"), nlohmann::json(-1.0), nlohmann::json(0.0),
                                    nlohmann::json(std::numeric_limits<double>::infinity()),
                                    nlohmann::json(std::numeric_limits<double>::quiet_NaN())}) {
    auto bad_ratio = t.to_json();
    bad_ratio["timings"][1]["ratio"] = bad;
    try {
      Tuning::from_json(bad_ratio, "cache.json");
      FAIL() << "ratio " << bad.dump() << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cache.json: timings: \"ratio\" must be a positive finite number"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_THROW(Tuning::from_json({{"chosen", {{"bf16", "yes"}}}, {"timings", nlohmann::json::array()}}, "cache.json"), Error);
  try {
    SpeedSettings::from_json({{"bf16", true}, {"channels_last", false}, {"attention_kernels", false}, {"blas_threads", 0}}, "cache.json");
    FAIL() << "blas_threads 0 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cache.json: blas_threads"), std::string::npos) << e.what();
  }
}

// A candidate far slower than the best so far is timed once, not in alternating rounds.
TEST(Tuning, AClearlySlowerCandidateIsTimedOnce) {
  std::map<std::string, double> cost{{"fp32", 1.0}, {"bf16", 3.0}, {"fp32, channels-last", 1.2}};
  std::vector<std::string> calls;
  const auto time = [&](const SpeedSettings& s) {
    calls.push_back(code(s));
    return cost.count(code(s)) ? cost[code(s)] : 1.0;
  };
  const auto t = search({all_knobs()[0], all_knobs()[1]}, time);
  EXPECT_EQ(code(t.chosen), "fp32");
  // bf16 (3x) once; channels-last (1.2x, within what drift could hide) in alternating pairs, the
  // first with a new timing of the best (the last one timed bf16)
  const std::string cl = "fp32, channels-last";
  const std::vector<std::string> expect{"fp32", "bf16", "fp32", cl, cl, "fp32", "fp32", cl};
  EXPECT_EQ(calls, expect);
  EXPECT_EQ(t.timings.size(), 3u);
  EXPECT_EQ(t.timings[1].ratio, 0.0);  // dropped on one timing
  EXPECT_DOUBLE_EQ(t.timings[2].ratio, 1.2);
}

// The memory knob (recomputing the attention's maps) is kept at equal time, and when slower by
// less than kMemoryKnobMargin (10%); dropped when slower by more; not offered under the attention kernels,
// which recompute already. A speed knob at equal time is not kept (the test above).
TEST(Tuning, AMemoryKnobIsKeptUnlessItIsSlower) {
  const Knob recompute{"recomputed maps", [](SpeedSettings s) { if (!s.attention_kernels) s.recompute = true; return s; },
                       /*saves_memory=*/true};
  for (const auto& [cost_with, kept] : std::vector<std::pair<double, bool>>{{1.0, true}, {1.04, true}, {1.09, true}, {0.9, true}, {1.12, false}, {2.0, false}}) {
    std::map<std::string, double> cost{{"fp32", 1.0}, {"fp32, recomputed maps", cost_with}};
    std::vector<std::string> calls;
    const auto time = [&](const SpeedSettings& s) {
      calls.push_back(code(s));
      return cost.at(code(s));
    };
    const auto t = search({recompute}, time);
    EXPECT_EQ(t.chosen.recompute, kept) << cost_with;
    EXPECT_EQ(calls.size(), cost_with >= kClearlySlower ? 2u : 1u + 2u * kTuneRatios - 1u) << cost_with;
  }
  // under the attention kernels it changes nothing: not timed
  SpeedSettings k;
  k.attention_kernels = true;
  EXPECT_EQ(recompute.turn(k), k);
  // the setting is named, kept in JSON, and read as off from an older file that lacks it
  SpeedSettings r;
  r.recompute = true;
  EXPECT_EQ(r.str(), "fp32, recomputed maps");
  EXPECT_EQ(SpeedSettings::from_json(r.to_json(), "t"), r);
  auto old = r.to_json();
  old.erase("attention_recompute");
  EXPECT_FALSE(SpeedSettings::from_json(old, "t").recompute);
  old["attention_recompute"] = "yes";
  EXPECT_THROW(SpeedSettings::from_json(old, "tuning.json"), Error);
}

// Whatever the timings, the choice is never slower than the plain path by more than the noise
// the timer shows: with noiseless timers, never slower at all.
TEST(Tuning, TheChoiceIsNeverSlowerThanThePlainPath) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.2, 2.0);
  for (int trial = 0; trial < 200; ++trial) {
    std::map<std::string, double> cost;
    const auto time = [&](const SpeedSettings& s) {
      if (!cost.count(code(s))) cost[code(s)] = code(s) == "fp32" ? 1.0 : u(rng);
      return cost[code(s)];
    };
    const auto t = search(all_knobs(), time);
    EXPECT_LE(cost[code(t.chosen)], 1.0) << code(t.chosen);
    // and it is the best of what was timed, but for differences within the margin
    for (const auto& r : t.timings) EXPECT_GE(r.seconds, cost[code(t.chosen)] * (1 - kTuneMargin) - 1e-12) << code(r.settings);
  }
}

// Single steps vary by +-15% on the 2-core Xeon: one outlying timing decides nothing (the median
// of the pairs' ratios), and a steady drift of the machine's speed does not pass for a gain.
TEST(Tuning, OneOutlyingStepOrADriftDoesNotDecide) {
  const auto run = [](double alt_cost, const std::vector<double>& factor, double drift) {
    int call = 0;
    const auto time = [&](const SpeedSettings& s) {
      const double f = call < static_cast<int>(factor.size()) ? factor[call] : 1.0;
      const double d = 1.0 + drift * call++;
      return (s.channels_last ? alt_cost : 1.0) * f * d;
    };
    return search({all_knobs()[1]}, time).chosen.channels_last;
  };
  // calls: fp32, cl | cl, fp32 | fp32, cl
  // no gain, one lucky timing of the candidate (a best-of-two search kept it: 0.8 < 0.95)
  EXPECT_FALSE(run(1.0, {1, 0.8}, 0));
  EXPECT_FALSE(run(1.0, {1, 1, 0.8}, 0));
  // no gain, one slow timing of the best
  EXPECT_FALSE(run(1.0, {1.3}, 0));
  EXPECT_FALSE(run(1.0, {1, 1, 1, 1.3}, 0));
  // a 15% gain with one slow timing of the candidate, or one lucky timing of the best
  EXPECT_TRUE(run(0.85, {1, 1.3}, 0));
  EXPECT_TRUE(run(0.85, {1, 1, 1, 1, 0.8}, 0));
  // the machine slowing 3% a timing: no gain is not kept, a 10% gain is
  EXPECT_FALSE(run(1.0, {}, 0.03));
  EXPECT_TRUE(run(0.9, {}, 0.03));
  // and speeding up likewise
  EXPECT_FALSE(run(1.0, {}, -0.03));
  EXPECT_TRUE(run(0.9, {}, -0.03));
  EXPECT_DOUBLE_EQ(median({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(median({4, 1, 2, 3}), 2.5);
  EXPECT_THROW(median({}), Error);
}

TEST(Tuning, CacheKeepsTheFirstEntryAndSurvivesABrokenFile) {
  test::TempDir dir;
  const std::string path = dir / "cache/tuning.json";
  const TuningCache cache(path);
  EXPECT_FALSE(cache.get("k").has_value());
  EXPECT_EQ(cache.put("k", {{"a", 1}}), nlohmann::json({{"a", 1}}));
  EXPECT_EQ(cache.put("k", {{"a", 2}}), nlohmann::json({{"a", 1}}));  // the first stays
  EXPECT_EQ(cache.put("j", {{"b", 3}}), nlohmann::json({{"b", 3}}));
  EXPECT_EQ(*TuningCache(path).get("k"), nlohmann::json({{"a", 1}}));
  EXPECT_EQ(test::read_json(path)["j"]["b"], 3);
  test::write_bytes(path, "{ not json");
  EXPECT_FALSE(cache.get("k").has_value());  // only a cache: read as empty (with a warning)
  EXPECT_EQ(cache.put("k", {{"a", 4}}), nlohmann::json({{"a", 4}}));
  EXPECT_EQ(*cache.get("k"), nlohmann::json({{"a", 4}}));
  // "none" keeps nothing
  const TuningCache none(kNoCache);
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(none.put("k", {{"a", 5}}), nlohmann::json({{"a", 5}}));
  EXPECT_FALSE(none.get("k").has_value());
  // the default follows DRIFA_CACHE_DIR
  const char* old = std::getenv(kCacheDirEnv);
  const std::string saved = old ? old : "";
  ::setenv(kCacheDirEnv, (dir / "env").c_str(), 1);
  EXPECT_EQ(default_tuning_cache_path(), dir / "env/tuning.json");
  EXPECT_EQ(TuningCache().path(), dir / "env/tuning.json");
  if (old) ::setenv(kCacheDirEnv, saved.c_str(), 1);
  else ::unsetenv(kCacheDirEnv);
  EXPECT_NE(machine_key().find(" threads | torch "), std::string::npos) << machine_key();
}

// The real timing on a small model: every candidate knobs_for offers is timed, the choice is one
// of them, it is kept in the cache and read back, and the process-wide settings are put back.
TEST(Tuning, TimesRealTrainingStepsAndCachesTheChoice) {
  test::TempDir dir;
  auto mcfg = ModelConfig::preset("tiny");
  mcfg.image_size = 32;
  torch::manual_seed(1);
  data::Batch b;
  for (int64_t m = 0; m < mcfg.modalities; ++m) b.inputs.push_back(torch::rand({8, mcfg.in_channels, 32, 32}));
  for (auto k : mcfg.classes) b.labels.push_back(torch::randint(k, {8}, torch::kLong));
  TuneOptions o;
  o.cache = dir / "tuning.json";
  o.steps = 1;
  const bool kernels_before = attention_kernels();
  const int blas_before = blas_threads();
  const bool recompute_before = attention_recompute();
  const auto t = tune_training(mcfg, b, o);
  EXPECT_EQ(t.source, "measured");
  EXPECT_EQ(attention_kernels(), kernels_before);
  EXPECT_EQ(blas_threads(), blas_before);
  EXPECT_EQ(attention_recompute(), recompute_before);
  // the memory knob, last, was timed on whatever the speed knobs kept (unless that was the kernels)
  if (!t.chosen.attention_kernels)
    EXPECT_TRUE(std::any_of(t.timings.begin(), t.timings.end(), [](const Timing& r) { return r.settings.recompute; }));
  ASSERT_GE(t.timings.size(), 2u);  // the plain path and at least channels-last
  EXPECT_EQ(t.timings[0].settings, SpeedSettings{});
  bool chosen_timed = false;
  for (const auto& r : t.timings) {
    EXPECT_GT(r.seconds, 0.0);
    chosen_timed = chosen_timed || r.settings == t.chosen;
  }
  EXPECT_TRUE(chosen_timed);
  if (!cpu_features().bf16_kernels()) EXPECT_FALSE(t.chosen.bf16);
  const auto again = tune_training(mcfg, b, o);
  EXPECT_EQ(again.source, "cache " + o.cache);
  EXPECT_EQ(again.chosen, t.chosen);
  EXPECT_EQ(again.timings.size(), t.timings.size());
  // another batch shape is another key
  data::Batch b4 = b;
  for (auto& x : b4.inputs) x = x.narrow(0, 0, 4);
  for (auto& y : b4.labels) y = y.narrow(0, 0, 4);
  EXPECT_NE(tuning_key(mcfg, b4, torch::kCPU), tuning_key(mcfg, b, torch::kCPU));
  EXPECT_EQ(test::read_json(o.cache).size(), 1u);
}

// drifa train with precision auto on a model above the threshold: the table in the log, the
// choice in the run folder, timed once (the second run reads the cache) and applied; a model
// below the threshold and an explicit precision are not timed.
TEST(Tuning, TrainTimesOncePerMachineAndConfiguration) {
  test::TempDir dir;
  auto r = test::run(test::cli() + " synth -q -o " + (dir / "data") + " --size 64 --train-per-class 6 --test-per-class 2");
  ASSERT_EQ(r.status, 0) << r.output;
  // the demo's widths at 64 px and batch 16: 0.67 GMAC per step
  const std::string cfg = dir / "data/run.toml";
  test::write_bytes(cfg, "seed = 3\n[model]\nwidths = [16, 16, 32, 32, 64, 64, 128, 128]\n"
                         "[data]\nimage_size = 64\nworkers = 2\n"
                         "[[data.modality]]\nname = \"derm\"\ntrain = \"derm/train\"\ntest = \"derm/test\"\n"
                         "[[data.modality]]\nname = \"mri\"\ntrain = \"mri/train\"\ntest = \"mri/test\"\n"
                         "[train]\nbatch_size = 16\nepochs = 1\nsteps_per_epoch = 1\n");
  const std::string cache = dir / "tuning.json";
  auto first = test::run(test::cli() + " train --no-test -c " + cfg + " -o " + (dir / "a") + " --tuning-cache " + cache);
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("(measured)"), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("speed settings (measured):\n  fp32 "), std::string::npos) << first.output;
  EXPECT_NE(first.output.find("<- chosen"), std::string::npos) << first.output;
  const auto saved = test::read_json(dir / "a/tuning.json");
  const auto chosen = SpeedSettings::from_json(saved["chosen"], "tuning.json");
  EXPECT_NE(first.output.find("precision " + std::string(chosen.bf16 ? "bf16" : "fp32") + " (measured)"), std::string::npos)
      << first.output;
  auto second = test::run(test::cli() + " train --no-test -c " + cfg + " -o " + (dir / "b") + " --tuning-cache " + cache);
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("(cache " + cache + ")"), std::string::npos) << second.output;
  EXPECT_EQ(test::read_json(dir / "b/tuning.json"), saved);
  // the same settings, the same seed: the same training
  EXPECT_EQ(test::read_json(dir / "a/log.json")[0]["train_loss"], test::read_json(dir / "b/log.json")[0]["train_loss"]);
  // asked for fp32: nothing timed, no tuning.json
  auto fp32 = test::run(test::cli() + " train --no-test -c " + cfg + " -o " + (dir / "c") + " --precision fp32 --tuning-cache none");
  ASSERT_EQ(fp32.status, 0) << fp32.output;
  EXPECT_NE(fp32.output.find("precision fp32 (as asked)"), std::string::npos) << fp32.output;
  EXPECT_FALSE(fs::exists(dir / "c/tuning.json"));
}
