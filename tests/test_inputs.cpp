// Predicting from the modalities a case has (issue 13): the presence mask through the network,
// modality dropout, missing patterns, the partner bank and partner marginalisation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "drifa/drifa.h"
#include "drifa/inputs/partners.h"
#include "drifa/inputs/presence.h"
#include "drifa/inference/mc_sampler.h"
#include "test_helpers.h"

using namespace drifa;

namespace {

ModelConfig small(int64_t modalities, Attention a, std::vector<int64_t> classes = {3, 4}) {
  ModelConfig c;
  c.modalities = modalities;
  c.classes = std::move(classes);
  c.widths = widths_preset("tiny");
  c.image_size = 24;
  c.attention = a;
  return c;
}

std::vector<torch::Tensor> inputs_for(const ModelConfig& c, int64_t batch, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> xs;
  for (int64_t m = 0; m < c.modalities; ++m) xs.push_back(torch::rand({batch, c.in_channels, c.image_size, c.image_size}));
  return xs;
}

// Non-trivial scales, alphas and BN statistics, so every part of the attention matters.
void perturb(DRIFANet& net, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard ng;
  for (auto& [n, t] : runs::model_state(*net)) {
    if (n.find("running_var") != std::string::npos || n.find("scale") != std::string::npos || n.find("alpha") != std::string::npos)
      t.copy_(torch::rand_like(t) + 0.5);
    else if (n.find("running_mean") != std::string::npos || n.find("bias") != std::string::npos)
      t.copy_(torch::randn_like(t) * 0.1);
  }
}

double max_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

std::vector<at::Generator> rngs(int64_t batch, uint64_t seed) {
  std::vector<at::Generator> g;
  for (int64_t r = 0; r < batch; ++r) g.push_back(inference::pass_generator(seed, r, 0));
  return g;
}

}  // namespace

TEST(Presence, AllOnesMaskEqualsTodaysForward) {
  for (auto a : {Attention::DRIFA, Attention::MIFA, Attention::MFA, Attention::None})
    for (int64_t M : {2, 3}) {
      auto c = small(M, a);
      torch::manual_seed(11);
      DRIFANet net(c);
      perturb(net, 5);
      const auto xs = inputs_for(c, 5, 2);
      torch::NoGradGuard ng;
      for (auto mode : {Mode::Eval, Mode::MCSample}) {
        net->set_mode(mode);
        ForwardOptions plain, masked;
        if (mode == Mode::MCSample) plain.dropout_rngs = rngs(5, 9), masked.dropout_rngs = rngs(5, 9);
        masked.presence = torch::ones({5, M});
        const auto r0 = net->forward(xs, plain), r1 = net->forward(xs, masked);
        EXPECT_LE(max_diff(r0.logits, r1.logits), 1e-6) << to_string(a) << " M=" << M;
        EXPECT_LE((r0.features - r1.features).abs().max().item<double>(), 1e-6);
      }
    }
}

