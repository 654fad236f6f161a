// Data: decoding every format (DICOM against pydicom), loaders for every layout, splits,
// pairing, augmentation, the batch loader and its cache, and metrics against scikit-learn.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <set>

#include "drifa/data/csv.h"
#include "drifa/data/dataset.h"
#include "drifa/data/image.h"
#include "drifa/data/loader.h"
#include "drifa/data/sources.h"
#include "drifa/data/split.h"
#include "drifa/data/transforms.h"
#include "drifa/error.h"
#include "drifa/evaluation/metrics.h"
#include "drifa/io/safetensors.h"
#include "test_helpers.h"

using namespace drifa;
using namespace drifa::data;
namespace fs = std::filesystem;

namespace {

const std::string kPydicom = "/usr/lib/python3/dist-packages/pydicom/data/test_files/";

std::string error_of(const std::function<void()>& f) { return test::error_message<Error>(f); }

// A gradient test image with distinct channels.
cv::Mat pattern(int depth, int channels, int w = 20, int h = 12) {
  cv::Mat m(h, w, CV_MAKETYPE(depth, channels));
  const double maxv = depth == CV_16U ? 65535 : 255;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) {
        const double v = std::fmod((x * 7 + y * 13 + c * 50) / 300.0, 1.0) * maxv;
        if (depth == CV_16U) m.ptr<uint16_t>(y)[x * channels + c] = static_cast<uint16_t>(v);
        else m.ptr<uint8_t>(y)[x * channels + c] = static_cast<uint8_t>(v);
      }
  return m;
}

void make_class_tree(const fs::path& root, const std::map<std::string, int>& counts, int size = 24) {
  for (const auto& [cls, n] : counts) {
    fs::create_directories(root / cls);
    for (int i = 0; i < n; ++i) {
      // One pixel differs per file: identical files in two parts would be refused as a leak.
      cv::Mat m = pattern(CV_8U, 3, size, size);
      m.at<cv::Vec3b>(0, 0) = cv::Vec3b(static_cast<uchar>(i), static_cast<uchar>(cls.size() * 31 + cls[0]), 7);
      cv::imwrite((root / cls / (cls + std::to_string(i) + ".png")).string(), m);
    }
  }
}

}  // namespace

TEST(Image, RasterFormatsDecodeToUnitRangeWithRgbOrder) {
  test::TempDir dir;
  struct Case {
    std::string ext;
    int depth, channels;
    double tol;
  };
  const Case cases[] = {{".png", CV_8U, 1, 0},   {".png", CV_8U, 3, 0},    {".png", CV_8U, 4, 0},
                        {".png", CV_16U, 1, 0},  {".png", CV_16U, 3, 0},   {".bmp", CV_8U, 3, 0},
                        {".tif", CV_8U, 1, 0},   {".tif", CV_16U, 1, 0},   {".tiff", CV_8U, 4, 0},
                        {".jpg", CV_8U, 3, 0.05}, {".jpg", CV_8U, 1, 0.05}};
  for (const auto& c : cases) {
    const auto src = pattern(c.depth, c.channels);
    const std::string path = dir / ("img_" + std::to_string(c.depth) + "_" + std::to_string(c.channels) + c.ext);
    ASSERT_TRUE(cv::imwrite(path, src)) << path;
    auto img = decode_image(path);
    ASSERT_EQ(img.type(), c.channels == 1 ? CV_32FC1 : CV_32FC3) << path;
    ASSERT_EQ(img.rows, src.rows);
    ASSERT_EQ(img.cols, src.cols);
    // expected: source scaled to [0, 1], BGR(A) -> RGB
    cv::Mat want;
    src.convertTo(want, CV_32F, c.depth == CV_16U ? 1.0 / 65535 : 1.0 / 255);
    if (c.channels == 3) cv::cvtColor(want, want, cv::COLOR_BGR2RGB);
    if (c.channels == 4) cv::cvtColor(want, want, cv::COLOR_BGRA2RGB);
    if (c.tol == 0) EXPECT_LE(cv::norm(img, want, cv::NORM_INF), 1e-6) << path;
    else EXPECT_LE(cv::norm(img, want, cv::NORM_L1) / double(want.total() * want.channels()), c.tol) << path;  // lossy
  }
  // grey <-> RGB conversion for the model
  auto grey = decode_image(dir / ("img_" + std::to_string(CV_8U) + "_1.png"));
  auto rgb = to_channels(grey, 3);
  EXPECT_EQ(rgb.channels(), 3);
  std::vector<cv::Mat> ch;
  cv::split(rgb, ch);
  EXPECT_EQ(cv::norm(ch[0], grey, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(ch[2], grey, cv::NORM_INF), 0);
}

TEST(Image, CorruptTruncatedAndMissingFilesNameTheFile) {
  test::TempDir dir;
  cv::imwrite(dir / "ok.png", pattern(CV_8U, 3, 64, 64));
  cv::imwrite(dir / "ok.jpg", pattern(CV_8U, 3, 64, 64));
  const auto png = test::read_bytes(dir / "ok.png"), jpg = test::read_bytes(dir / "ok.jpg");
  test::write_bytes(dir / "trunc.png", png.substr(0, png.size() / 2));
  test::write_bytes(dir / "trunc.jpg", jpg.substr(0, jpg.size() / 2));
  test::write_bytes(dir / "garbage.png", "this is not an image at all");
  test::write_bytes(dir / "empty.jpg", "");
  for (const char* f : {"trunc.png", "trunc.jpg", "garbage.png", "empty.jpg", "missing.png"}) {
    auto msg = error_of([&] { decode_image(dir / f); });
    EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([&] { decode_image(dir / "trunc.jpg"); }).find("truncated JPEG"), std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(dir / "empty.jpg"); }).find("empty file"), std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(dir / "missing.png"); }).find("not found"), std::string::npos);
  // too small for the pipeline
  cv::imwrite(dir / "tiny.png", pattern(CV_8U, 3, 4, 4));
  EXPECT_NE(error_of([&] { preprocess(decode_image(dir / "tiny.png"), 32, 3, 8, dir / "tiny.png"); }).find("image too small"),
            std::string::npos);
}

