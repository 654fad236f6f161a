// The one inferer (mode, autograd, temperatures handled once), the predictive-method registry
// and test-time augmentation: its views are the transformed inputs, its method is calibrated,
// conformalised and answered with by uq, calibrate, predict and serve.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "drifa/error.h"
#include "drifa/inference/inferer.h"
#include "drifa/inference/method.h"
#include "drifa/runs/model_file.h"
#include "drifa/runs/run_config.h"
#include "test_helpers.h"

using namespace drifa;
using test::cli;
using test::run;

namespace {

DRIFANet tiny_net() {
  auto c = ModelConfig::tiny();
  c.classes = {3, 4};
  c.dropout = 0.25;
  torch::manual_seed(4);
  return DRIFANet(c);
}

std::vector<torch::Tensor> images(int64_t b) {
  torch::manual_seed(5);
  return {torch::rand({b, 3, 32, 32}), torch::rand({b, 3, 32, 32})};
}

std::vector<int64_t> ids(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(Inferer, IsTheModelInEvalModeWithoutGradientsAndPutsTheModeBack) {
  auto net = tiny_net();
  net->set_mode(Mode::Train);
  const auto x = images(5);
  inference::Inferer inf(net, {torch::kCPU, false, {2.0, 0.5}});
  const auto p = inf.rows(x, 1, ids(5));
  EXPECT_EQ(net->mode(), Mode::Train);  // as it was
  ASSERT_EQ(p.probs.size(), 2u);
  EXPECT_EQ(p.probs[0].sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(p.probs[1].sizes(), (std::vector<int64_t>{5, 4}));
  EXPECT_FALSE(p.probs[0].requires_grad());
  torch::Tensor ref0, ref1;
  {
    ModeGuard eval(net, Mode::Eval);
    torch::NoGradGuard ng;
    const auto r = net->forward(x);
    ref0 = torch::softmax(r.logits[0] / 2.0, 1);
    ref1 = torch::softmax(r.logits[1] / 0.5, 1);
  }
  EXPECT_LT(max_diff(p.probs[0], ref0), 1e-6);  // dropout off and each task's temperature applied
  EXPECT_LT(max_diff(p.probs[1], ref1), 1e-6);
  // a second pass gives the same numbers (Eval mode: no dropout)
  EXPECT_EQ(max_diff(inf.rows(x, 1, ids(5)).probs[0], p.probs[0]), 0.0);
  // Monte Carlo passes from the shared prefix, in MCSample mode, and the mode put back again
  inference::MCOptions mo;
  mo.passes = 3;
  const auto mc = inf.mc(p, mo);
  EXPECT_EQ(mc[0].sizes(), (std::vector<int64_t>{3, 5, 3}));
  EXPECT_GT(max_diff(mc[0][0], mc[0][1]), 1e-5);
  EXPECT_EQ(net->mode(), Mode::Train);
  EXPECT_THROW(inference::Inferer(net, {torch::kCPU, false, {1.0}}), Error);  // one temperature per task
}

TEST(PredictiveMethods, EveryCountIsAnsweredByExactlyOneMethodAndNamesAreUnique) {
  std::set<std::string> names;
  for (const auto* m : inference::methods()) EXPECT_TRUE(names.insert(m->name()).second) << m->name();
  EXPECT_EQ(names, (std::set<std::string>{"deterministic", "mc", "ensemble_deterministic", "ensemble", "tta", "tta_mc"}));
  for (int64_t models : {1, 3})
    for (int64_t passes : {0, 5})
      for (int64_t views : {0, 4})
        for (bool views_mc : {false, true}) {
          if (views_mc && (views == 0 || passes == 0)) continue;
          const inference::Counts c{models, passes, views, views_mc};
          int answering = 0;
          for (const auto* m : inference::methods()) answering += m->answers(c) ? 1 : 0;
          EXPECT_EQ(answering, 1) << models << " " << passes << " " << views << " " << views_mc;
          EXPECT_TRUE(inference::method_for(c).available(c)) << inference::method_for(c).name();
        }
  EXPECT_EQ(inference::method_for({1, 0, 0, false}).name(), "deterministic");
  EXPECT_EQ(inference::method_for({1, 0, 8, false}).name(), "tta");
  EXPECT_EQ(inference::method_for({3, 0, 8, false}).name(), "tta");
  EXPECT_EQ(inference::method_for({1, 5, 8, true}).name(), "tta_mc");
  EXPECT_EQ(inference::find_method("nope"), nullptr);
  // the shape of each method's samples
  inference::TaskSamples s;
  s.deterministic = {torch::rand({6, 3}), torch::rand({6, 3})};
  s.mc = {torch::rand({5, 6, 3}), torch::rand({5, 6, 3})};
  s.own["tta"] = {torch::rand({4, 6, 3}), torch::rand({4, 6, 3})};
  EXPECT_EQ(inference::find_method("deterministic")->samples(s).size(0), 1);
  EXPECT_EQ(inference::find_method("mc")->samples(s).size(0), 5);
  EXPECT_EQ(inference::find_method("ensemble_deterministic")->samples(s).size(0), 2);
  EXPECT_EQ(inference::find_method("ensemble")->samples(s).size(0), 10);
  EXPECT_EQ(inference::find_method("tta")->samples(s).size(0), 8);
}

TEST(TestTimeAugmentation, ViewsAreTheFlipsAndTurnsEachModalityAllows) {
  auto net = tiny_net();
  const auto x = images(4);
  inference::Inferer inf(net, {});
  const auto pass = inf.rows(x, 1, ids(4));
  const auto& tta = *inference::find_method("tta");
  inference::DrawOptions o;
  o.tta.views = 8;
  o.tta.transforms = {"dihedral", "none"};
  ASSERT_TRUE(tta.draws(o));
  const auto d = tta.draw(inf, pass, o);
  ASSERT_EQ(d[0].sizes(), (std::vector<int64_t>{8, 4, 3}));
  // view k of the first modality, the second untouched
  const std::vector<torch::Tensor> turned = {x[0], x[0].flip({3}), x[0].flip({2}), x[0].flip({2, 3}), x[0].rot90(1, {2, 3}),
                                             x[0].rot90(3, {2, 3}), x[0].transpose(2, 3), x[0].transpose(2, 3).flip({2, 3})};
  for (size_t v = 0; v < turned.size(); ++v) {
    const auto ref = inf.rows({turned[v].contiguous(), x[1]}, 1, ids(4));
    EXPECT_LT(max_diff(d[1][static_cast<int64_t>(v)], ref.probs[1]), 1e-6) << "view " << v;
    if (v > 0) EXPECT_GT(max_diff(d[1][static_cast<int64_t>(v)], pass.probs[1]), 1e-7) << "view " << v << " is not a new view";
  }
  // hflip: views alternate between the image and its mirror
  o.tta.transforms = {"hflip", "hflip"};
  o.tta.views = 3;
  const auto h = tta.draw(inf, pass, o);
  EXPECT_LT(max_diff(h[0][2], pass.probs[0]), 1e-6);
  EXPECT_LT(max_diff(h[0][1], inf.rows({x[0].flip({3}), x[1].flip({3})}, 1, ids(4)).probs[0]), 1e-6);
  // none everywhere: every view is the plain pass
  o.tta.transforms = {"none", "none"};
  const auto n = tta.draw(inf, pass, o);
  for (int64_t v = 0; v < 3; ++v) EXPECT_EQ(max_diff(n[0][v], pass.probs[0]), 0.0);
  o.tta.transforms = {"mirror", "none"};
  EXPECT_THROW(tta.draw(inf, pass, o), Error);
  // views x Monte Carlo passes
  o.tta.transforms = {"flips", "flips"};
  o.tta.mc = true;
  o.mc.passes = 2;
  const auto& tta_mc = *inference::find_method("tta_mc");
  ASSERT_TRUE(tta_mc.draws(o));
  EXPECT_EQ(tta_mc.draw(inf, pass, o)[1].sizes(), (std::vector<int64_t>{6, 4, 4}));
}

TEST(TestTimeAugmentation, RunConfigSaysWhichViewsEachModalityAllows) {
  test::TempDir dir;
  const auto cfg_path = test::make_run_config(dir, "epochs = 1\n");
  auto text = test::read_bytes(cfg_path);
  test::write_bytes(dir / "ok.toml", text + "[tta]\nderm = \"dihedral\"\n");
  auto rc = runs::RunConfig::from_toml(dir / "ok.toml");
  ModelConfig mc;
  mc.modality_names = {"derm", "mri"};
  EXPECT_EQ(rc.tta_transforms(mc), (std::vector<std::string>{"dihedral", "hflip"}));
  EXPECT_EQ(rc.to_json()["tta"]["derm"], "dihedral");
  test::write_bytes(dir / "bad.toml", text + "[tta]\nderm = \"mirror\"\n");
  try {
    runs::RunConfig::from_toml(dir / "bad.toml");
    ADD_FAILURE() << "a bad transform was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tta.derm: found \"mirror\", allowed none | hflip | flips | dihedral"), std::string::npos)
        << e.what();
  }
  test::write_bytes(dir / "unknown.toml", text + "[tta]\nct = \"flips\"\n");
  EXPECT_THROW(runs::RunConfig::from_toml(dir / "unknown.toml").tta_transforms(mc), Error);
}

// uq, calibrate and predict end to end with --tta on a tiny run.
TEST(TestTimeAugmentation, CalibratedConformalisedAndAnsweredLikeTheOtherMethods) {
  test::TempDir dir;
  const auto cfg = test::make_run_config(dir, "epochs = 2\n");
  test::write_bytes(cfg, test::read_bytes(cfg) + "[tta]\nderm = \"dihedral\"\nmri = \"flips\"\n");
  auto r = run(cli() + " train -q -c " + cfg + " -o " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " calibrate -q " + (dir / "run") + " -T 3 --tta 8");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto cal = test::read_json(dir / "run/calibration.json");
  for (const char* task : {"derm", "mri"}) {
    ASSERT_TRUE(cal["tasks"][task].contains("tta")) << cal.dump();
    EXPECT_FALSE(cal["tasks"][task].contains("tta_mc"));  // only with --tta-mc
    EXPECT_GT(cal["tasks"][task]["tta"]["temperature"].get<double>(), 0.0);
  }
  r = run(cli() + " uq -q " + (dir / "run") + " -T 3 --tta 8 --tta-mc --resamples 0");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto uq = test::read_json(dir / "run/uq/uq.json");
  EXPECT_EQ(uq["views"], 8);
  for (const char* task : {"derm", "mri"}) {
    const auto& t = uq["tasks"][task];
    ASSERT_TRUE(t.contains("tta") && t.contains("tta_mc")) << t.dump();
    EXPECT_DOUBLE_EQ(t["tta"]["temperature"].get<double>(), cal["tasks"][task]["tta"]["temperature"].get<double>());
    EXPECT_TRUE(t["tta"].contains("conformal"));
    EXPECT_TRUE(t["tta_mc"]["temperature"].is_null());  // not calibrated with --tta-mc
    // the views disagree, so tta has a spread the deterministic pass lacks
    EXPECT_GT(t["tta"]["mean"]["mutual_information"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(t["deterministic"]["mean"]["mutual_information"].get<double>(), 0.0);
  }
  const std::string imgs = " -i " + (dir / "data/derm/test/round/round_0000.png") + " " + (dir / "data/mri/test/solid/solid_0000.png");
  r = run(cli() + " predict " + (dir / "run") + imgs + " -T 0 --tta 8 -o " + (dir / "p.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto p = test::read_json(dir / "p.json");
  EXPECT_EQ(p["views"], 8);
  const auto& derm = p["cases"][0]["tasks"]["derm"];
  EXPECT_EQ(derm["method"], "tta");
  EXPECT_DOUBLE_EQ(derm["temperature"].get<double>(), cal["tasks"]["derm"]["tta"]["temperature"].get<double>());
  EXPECT_TRUE(derm["prediction_set"].is_object());
  // a bare model file carries the run's [tta] and its calibration: the same answer
  r = run(cli() + " predict " + (dir / "run/best.safetensors") + imgs + " -T 0 --tta 8 -o " + (dir / "pb.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto bare = test::read_json(dir / "pb.json")["cases"][0]["tasks"]["derm"];
  EXPECT_EQ(bare["method"], "tta");
  for (auto it = derm["probabilities"].begin(); it != derm["probabilities"].end(); ++it)
    EXPECT_NEAR(bare["probabilities"][it.key()].get<double>(), it.value().get<double>(), 1e-9) << it.key();
  // ... and not by chance: with the default hflip everywhere the answer differs
  auto meta = runs::load_model(dir / "run/best.safetensors");
  EXPECT_EQ(nlohmann::json::parse(meta.metadata.at(runs::files::kTtaKey)), (nlohmann::json{{"derm", "dihedral"}, {"mri", "flips"}}));
  meta.metadata.erase(runs::files::kTtaKey);
  meta.metadata.erase(runs::files::kConfigKey);
  runs::save_model(meta.net, dir / "plain.safetensors", meta.metadata);
  r = run(cli() + " predict " + (dir / "plain.safetensors") + imgs + " -T 0 --tta 8 -o " + (dir / "pp.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto plain = test::read_json(dir / "pp.json")["cases"][0]["tasks"]["derm"];
  double most = 0;
  for (auto it = derm["probabilities"].begin(); it != derm["probabilities"].end(); ++it)
    most = std::max(most, std::abs(plain["probabilities"][it.key()].get<double>() - it.value().get<double>()));
  EXPECT_GT(most, 1e-6);
  r = run(cli() + " predict " + (dir / "run") + imgs + " -T 2 --tta 4 -o " + (dir / "pm.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(test::read_json(dir / "pm.json")["cases"][0]["tasks"]["derm"]["method"], "tta_mc");
  r = run(cli() + " uq " + (dir / "run") + " --tta 9");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--tta"), std::string::npos) << r.output;
}

// Presets are named ModelConfig factories; the demo's matches what drifa synth writes for users.
TEST(Presets, NamedFactoriesAreValidAndTheDemoMatchesTheSynthConfig) {
  for (const auto& name : ModelConfig::preset_names()) {
    const auto c = ModelConfig::preset(name);
    EXPECT_NO_THROW(c.validate("preset " + name)) << name;
  }
  EXPECT_EQ(ModelConfig::preset("four").modalities, 4);
  EXPECT_EQ(ModelConfig::preset("tiny").image_size, 32);
  EXPECT_THROW(ModelConfig::preset("huge"), Error);
  test::TempDir dir;
  ASSERT_EQ(run(cli() + " synth -q -o " + (dir / "data")).status, 0);
  const auto rc = runs::RunConfig::from_toml(dir / "data/demo.toml");
  ModelConfig base;
  base.classes = {3, 3};
  base.image_size = rc.data.image_size;
  const auto from_file = ModelConfig::from_json(rc.model, "demo.toml", base, "model");
  EXPECT_EQ(from_file.to_json(), ModelConfig::demo().to_json());
}