// An absent modality (undefined input, branch skipped) and a presence weight of 0 give the same
// network output, whatever the absent slot holds; MIFA then sums over the present modalities only
// and the head sees zeros in the absent modality's place.
TEST(Presence, AbsentModalityIsSkippedAndMaskedRowsAgree) {
  for (auto a : {Attention::DRIFA, Attention::MIFA, Attention::None}) {
    auto c = small(3, a);
    torch::manual_seed(12);
    DRIFANet net(c);
    perturb(net, 6);
    auto xs = inputs_for(c, 4, 3);
    torch::NoGradGuard ng;
    for (auto mode : {Mode::Eval, Mode::MCSample}) {
      net->set_mode(mode);
      ForwardOptions skip, mask, mask_other;
      if (mode == Mode::MCSample)
        skip.dropout_rngs = rngs(4, 1), mask.dropout_rngs = rngs(4, 1), mask_other.dropout_rngs = rngs(4, 1);
      auto absent = xs;
      absent[1] = torch::Tensor();
      const auto r_skip = net->forward(absent, skip);
      mask.presence = torch::ones({4, 3});
      mask.presence.select(1, 1).zero_();
      const auto r_mask = net->forward(xs, mask);
      auto garbage = xs;
      garbage[1] = torch::rand_like(xs[1]) * 7 - 3;
      mask_other.presence = mask.presence;
      const auto r_other = net->forward(garbage, mask_other);
      EXPECT_LE(max_diff(r_skip.logits, r_mask.logits), 1e-5) << to_string(a);
      EXPECT_LE(max_diff(r_mask.logits, r_other.logits), 1e-6) << to_string(a);
      const int64_t w = c.widths.back();
      EXPECT_EQ(r_skip.features.narrow(1, w, w).abs().max().item<double>(), 0.0);
      EXPECT_GT(r_skip.features.narrow(1, 0, w).abs().max().item<double>(), 0.0);
      // Not the full-input answer: the modality did matter.
      ForwardOptions full;
      if (mode == Mode::MCSample) full.dropout_rngs = rngs(4, 1);
      EXPECT_GT(max_diff(net->forward(xs, full).logits, r_skip.logits), 1e-4) << to_string(a);
    }
  }
  // A mixed batch: each row as if run alone with its own pattern.
  auto c = small(2, Attention::DRIFA);
  torch::manual_seed(13);
  DRIFANet net(c);
  perturb(net, 7);
  net->set_mode(Mode::Eval);
  torch::NoGradGuard ng;
  auto xs = inputs_for(c, 3, 4);
  ForwardOptions fo;
  fo.presence = torch::tensor({1.f, 1.f, 0.f, 1.f, 1.f, 0.f}).view({3, 2});
  const auto mixed = net->forward(xs, fo).logits[0];
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<torch::Tensor> one = {xs[0].narrow(0, r, 1), xs[1].narrow(0, r, 1)};
    for (int64_t m = 0; m < 2; ++m)
      if (fo.presence[r][m].item<float>() == 0) one[static_cast<size_t>(m)] = torch::Tensor();
    EXPECT_LE((net->forward(one).logits[0] - mixed.narrow(0, r, 1)).abs().max().item<double>(), 1e-5) << "row " << r;
  }
}

// MIFA with modality 1 of 3 absent equals the spec's formula summed over modalities 0 and 2.
TEST(Presence, MIFASumsOverThePresentModalitiesOnly) {
  torch::manual_seed(14);
  MIFA f(6, 3);
  {
    torch::NoGradGuard ng;
    f->global_scale.fill_(0.7);
    f->local_scale.uniform_(0.5, 1.5);
    for (auto& p : f->alpha->values()) p.uniform_(0.5, 1.5);
  }
  auto x0 = torch::randn({2, 6, 5, 5}), x2 = torch::randn({2, 6, 5, 5});
  torch::NoGradGuard ng;
  const auto out = f->forward({x0, torch::Tensor(), x2});
  ASSERT_FALSE(out[1].defined());
  auto stats = [](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{x.amin({2, 3}), x.mean({2, 3}), x.amax({2, 3})};
  };
  const auto s0 = stats(x0), s2 = stats(x2);
  auto g = torch::zeros({2, 6});
  for (int k = 0; k < 3; ++k) g += torch::sigmoid(f->fc(s0[k] + s2[k]));
  auto l = torch::zeros({2, 6});
  for (int64_t m : {0, 2}) {
    const auto q = torch::sigmoid(f->local[m]->as<torch::nn::Conv2dImpl>()->forward(m == 0 ? x0 : x2));
    for (const auto& s : stats(q)) l += s;
  }
  const auto att = torch::sigmoid(f->global_scale * g + f->local_scale * l).view({2, 6, 1, 1});
  EXPECT_LE((out[0] - x0 * att * f->alpha["0"].view({1, 6, 1, 1})).abs().max().item<double>(), 1e-6);
  EXPECT_LE((out[2] - x2 * att * f->alpha["2"].view({1, 6, 1, 1})).abs().max().item<double>(), 1e-6);
}