TEST(Image, DicomPixelsEqualPydicom) {
  test::TempDir dir;
  auto prep = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/dicom_oracle.py prepare " +
                        dir.path().string());
  ASSERT_EQ(prep.status, 0) << prep.output;
  std::vector<std::string> files = {kPydicom + "CT_small.dcm",          kPydicom + "MR_small.dcm",
                                    kPydicom + "MR_small_RLE.dcm",      kPydicom + "MR_small_bigendian.dcm",
                                    kPydicom + "MR_small_implicit.dcm", kPydicom + "MR_small_expb.dcm",
                                    dir / "MR_small_mono1.dcm"};
  io::NamedTensors out;
  std::string args;
  for (const auto& f : files) {
    auto img = decode_image(f);
    ASSERT_EQ(img.type(), CV_32FC1) << f;
    out.emplace_back(fs::path(f).filename().string(),
                     torch::from_blob(img.data, {img.rows, img.cols}, torch::kFloat32).clone());
    args += " " + f;
  }
  io::save_safetensors(dir / "decoded.safetensors", out);
  auto r = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/dicom_oracle.py check " +
                     dir.path().string() + args);
  std::cout << r.output;
  EXPECT_EQ(r.status, 0) << r.output;
  // MONOCHROME1 is the inverse of the same pixels as MONOCHROME2
  auto a = decode_image(kPydicom + "MR_small.dcm"), b = decode_image(dir / "MR_small_mono1.dcm");
  EXPECT_LT(cv::norm(a + b, cv::Mat::ones(a.size(), CV_32F), cv::NORM_INF), 1e-6);
  // a configured window overrides the file's
  DicomOptions w;
  w.window_center = 0;
  w.window_width = 4000;
  auto c = decode_image(kPydicom + "CT_small.dcm", w);
  EXPECT_GT(cv::norm(c, decode_image(kPydicom + "CT_small.dcm"), cv::NORM_INF), 0.01);
}

