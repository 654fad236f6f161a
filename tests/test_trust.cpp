// The second phase end to end through the CLI, as a user runs it: the demo's model learns, its
// uncertainty is measured, Grad-CAM points at the known lesions, t-SNE is trustworthy and the
// report renders in headless Chromium; ensembles train member by member and resume; predict
// answers for new images; bad inputs get clear errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "drifa/data/csv.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using drifa::test::cli;
using drifa::test::read_json;
using drifa::test::run;

namespace {

// Every number in a equals the one in b within tol (same structure); timing keys are ignored.
void expect_close(const nlohmann::json& a, const nlohmann::json& b, double tol, const std::string& where = "") {
  if (a.is_number() && b.is_number()) {
    EXPECT_NEAR(a.get<double>(), b.get<double>(), tol) << where;
  } else if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (it.key() == "mc_seconds" || it.key() == "shared_prefix") continue;
      ASSERT_TRUE(b.contains(it.key())) << where << "/" << it.key();
      expect_close(it.value(), b[it.key()], tol, where + "/" + it.key());
    }
  } else if (a.is_array() && b.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << where;
    for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], tol, where + "/" + std::to_string(i));
  } else {
    EXPECT_EQ(a, b) << where;
  }
}

}  // namespace

TEST(Ensemble, TrainsMemberByMemberResumesAndFeedsTheStudy) {
  drifa::test::TempDir dir;
  const auto cfg = drifa::test::make_run_config(dir, "epochs = 2\n");
  const std::string ens = dir / "ens";
  auto r = run(cli() + " ensemble -q -c " + cfg + " -o " + ens + " -k 1");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto m0 = drifa::test::read_bytes(ens + "/member-0/best.safetensors");
  // asking for two models keeps the first and trains the second
  r = run(cli() + " ensemble -c " + cfg + " -o " + ens + " -k 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("member 0: already trained"), std::string::npos) << r.output;
  EXPECT_EQ(drifa::test::read_bytes(ens + "/member-0/best.safetensors"), m0);
  EXPECT_NE(drifa::test::read_bytes(ens + "/member-1/best.safetensors"), m0);  // another initialisation
  EXPECT_EQ(drifa::test::read_bytes(ens + "/member-0/split.json"), drifa::test::read_bytes(ens + "/member-1/split.json"));
  EXPECT_EQ(read_json(ens + "/member-1/config.json")["member"].get<int>(), 1);
  // another configuration in the same folder is refused
  r = run(cli() + " ensemble -q -c " + cfg + " -o " + ens + " -k 2 --epochs 3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("another configuration"), std::string::npos) << r.output;

  // the study: shared-prefix passes give the naive loop's numbers
  r = run(cli() + " uq -q " + ens + " -T 6 --seed 5");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " uq -q " + ens + " -T 6 --seed 5 --naive --out " + (dir / "naive"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto fast = read_json(ens + "/uq/uq.json"), naive = read_json(dir / "naive/uq.json");
  EXPECT_EQ(fast["models"].get<int>(), 2);
  ASSERT_TRUE(fast["tasks"]["derm"].contains("ensemble"));
  EXPECT_EQ(fast["tasks"]["derm"]["ensemble"]["passes"].get<int>(), 12);
  expect_close(fast, naive, 1e-5);
  // a different seed draws other masks
  r = run(cli() + " uq -q " + ens + " -T 6 --seed 6 --out " + (dir / "seed6"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(read_json(dir / "seed6/uq.json")["tasks"]["derm"]["ensemble"]["nll"], fast["tasks"]["derm"]["ensemble"]["nll"]);

  // predict: one image per modality -> per task a class, probabilities and uncertainty
  const std::string a = dir / "data/derm/test/round/round_0000.png", b = dir / "data/mri/test/solid/solid_0000.png";
  r = run(cli() + " predict " + ens + " -T 4 -i " + a + " " + b + " -o " + (dir / "p.json") + " --gradcam " + (dir / "pg"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto p = read_json(dir / "p.json");
  ASSERT_EQ(p["cases"].size(), 1u);
  for (const char* task : {"derm", "mri"}) {
    const auto& t = p["cases"][0]["tasks"][task];
    double sum = 0;
    for (auto it = t["probabilities"].begin(); it != t["probabilities"].end(); ++it) sum += it.value().get<double>();
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_TRUE(t["probabilities"].contains(t["class"].get<std::string>()));
    EXPECT_GE(t["mutual_information"].get<double>(), 0.0);
    EXPECT_LE(t["predictive_entropy"].get<double>(), std::log(3.0) + 1e-9);
    EXPECT_TRUE(fs::exists(t["gradcam"]["derm"].get<std::string>()));
  }
  // a CSV of cases gives the same answer for the same images
  drifa::test::write_bytes(dir / "cases.csv", "mri,derm\n" + b + "," + a + "\n");
  r = run(cli() + " predict " + ens + " -T 4 --cases " + (dir / "cases.csv") + " -o " + (dir / "p2.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  expect_close(read_json(dir / "p2.json")["cases"][0]["tasks"], p["cases"][0]["tasks"], 1e-6);

  // bad input: the wrong number of images, a model for other modalities
  r = run(cli() + " predict " + ens + " -i " + a);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("takes 2 images, one per modality (derm, mri); got 1"), std::string::npos) << r.output;
  r = run(cli() + " init --preset tiny --modalities 3 --classes 3,3,3 --image-size 32 -o " + (dir / "m3.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = run(cli() + " predict " + (dir / "m3.safetensors") + " -i " + a + " " + b);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("takes 3 images"), std::string::npos) << r.output;
  fs::copy_file(dir / "m3.safetensors", ens + "/member-1/best.safetensors", fs::copy_options::overwrite_existing);
  r = run(cli() + " uq " + ens);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("member-1/best.safetensors: the model takes 3 modalities, the run's data has 2"), std::string::npos)
      << r.output;
  r = run(cli() + " uq " + (dir / "data"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("neither an ensemble folder"), std::string::npos) << r.output;
}