TEST(Presence, ModalityDropoutMaskPatternsAndNames) {
  const auto m = inputs::modality_dropout_mask(4000, 3, 0.3, 17);
  EXPECT_TRUE(torch::equal(m, inputs::modality_dropout_mask(4000, 3, 0.3, 17)));
  EXPECT_FALSE(torch::equal(m, inputs::modality_dropout_mask(4000, 3, 0.3, 18)));
  EXPECT_TRUE(m.sum(1).ge(1).all().item<bool>());  // never a row without input
  // P(dropped) = q, less the rescued rows (q^M of them, one entry each): 0.3 - 0.027/3 = 0.291.
  EXPECT_NEAR(1 - m.mean().item<double>(), 0.291, 0.015);
  // The rescued modality is drawn uniformly: each of 3 keeps about a third of 0.027 * 4000 rows.
  EXPECT_TRUE(inputs::modality_dropout_mask(10, 2, 0.0, 1).eq(1).all().item<bool>());
  EXPECT_THROW(inputs::modality_dropout_mask(10, 2, 1.0, 1), Error);

  const auto p = inputs::missing_patterns(3);
  ASSERT_EQ(p.size(), 7u);
  EXPECT_EQ(p[0], (inputs::Absent{false, false, false}));
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(std::count(p[i].begin(), p[i].end(), true), 1);
  for (size_t i = 4; i < 7; ++i) EXPECT_EQ(std::count(p[i].begin(), p[i].end(), true), 2);
  auto c = small(3, Attention::DRIFA, {2, 2, 2});
  c.modality_names = {"ct", "mri", "pet"};
  EXPECT_EQ(inputs::parse_absent({"mri,pet"}, c, "cli"), (inputs::Absent{false, true, true}));
  EXPECT_EQ(inputs::pattern_name({false, true, true}, c), "mri+pet");
  EXPECT_NE(test::error_message<Error>([&] { inputs::parse_absent({"xray"}, c, "--missing"); }).find("no modality named 'xray'"),
            std::string::npos);
  EXPECT_NE(test::error_message<Error>([&] { inputs::parse_absent({"ct", "mri,pet"}, c, "--missing"); }).find("every modality"),
            std::string::npos);
}

namespace {

std::vector<double> probabilities(const nlohmann::json& task) {
  std::vector<double> p;
  for (auto it = task["probabilities"].begin(); it != task["probabilities"].end(); ++it) p.push_back(it.value().get<double>());
  return p;
}

}  // namespace