TEST(Image, TruncatedDicomGivesAClearError) {
  auto msg = error_of([] { decode_image(kPydicom + "MR_truncated.dcm"); });
  EXPECT_NE(msg.find("MR_truncated.dcm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("DICOM"), std::string::npos) << msg;
}

TEST(Csv, QuotesNewlinesAndErrors) {
  auto t = parse_csv("\xEF\xBB\xBFimage_id,dx\r\n\"a,1\",\"say \"\"hi\"\"\"\nb,\"two\nlines\"\n\n", "m.csv");
  ASSERT_EQ(t.header, (std::vector<std::string>{"image_id", "dx"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0][0], "a,1");
  EXPECT_EQ(t.rows[0][1], "say \"hi\"");
  EXPECT_EQ(t.rows[1][1], "two\nlines");
  EXPECT_NE(error_of([] { parse_csv("a,b\n1\n", "r.csv"); }).find("r.csv: row 2 has 1 fields"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("a,b\n\"1,2\n", "q.csv"); }).find("q.csv:2: unterminated"), std::string::npos);
  EXPECT_NE(error_of([] { parse_csv("", "e.csv"); }).find("e.csv: empty"), std::string::npos);
  EXPECT_NE(error_of([&] { t.column("label", "m.csv"); }).find("no column 'label' (columns: image_id, dx)"), std::string::npos);
  EXPECT_EQ(csv_escape("a,\"b"), "\"a,\"\"b\"");
}

TEST(Dataset, ClassFoldersAndTheirErrors) {
  test::TempDir dir;
  make_class_tree(dir.path() / "train", {{"glioma", 3}, {"meningioma", 2}, {"notumor", 4}});
  fs::create_directories(dir.path() / "train" / ".hidden");
  auto s = load_class_folders(dir / "train", "brain-mri");
  EXPECT_EQ(s.classes, (std::vector<std::string>{"glioma", "meningioma", "notumor"}));
  EXPECT_EQ(s.records.size(), 9u);
  EXPECT_EQ(s.class_counts(), (std::vector<size_t>{3, 2, 4}));
  EXPECT_NE(error_of([&] { load_class_folders(dir / "nope", "x"); }).find("does not exist"), std::string::npos);
  fs::create_directories(dir.path() / "flat");
  EXPECT_NE(error_of([&] { load_class_folders(dir / "flat", "x"); }).find("no class subfolders"), std::string::npos);
  make_class_tree(dir.path() / "empty", {{"a", 2}});
  fs::create_directories(dir.path() / "empty" / "b");
  test::write_bytes(dir / "empty/b/notes.txt", "no images here");
  auto msg = error_of([&] { load_class_folders(dir / "empty", "x"); });
  EXPECT_NE(msg.find("empty/b contains no images"), std::string::npos) << msg;
  // label sets that disagree between train and test
  make_class_tree(dir.path() / "test", {{"glioma", 1}, {"meningioma", 1}, {"pituitary", 1}});
  auto test_set = load_class_folders(dir / "test", "brain-mri");
  msg = error_of([&] { align_classes(s, test_set, dir / "train", dir / "test"); });
  EXPECT_NE(msg.find("label sets disagree: class 'pituitary'"), std::string::npos) << msg;
  // same classes in another order on disk are re-indexed
  make_class_tree(dir.path() / "test2", {{"glioma", 1}, {"notumor", 1}, {"meningioma", 1}});
  auto t2 = load_class_folders(dir / "test2", "brain-mri");
  align_classes(s, t2, "a", "b");
  EXPECT_EQ(t2.classes, s.classes);
}

TEST(Dataset, Ham10000StyleManifest) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "images");
  for (const char* id : {"ISIC_0001", "ISIC_0002", "ISIC_0003"})
    cv::imwrite(dir / (std::string("images/") + id + ".jpg"), pattern(CV_8U, 3));
  test::write_bytes(dir / "meta.csv", "lesion_id,image_id,dx\nL1,ISIC_0001,nv\nL2,ISIC_0002,mel\nL3,ISIC_0003,nv\n");
  ManifestSpec spec;
  spec.csv = dir / "meta.csv";
  spec.path_column = "image_id";
  spec.label_column = "dx";
  spec.path_template = "images/{}.jpg";
  auto s = load_manifest(spec, "skin");
  EXPECT_EQ(s.classes, (std::vector<std::string>{"mel", "nv"}));
  ASSERT_EQ(s.records.size(), 3u);
  EXPECT_EQ(s.records[1].label, 0);
  EXPECT_EQ(fs::path(s.records[0].path).filename(), "ISIC_0001.jpg");
  // fixed label set: an unknown label is an error naming the row
  spec.classes = {"akiec", "bcc", "bkl", "df", "mel", "vasc"};
  auto msg = error_of([&] { load_manifest(spec, "skin"); });
  EXPECT_NE(msg.find("meta.csv row 2: unknown label 'nv'"), std::string::npos) << msg;
  spec.classes = {};
  test::write_bytes(dir / "meta2.csv", "image_id,dx\nISIC_0009,nv\n");
  spec.csv = dir / "meta2.csv";
  EXPECT_NE(error_of([&] { load_manifest(spec, "skin"); }).find("ISIC_0009.jpg not found"), std::string::npos);
}

