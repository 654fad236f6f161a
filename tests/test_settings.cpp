// The settings validator (io/settings.h): types without wrap-around or truncation, finite
// numbers, bounds, unknown keys, names, duplicate JSON keys; and the configs built on it.
#include <gtest/gtest.h>

#include <cmath>

#include "drifa/error.h"
#include "drifa/io/config_file.h"
#include "drifa/io/settings.h"
#include "drifa/model/config.h"
#include "drifa/training/checkpoint.h"
#include "drifa/runs/run_config.h"
#include "test_helpers.h"

using namespace drifa;
namespace L = drifa::settings::limits;

namespace {

std::string error_of(const std::function<void()>& f) { return test::error_message<Error>(f); }

}  // namespace

TEST(Settings, IntegersAreCheckedForTypeRangeAndWrapAround) {
  nlohmann::json j = {{"a", 5}, {"big", 4294967328ll}, {"frac", 1.5}, {"neg", -3}, {"str", "7"}, {"huge", 18446744073709551615ull}};
  settings::Table t(j, "f.toml", "train");
  EXPECT_EQ(t.integer("a", 0, {1, 10}), 5);
  EXPECT_EQ(t.integer("missing", 42, {1, 10}), 42);  // the default is not range-checked: it is the code's own
  EXPECT_EQ(error_of([&] { t.integer("big", 0, {16, 4096}); }), "f.toml: train.big: found 4294967328, allowed an integer from 16 to 4096");
  EXPECT_EQ(error_of([&] { t.integer("frac", 0, {1, 10}); }), "f.toml: train.frac: found 1.5 (a float), allowed an integer from 1 to 10");
  EXPECT_EQ(error_of([&] { t.integer("neg", 0, {0, 10}); }), "f.toml: train.neg: found -3, allowed an integer from 0 to 10");
  EXPECT_EQ(error_of([&] { t.integer("str", 0, {0, 10}); }), "f.toml: train.str: found \"7\" (a string), allowed an integer from 0 to 10");
  EXPECT_NE(error_of([&] { t.integer("huge", 0, L::kSeed); }).find("train.huge: found 18446744073709551615"), std::string::npos);
}

TEST(Settings, RealsMustBeFiniteAndInRange) {
  nlohmann::json j = {{"x", 0.5}, {"n", std::nan("")}, {"i", INFINITY}, {"zero", 0.0}, {"one", 1}};
  settings::Table t(j, "c.json");
  EXPECT_DOUBLE_EQ(t.real("x", 0, L::kFraction), 0.5);
  EXPECT_DOUBLE_EQ(t.real("one", 0, {0.0, 2.0}), 1.0);  // an integer is a number too
  EXPECT_EQ(error_of([&] { t.real("n", 0, L::kDropout); }), "c.json: n: found nan, allowed a finite number in [0, 1)");
  EXPECT_EQ(error_of([&] { t.real("i", 0, L::kLearningRate); }), "c.json: i: found inf, allowed a finite number in (0, 1e+30]");
  EXPECT_EQ(error_of([&] { t.real("zero", 0, L::kFraction); }), "c.json: zero: found 0, allowed a finite number in (0, 1)");
}