// An unpaired run predicts from a single image: the other modality is marginalised over bank
// partners, which equals averaging the explicit predictions with those partners as inputs.
TEST(Partners, MarginalisationEqualsAveragingExplicitPredictions) {
  test::TempDir dir;
  const auto cfg = test::make_run_config(dir, "epochs = 2\n", 8, 32);
  const std::string run = dir / "run", cli = test::cli();
  auto r = test::run(cli + " train -q --no-test -c " + cfg + " -o " + run);
  ASSERT_EQ(r.status, 0) << r.output;

  // The bank: seeded training images of each modality at model size.
  auto mcfg = runs::load_model(run + "/best.safetensors").net->config();
  const auto bank = inputs::load_partner_bank(run + "/partners.safetensors", mcfg);
  const auto split = test::read_json(run + "/split.json");
  std::set<std::string> train_paths;
  for (const auto& rec : split["train"][1]) train_paths.insert(rec[0].get<std::string>());
  EXPECT_EQ(bank.size(), std::min<int64_t>(inputs::kBankSize, static_cast<int64_t>(train_paths.size())));
  for (const auto& s : bank.sources[1]) EXPECT_TRUE(train_paths.count(s)) << s << " is not a training image";
  EXPECT_EQ(std::set<std::string>(bank.sources[1].begin(), bank.sources[1].end()).size(), bank.sources[1].size());

  const std::string img = dir / "data/derm/test/irregular/irregular_0001.png";
  r = test::run(cli + " predict " + run + " -T 0 --partners 5 -i derm=" + img + " -o " + (dir / "marg.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto marg = test::read_json(dir / "marg.json");
  const auto& c0 = marg["cases"][0];
  EXPECT_EQ(c0["inputs"]["given"], nlohmann::json::array({"derm"}));
  EXPECT_EQ(c0["inputs"]["marginalised"], nlohmann::json::array({"mri"}));
  EXPECT_EQ(c0["inputs"]["partners"], 5);
  EXPECT_EQ(marg["pairing"], "unpaired");
  EXPECT_FALSE(c0["tasks"]["mri"]["predicted"].get<bool>());
  EXPECT_GE(c0["tasks"]["derm"]["partner_information"].get<double>(), 0.0);
  EXPECT_GT(c0["tasks"]["derm"]["partner_sd"].get<double>(), 0.0);

  // The same by hand: one explicit prediction per partner (the bank's source images), averaged.
  std::vector<double> mean(3, 0.0);
  std::vector<std::vector<double>> each;
  for (int j = 0; j < 5; ++j) {
    r = test::run(cli + " predict " + run + " -T 0 -i " + img + " " + bank.sources[1][static_cast<size_t>(j)] + " -o " + (dir / "one.json"));
    ASSERT_EQ(r.status, 0) << r.output;
    const auto p = probabilities(test::read_json(dir / "one.json")["cases"][0]["tasks"]["derm"]);
    each.push_back(p);
    for (size_t k = 0; k < 3; ++k) mean[k] += p[k] / 5;
  }
  const auto got = probabilities(c0["tasks"]["derm"]);
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(got[k], mean[k], 1e-6) << "class " << k;
  // The partner sd is the spread of the predicted class's probability over those five.
  const auto pred = std::max_element(got.begin(), got.end()) - got.begin();
  double var = 0;
  for (const auto& p : each) var += (p[static_cast<size_t>(pred)] - mean[static_cast<size_t>(pred)]) * (p[static_cast<size_t>(pred)] - mean[static_cast<size_t>(pred)]) / 5;
  EXPECT_NEAR(c0["tasks"]["derm"]["partner_sd"].get<double>(), std::sqrt(var), 1e-6);

  // A bare model file needs the run's bank; with it, the same answer.
  const std::string model = dir / "model.safetensors";
  std::filesystem::copy_file(run + "/best.safetensors", model);
  r = test::run(cli + " predict " + model + " -T 0 -i derm=" + img);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--partners-from"), std::string::npos) << r.output;
  r = test::run(cli + " predict " + model + " -T 0 --partners 5 --partners-from " + run + " -i derm=" + img + " -o " + (dir / "bare.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto bare = probabilities(test::read_json(dir / "bare.json")["cases"][0]["tasks"]["derm"]);
  for (size_t k = 0; k < 3; ++k) EXPECT_DOUBLE_EQ(bare[k], got[k]);

  // Bad requests name what is wrong.
  r = test::run(cli + " predict " + run + " -i xray=" + img);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("NAME=PATH"), std::string::npos) << r.output;
  r = test::run(cli + " predict " + run + " --partners 33 -i derm=" + img);
  EXPECT_NE(r.status, 0);
  r = test::run(cli + " evaluate " + run + " --missing xray");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no modality named 'xray'"), std::string::npos) << r.output;

  // evaluate --partners: K = 1 and K, each task's metrics and the partner spread; --missing all.
  r = test::run(cli + " evaluate " + run + " --partners 4 --missing all --resamples 50 --out " + (dir / "eval"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto m = test::read_json(dir / "eval/metrics.json");
  EXPECT_EQ(m["inputs"]["mode"], "full");
  ASSERT_EQ(m["partners"]["runs"].size(), 2u);
  EXPECT_EQ(m["partners"]["runs"][0]["partners"], 1);
  EXPECT_EQ(m["partners"]["runs"][1]["partners"], 4);
  for (const char* task : {"derm", "mri"}) {
    EXPECT_EQ(m["partners"]["runs"][0]["tasks"][task]["partner_information"].get<double>(), 0.0);
    EXPECT_GE(m["partners"]["runs"][1]["tasks"][task]["partner_information"].get<double>(), 0.0);
    EXPECT_EQ(m["partners"]["runs"][1]["tasks"][task]["samples"], m["tasks"][task]["samples"]);
  }
  const auto missing = test::read_json(dir / "eval/missing.json");
  ASSERT_EQ(missing["patterns"].size(), 3u);  // none, derm, mri
  EXPECT_EQ(missing["patterns"][0]["pattern"], "none");
  EXPECT_DOUBLE_EQ(missing["patterns"][0]["tasks"]["derm"]["accuracy"].get<double>(), m["tasks"]["derm"]["accuracy"].get<double>());
  EXPECT_FALSE(missing["patterns"][1]["tasks"]["derm"]["scored"].get<bool>());  // unpaired: derm's own image is gone
  EXPECT_TRUE(missing["patterns"][1]["tasks"]["mri"].contains("accuracy"));
  EXPECT_NE(r.output.find("with partners from the bank"), std::string::npos) << r.output;
  // The report shows both tables (from the run folder's metrics.json and missing.json).
  std::filesystem::copy_file(dir / "eval/metrics.json", run + "/metrics.json", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir / "eval/missing.json", run + "/missing.json");
  r = test::run(cli + " report " + run);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto html = test::read_bytes(run + "/report.html");
  EXPECT_NE(html.find("<h2>Missing modalities</h2>"), std::string::npos);
  EXPECT_NE(html.find("not scored: its modality (derm) is absent"), std::string::npos);
  EXPECT_NE(html.find("partner information"), std::string::npos);

  // uq with partners says what it used and reports the spread.
  r = test::run(cli + " uq " + run + " -T 3 --partners 3 --resamples 0");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto uq = test::read_json(run + "/uq/uq.json");
  EXPECT_EQ(uq["inputs"]["mode"], "partners");
  EXPECT_EQ(uq["inputs"]["partners"], 3);
  EXPECT_TRUE(uq["partner_spread"]["derm"]["information"].is_number());
}