TEST(Dataset, PairedManifest) {
  test::TempDir dir;
  for (int i = 0; i < 4; ++i) {
    cv::imwrite(dir / ("mri" + std::to_string(i) + ".png"), pattern(CV_8U, 1));
    cv::imwrite(dir / ("ct" + std::to_string(i) + ".png"), pattern(CV_8U, 3));
  }
  test::write_bytes(dir / "cases.csv",
                    "case,mri,ct,tumour,grade\n1,mri0.png,ct0.png,yes,2\n2,mri1.png,ct1.png,no,\n3,mri2.png,ct2.png,no,1\n"
                    "4,mri3.png,ct3.png,yes,3\n");
  PairedSpec spec;
  spec.csv = dir / "cases.csv";
  spec.image_columns = {"mri", "ct"};
  spec.label_columns = {"tumour", "grade"};
  auto s = load_paired_manifest(spec);
  ASSERT_EQ(s.records.size(), 4u);
  EXPECT_EQ(s.classes[0], (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(s.classes[1], (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(s.records[1].labels, (std::vector<int64_t>{0, -1}));  // missing grade -> ignored
  EXPECT_EQ(fs::path(s.records[3].paths[1]).filename(), "ct3.png");
}

TEST(Split, StratifiedDisjointAndReproducible) {
  std::vector<int64_t> y;
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 10 * (k + 1); ++i) y.push_back(k);
  auto [keep, held] = stratified_split(y, 0.2, 7);
  EXPECT_EQ(keep.size() + held.size(), y.size());
  std::set<size_t> all(keep.begin(), keep.end());
  for (auto i : held) EXPECT_TRUE(all.insert(i).second) << "overlap at " << i;
  std::map<int64_t, int> per;
  for (auto i : held) per[y[i]]++;
  EXPECT_EQ(per[0], 2);
  EXPECT_EQ(per[1], 4);
  EXPECT_EQ(per[2], 6);
  EXPECT_EQ(stratified_split(y, 0.2, 7), stratified_split(y, 0.2, 7));
  EXPECT_NE(stratified_split(y, 0.2, 7).second, stratified_split(y, 0.2, 8).second);
}

TEST(Pairing, EpochPairingResamplesToTheLongestAndChangesEachEpoch) {
  const std::vector<size_t> sizes = {10, 25, 7};
  auto p = epoch_pairing(sizes, 3, 1);
  ASSERT_EQ(p.size(), 25u);
  for (size_t m = 0; m < sizes.size(); ++m) {
    std::vector<int> count(sizes[m], 0);
    for (const auto& t : p) count[t[m]]++;
    const int lo = int(25 / sizes[m]), hi = int((25 + sizes[m] - 1) / sizes[m]);
    for (int c : count) {
      EXPECT_GE(c, lo);
      EXPECT_LE(c, hi);
    }
  }
  EXPECT_EQ(p, epoch_pairing(sizes, 3, 1));
  EXPECT_NE(p, epoch_pairing(sizes, 3, 2));
  EXPECT_NE(p, epoch_pairing(sizes, 4, 1));
}

TEST(Pairing, EvaluationScoresEveryTestSampleOnce) {
  const std::vector<size_t> sizes = {6, 11, 4};
  for (size_t anchor = 0; anchor < 3; ++anchor) {
    auto p = eval_pairing(sizes, anchor, 5);
    ASSERT_EQ(p.size(), sizes[anchor]);
    for (size_t i = 0; i < p.size(); ++i) {
      EXPECT_EQ(p[i][anchor], i);
      for (size_t m = 0; m < 3; ++m) EXPECT_LT(p[i][m], sizes[m]);
    }
    EXPECT_EQ(p, eval_pairing(sizes, anchor, 5));
  }
  // through PreparedData: every test record of every task appears exactly once, labelled only for its task
  PreparedData d;
  for (size_t m = 0; m < 3; ++m) {
    ModalitySet s;
    s.name = "m" + std::to_string(m);
    s.classes = {"a", "b"};
    for (size_t i = 0; i < sizes[m]; ++i) s.records.push_back({s.name + "/" + std::to_string(i), int64_t(i % 2)});
    d.modalities.push_back(s.name);
    d.test.push_back(s);
  }
  auto ex = d.eval_examples("test", 1);
  EXPECT_EQ(ex.size(), 6u + 11u + 4u);
  std::map<std::string, int> scored;
  for (const auto& e : ex) {
    int labelled = 0;
    for (size_t t = 0; t < 3; ++t)
      if (e.labels[t] >= 0) {
        ++labelled;
        scored[e.paths[t]]++;
      }
    EXPECT_EQ(labelled, 1);
  }
  EXPECT_EQ(scored.size(), 21u);
  for (const auto& [p, n] : scored) EXPECT_EQ(n, 1) << p;
}

TEST(Transforms, AugmentationIsSeededAndDoesWhatItSays) {
  cv::Mat img(32, 32, CV_32FC3);
  cv::randu(img, cv::Scalar::all(0.0), cv::Scalar::all(0.5));
  const cv::Mat original = img.clone();
  AugmentConfig a;
  a.rotation_deg = 20;
  a.translate_px = 5;
  a.brightness_lo = 0.8;
  a.brightness_hi = 1.2;
  std::mt19937_64 r1(9), r2(9), r3(10);
  auto x = augment(img, a, r1), y = augment(img, a, r2), z = augment(img, a, r3);
  EXPECT_EQ(cv::norm(x, y, cv::NORM_INF), 0);
  EXPECT_GT(cv::norm(x, z, cv::NORM_INF), 0);
  AugmentConfig bright;
  bright.brightness_lo = bright.brightness_hi = 1.5;
  std::mt19937_64 r4(1);
  EXPECT_LT(cv::norm(augment(img, bright, r4), img * 1.5, cv::NORM_INF), 1e-6);
  AugmentConfig none;
  std::mt19937_64 r5(1);
  EXPECT_EQ(cv::norm(augment(img, none, r5), img, cv::NORM_INF), 0);
  AugmentConfig flips;
  flips.hflip = flips.vflip = true;
  for (int s = 0; s < 4; ++s) {
    std::mt19937_64 rf(s);
    augment(img, flips, rf);
  }
  EXPECT_EQ(cv::norm(img, original, cv::NORM_INF), 0) << "augment must never modify its input (the cache)";
  auto t = to_tensor(img);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_FLOAT_EQ(t[2][5][7].item<float>(), img.at<cv::Vec3f>(5, 7)[2]);
  EXPECT_THROW(AugmentConfig::from_json({{"rotation", -1}}), Error);
  EXPECT_THROW(AugmentConfig::from_json({{"shear", 1}}), Error);
}

TEST(Loader, BatchesCacheAndPrefetch) {
  test::TempDir dir;
  make_class_tree(dir.path(), {{"a", 5}, {"b", 4}}, 40);
  auto s = load_class_folders(dir.path().string(), "x");
  std::vector<Example> ex;
  for (const auto& r : s.records) ex.push_back({{r.path, r.path}, {r.label, 1 - r.label}});
  ImageCache cache({32, 3, 8, {}});
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 2;
  BatchLoader loader(ex, cache, lo);
  EXPECT_EQ(loader.batches(), 3u);
  Batch b;
  size_t n = 0, batches = 0;
  while (loader.next(b)) {
    ASSERT_EQ(b.inputs.size(), 2u);
    EXPECT_EQ(b.inputs[0].size(1), 3);
    EXPECT_EQ(b.inputs[0].size(2), 32);
    EXPECT_TRUE(torch::equal(b.inputs[0], b.inputs[1]));
    EXPECT_TRUE(torch::equal(b.inputs[0], BatchLoader(ex, cache, lo).build(batches).inputs[0]));
    for (size_t i = 0; i < b.indices.size(); ++i) EXPECT_EQ(b.labels[0][int64_t(i)].item<int64_t>(), ex[b.indices[i]].labels[0]);
    EXPECT_GE(b.inputs[0].min().item<float>(), 0.f);
    EXPECT_LE(b.inputs[0].max().item<float>(), 1.f);
    n += b.indices.size();
    ++batches;
  }
  EXPECT_EQ(n, 9u);
  EXPECT_EQ(cache.decodes(), 9u);  // each file decoded once, although used twice per example
  BatchLoader again(ex, cache, lo);
  while (again.next(b)) {
  }
  EXPECT_EQ(cache.decodes(), 9u);  // the second epoch decodes nothing
  // Augmentation is seeded per (seed, epoch, example, modality), independent of thread count.
  lo.augment = true;
  lo.aug.rotation_deg = 15;
  lo.epoch = 3;
  auto one = BatchLoader(ex, cache, lo).build(1);
  lo.workers = 1;
  auto two = BatchLoader(ex, cache, lo).build(1);
  EXPECT_TRUE(torch::equal(one.inputs[1], two.inputs[1]));
  EXPECT_FALSE(torch::equal(one.inputs[0], one.inputs[1]));  // different streams per modality
}

TEST(Loader, VerifyFindsBadImagesAndSkipBadDropsThem) {
  test::TempDir dir;
  make_class_tree(dir.path() / "a", {{"x", 3}, {"y", 3}});
  make_class_tree(dir.path() / "b", {{"p", 3}, {"q", 3}});
  test::write_bytes(dir / "a/x/broken.png", "not a png");
  DataConfig cfg;
  cfg.modalities = {{"a", dir / "a", "", {}, ""}, {"b", dir / "b", "", {}, ""}};
  cfg.image_size = 16;
  cfg.val_fraction = 0.2;
  cfg.test_fraction = 0.25;
  auto d = prepare_data(cfg, 1);
  ImageCache cache({16, 3, 8, {}});
  std::vector<std::string> warnings;
  auto d2 = d;
  auto msg = error_of([&] { verify_prepared(d2, cache, cfg, warnings); });
  EXPECT_NE(msg.find("broken.png"), std::string::npos) << msg;
  cfg.skip_bad = true;
  verify_prepared(d, cache, cfg, warnings);
  ASSERT_FALSE(warnings.empty());
  EXPECT_EQ(warnings.back(), "1 bad images skipped");
  for (const auto& p : d.all_paths()) EXPECT_EQ(p.find("broken"), std::string::npos);
}

TEST(Metrics, EqualScikitLearn) {
  test::TempDir dir;
  torch::manual_seed(4);
  io::NamedTensors ts;
  nlohmann::json all = nlohmann::json::array();
  const std::pair<int, int> cases[] = {{50, 2}, {80, 3}, {120, 5}, {30, 4}};
  for (size_t i = 0; i < 4; ++i) {
    const auto [n, k] = cases[i];
    auto y = torch::randint(k, {n}, torch::kLong);
    // informative but imperfect probabilities, with ties
    auto logits = torch::randn({n, k}) + 1.5 * torch::one_hot(y, k).to(torch::kFloat);
    auto p = torch::softmax(logits, 1);
    if (i == 3) p = torch::round(p * 4) / 4 + 1e-3;  // many ties
    p = p / p.sum(1, true);
    ts.emplace_back("y" + std::to_string(i), y);
    ts.emplace_back("p" + std::to_string(i), p);
    auto m = evaluation::compute_metrics(y, p);
    std::vector<std::string> names;
    for (int c = 0; c < k; ++c) names.push_back(std::to_string(c));
    all.push_back(m.to_json(names));
  }
  io::save_safetensors(dir / "io.safetensors", ts);
  test::write_bytes(dir / "m.json", all.dump());
  auto r = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/metrics_oracle.py " +
                     (dir / "io.safetensors") + " " + (dir / "m.json"));
  std::cout << r.output;
  EXPECT_EQ(r.status, 0) << r.output;
  // hand-checked small case: one class never predicted
  auto m = evaluation::compute_metrics(torch::tensor({0, 0, 1, 2}), torch::tensor({{.9f, .1f, 0.f}, {.8f, .2f, 0.f}, {.6f, .4f, 0.f}, {.1f, .1f, .8f}}));
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 0.0);
  EXPECT_NEAR(m.per_class[0].precision, 2.0 / 3, 1e-12);
  EXPECT_EQ(m.confusion[1][0], 1);
}