TEST(Settings, ListsNamesBooleansChoicesAndUnknownKeys) {
  nlohmann::json j = {{"w", {8, 16.2}},     {"names", {"a", "a"}}, {"empty", {""}}, {"ctl", {"a\nb"}}, {"b", 1},
                      {"c", "maybe"},       {"ok", {8, 16}},       {"extra", 1}};
  settings::Table t(j, "r.toml", "model");
  EXPECT_EQ(t.integers("ok", {}, L::kWidth, L::kStages), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(error_of([&] { t.integers("w", {}, L::kWidth, L::kStages); }), "r.toml: model.w[1]: found 16.2, allowed an integer from 1 to 4096");
  EXPECT_EQ(error_of([&] { t.names("names", {}, {1, 4}, true); }), "r.toml: model.names[1]: found \"a\" twice, allowed distinct names");
  EXPECT_EQ(error_of([&] { t.names("empty", {}, {1, 4}, true); }), "r.toml: model.empty[0]: found \"\", allowed a non-empty name");
  EXPECT_NE(error_of([&] { t.names("ctl", {}, {1, 4}, true); }).find("without control characters"), std::string::npos);
  EXPECT_EQ(error_of([&] { t.boolean("b", false); }), "r.toml: model.b: found 1 (an integer), allowed true or false");
  EXPECT_EQ(error_of([&] { t.choice("c", "x", {"x", "y"}); }), "r.toml: model.c: found \"maybe\", allowed x | y");
  EXPECT_EQ(error_of([&] { t.integers("ok", {}, L::kWidth, {3, 8}); }), "r.toml: model.ok: found a list of 2 entries, allowed 3 to 8 entries");
  EXPECT_EQ(error_of([&] { t.finish(); }).rfind("r.toml: model.extra: unknown key; allowed: ok, w, names, empty, ctl, b, c", 0), 0u);
  EXPECT_EQ(error_of([] { settings::Table(nlohmann::json::array(), "x.json", "train"); }),
            "x.json: train: found a list, allowed a table of settings");
}

TEST(Settings, JsonParserRefusesDuplicateKeysDeepNestingAndNamesTheFile) {
  EXPECT_EQ(settings::parse_json(R"({"a": {"b": 1}, "c": [1, {"b": 2}]})", "ok.json")["c"][1]["b"], 2);
  EXPECT_EQ(error_of([] { settings::parse_json(R"({"a": 1, "a": 2})", "d.json"); }), "d.json: malformed JSON: duplicate key \"a\"");
  EXPECT_NE(error_of([] { settings::parse_json(R"({"x": {"a": 1, "a": 1}})", "d.json"); }).find("duplicate key"), std::string::npos);
  EXPECT_NE(error_of([] { settings::parse_json(std::string(200, '[') + std::string(200, ']'), "deep.json"); }).find("nested deeper than 64"),
            std::string::npos);
  const auto msg = error_of([] { settings::parse_json("{\"a\": ", "t.json"); });
  EXPECT_EQ(msg.rfind("t.json: malformed JSON: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find("json.exception"), std::string::npos) << msg;
}

TEST(Settings, FlagsAndCodeValuesUseTheSameBounds) {
  EXPECT_EQ(settings::check_integer("command line", "--passes", 30, L::kPasses), 30);
  EXPECT_EQ(error_of([] { settings::check_integer("command line", "--passes", -5, L::kPasses); }),
            "command line: --passes: found -5, allowed an integer from 0 to 10000");
  EXPECT_EQ(error_of([] { settings::check_real("command line", "--dropout", 1.5, L::kDropout); }),
            "command line: --dropout: found 1.5, allowed a finite number in [0, 1)");
  // the same bound read from a file gives the same words
  nlohmann::json j = {{"passes", -5}};
  settings::Table t(j, "f.json");
  EXPECT_EQ(error_of([&] { t.integer("passes", 0, L::kPasses); }), "f.json: passes: found -5, allowed an integer from 0 to 10000");
}

TEST(Settings, TrainConfigCommandLineOverridesAreValidatedOnTopOfTheFile) {
  auto file = runs::TrainConfig::from_json(nlohmann::json{{"epochs", 7}, {"batch_size", 16}}, "run.toml");
  auto merged = runs::TrainConfig::from_json(nlohmann::json{{"lr", 0.01}}, "command line", file);
  EXPECT_EQ(merged.epochs, 7);
  EXPECT_EQ(merged.batch_size, 16);
  EXPECT_DOUBLE_EQ(merged.lr, 0.01);
  EXPECT_EQ(error_of([&] { runs::TrainConfig::from_json(nlohmann::json{{"epochs", 0}}, "command line", file); }),
            "command line: train.epochs: found 0, allowed an integer from 1 to 100000");
  EXPECT_EQ(error_of([&] { runs::TrainConfig::from_json(nlohmann::json{{"micro_batches", 32}}, "command line", file); }),
            "command line: train.micro_batches: found 32, allowed at most batch_size (16)");
  EXPECT_EQ(error_of([&] { runs::TrainConfig::from_json(nlohmann::json{{"task_weights", {0, 0}}}, "run.toml"); }),
            "run.toml: train.task_weights: found all zeros, allowed weights with a positive sum");
}

TEST(Settings, ModelConfigRoundTripsAndNamesAreChecked) {
  auto c = ModelConfig::four_modality();
  c.modality_names = {"mri", "ct", "cxr", "ctc"};
  c.task_names = {"a", "b", "c", "d"};
  c.class_names = {{"w", "x", "y", "z"}, {}, {"p", "q", "r"}, {"s", "t"}};
  EXPECT_EQ(ModelConfig::from_json(c.to_json(), "m").to_json(), c.to_json());
  c.modality_names[1] = "mri";
  EXPECT_EQ(error_of([&] { c.validate("m.safetensors", "drifa.config"); }),
            "m.safetensors: drifa.config.modality_names[1]: found 'mri' twice, allowed distinct names");
  auto d = ModelConfig::paper();
  d.widths = {64, 200000};
  EXPECT_EQ(error_of([&] { d.validate("command line"); }), "command line: widths[1]: found 200000, allowed an integer from 1 to 4096");
}

TEST(Settings, TrainerStateBoundsEveryCounter) {
  const nlohmann::json ok = {{"epoch", 3}, {"best_val_loss", 0.5}, {"best_epoch", 2}, {"lr", 0.001},
                             {"plateau_best", 0.5}, {"plateau_wait", 1}, {"early_wait", 1}};
  EXPECT_EQ(training::TrainerState::from_json(ok, "c.safetensors").epoch, 3);
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  const Case cases[] = {
      {"epoch", -3, "drifa.trainer_state.epoch: found -3, allowed an integer from 0 to 100000"},
      {"lr", -0.5, "drifa.trainer_state.lr: found -0.5, allowed a finite number in (0, 1e+30]"},
      {"best_epoch", 9, "drifa.trainer_state.best_epoch: found 9, allowed an integer from 0 to 3"},
      {"plateau_wait", 1.5, "drifa.trainer_state.plateau_wait: found 1.5 (a float)"},
      {"best_val_loss", "low", "drifa.trainer_state.best_val_loss: found \"low\" (a string)"},
  };
  for (const auto& c : cases) {
    auto j = ok;
    j[c.key] = c.value;
    const auto msg = error_of([&] { training::TrainerState::from_json(j, "c.safetensors"); });
    EXPECT_NE(msg.find(std::string("c.safetensors: ") + c.expect), std::string::npos) << msg;
  }
  auto missing = ok;
  missing.erase("lr");
  EXPECT_EQ(error_of([&] { training::TrainerState::from_json(missing, "c.safetensors"); }), "c.safetensors: drifa.trainer_state.lr: missing");
}
