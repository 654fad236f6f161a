// The demo end to end through the CLI, as a user runs it: the demo's model learns, its
// uncertainty is measured, Grad-CAM points at the known lesions, t-SNE is trustworthy and the
// report renders in headless Chromium. It trains the README's demo model (100 images per class,
// 16 epochs at batch 32), minutes under a loaded CI, so it has the slow tests' executable and time limit.
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

struct ImageCheck {
  int loaded = -1, total = -1;
};

// Opens the report in headless Chromium and reads the page's own count of decoded images.
ImageCheck chromium_images(const std::string& html, const drifa::test::TempDir& dir) {
  auto r = run("timeout 120 chromium --headless --disable-gpu --no-sandbox --user-data-dir=" + (dir / "chromium") +
               " --virtual-time-budget=10000 --dump-dom file://" + fs::absolute(html).string() + " 2>/dev/null");
  std::smatch m;
  ImageCheck c;
  if (std::regex_search(r.output, m, std::regex("data-loaded=\"(\\d+)\" data-total=\"(\\d+)\""))) {
    c.loaded = std::stoi(m[1]);
    c.total = std::stoi(m[2]);
  } else {
    ADD_FAILURE() << "Chromium did not render " << html << " (is Debian's chromium installed?): " << r.output.substr(0, 2000);
  }
  return c;
}

}  // namespace

TEST(Demo, LearnsMeasuresItsUncertaintyExplainsItselfAndReports) {
  drifa::test::TempDir dir;
  // The demo's own configuration (written by drifa synth), on the demo's data.
  ASSERT_EQ(run(cli() + " synth -q -o " + (dir / "data")).status, 0);
  // Two threads (DRIFA_THREADS=2, tests/CMakeLists.txt), as on the 2-core CI machine: the thread
  // count changes the order of the sums, so the training path, and the demo's derm task is
  // sensitive to it (2-core AVX-512 Xeon, plateau patience 2: derm 0.967 with two threads, 0.867 with
  // one; mri 1.0 both). The demo's recipe now waits 3 epochs on a plateau (synth.cpp): derm and mri
  // 0.93-1.00 over seeds 0-2 and the speed settings precision auto chooses between there.
  auto r = run(cli() + " train -q -c " + (dir / "data/demo.toml") + " -o " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto m = read_json(dir / "run/metrics.json");
  const double derm = m["tasks"]["derm"]["accuracy"], mri = m["tasks"]["mri"]["accuracy"];
  std::cout << "[learning] test accuracy derm " << derm << " mri " << mri << " (chance 0.333)\n";
  // A plain three-layer CNN separates both synthetic tasks; so must the demo's model.
  EXPECT_GE(derm, 0.9);
  EXPECT_GE(mri, 0.9);
  auto log = read_json(dir / "run/log.json");
  EXPECT_LT(log.back()["train_loss"].get<double>(), log.front()["train_loss"].get<double>());

  // Uncertainty: deterministic and MC side by side, per task; the files are complete.
  r = run(cli() + " uq " + (dir / "run") + " -T 10");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("errAUROC"), std::string::npos) << r.output;
  auto uq = read_json(dir / "run/uq/uq.json");
  for (const char* task : {"derm", "mri"}) {
    const auto& t = uq["tasks"][task];
    ASSERT_TRUE(t.contains("deterministic") && t.contains("mc")) << t.dump();
    EXPECT_EQ(t["mc"]["passes"].get<int>(), 10);
    EXPECT_EQ(t["deterministic"]["samples"].get<int>(), 60);
    // the deterministic method is the same model as `drifa evaluate`
    EXPECT_NEAR(t["deterministic"]["metrics"]["accuracy"].get<double>(), m["tasks"][task]["accuracy"].get<double>(), 1e-9);
    EXPECT_GT(t["mc"]["mean"]["mutual_information"].get<double>(), 0.0);
    EXPECT_DOUBLE_EQ(t["deterministic"]["mean"]["mutual_information"].get<double>(), 0.0);
  }
  const auto samples = drifa::test::read_bytes(dir / "run/uq/samples.csv");
  EXPECT_EQ(std::count(samples.begin(), samples.end(), '\n'), 121);  // header + 2 tasks x 60

  // Grad-CAM: at the last stage (2x2 at 64 px) and at stage 3 (8x8), scored against the lesion masks.
  r = run(cli() + " gradcam " + (dir / "run") + " --stage 3");
  ASSERT_EQ(r.status, 0) << r.output;
  auto gc = read_json(dir / "run/gradcam/gradcam.json");
  ASSERT_TRUE(gc.contains("lesion")) << gc.dump();
  const double inside = gc["lesion"]["energy_inside_mean"], uniform = gc["lesion"]["uniform_mean"],
               hits = gc["lesion"]["pointing_hit_rate"];
  std::cout << "[grad-cam] stage 3: energy in lesion " << inside << " vs uniform " << uniform << "; pointing game " << hits
            << "\n";
  EXPECT_EQ(gc["lesion"]["maps"].get<int>(), 120);
  EXPECT_GE(inside, 2 * uniform);
  EXPECT_GT(hits, 2 * uniform);
  ASSERT_EQ(gc["images"].size(), 8u);
  for (const auto& e : gc["images"]) {
    EXPECT_TRUE(fs::file_size(dir / ("run/gradcam/" + e["image"].get<std::string>())) > 100);
    EXPECT_TRUE(fs::exists(dir / ("run/gradcam/" + e["raw_map"].get<std::string>())));
  }
  // the gallery starts with the most uncertain case of the study
  double top = -1;
  {
    const auto t = drifa::data::parse_csv(samples, "samples.csv");
    for (const auto& row : t.rows) top = std::max(top, std::stod(row[static_cast<size_t>(t.column("predictive_entropy", ""))]));
    for (const auto& row : t.rows)
      if (std::stod(row[static_cast<size_t>(t.column("predictive_entropy", ""))]) == top)
        EXPECT_EQ(std::to_string(gc["images"][0]["sample"].get<int>()), row[0]);
  }

  // t-SNE of the fused features
  r = run(cli() + " tsne " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto ts = read_json(dir / "run/tsne/tsne.json");
  for (const char* task : {"derm", "mri"}) {
    EXPECT_GT(ts["embeddings"][task]["trustworthiness"].get<double>(), 0.85);
    EXPECT_TRUE(fs::file_size(dir / ("run/tsne/" + std::string(task) + ".png")) > 1000);
  }

  // The report: one HTML file whose every image decodes in Chromium.
  r = run(cli() + " report " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("not in the report"), std::string::npos) << r.output;
  const auto html = drifa::test::read_bytes(dir / "run/report.html");
  EXPECT_EQ(html.find("src=\"/"), std::string::npos);  // self-contained: nothing linked from disk
  const auto c = chromium_images(dir / "run/report.html", dir);
  std::cout << "[report] " << c.loaded << " of " << c.total << " images loaded in Chromium\n";
  EXPECT_EQ(c.total, 2 + 2 * 3 + 8 + 2);  // curves, per task reliability + 2 histograms, gallery, t-SNE
  EXPECT_EQ(c.loaded, c.total);
  // ... and the check does catch a broken image
  auto broken = html;
  const auto at = broken.find("base64,") + 7;
  broken.replace(at, 40, std::string(40, '!'));
  drifa::test::write_bytes(dir / "broken.html", broken);
  const auto cb = chromium_images(dir / "broken.html", dir);
  EXPECT_EQ(cb.total, c.total);
  EXPECT_EQ(cb.loaded, c.total - 1);
}

