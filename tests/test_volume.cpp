// Volumes (data/volume.h, data/volume_slices.h): geometry against independent readers (nibabel,
// pydicom: tests/python/volume_oracle.py), slicing recipes, bad input, and a training run on
// volumes through the CLI with predict on a held-out volume.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include <zlib.h>

#include "drifa/data/sources.h"
#include "drifa/data/volume.h"
#include "drifa/data/volume_slices.h"
#include "drifa/error.h"
#include "drifa/serve/service.h"
#include "drifa/uncertainty/predict.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using namespace drifa;
using namespace drifa::data;

namespace {

const std::string kTemplates = "/usr/share/mricron/templates/";
const std::string kOracle = std::string(DRIFA_SOURCE_DIR) + "/tests/python/volume_oracle.py";

std::string oracle(const std::string& args) {
  auto r = test::run(std::string(DRIFA_PYTHON) + " " + kOracle + " " + args);
  EXPECT_EQ(r.status, 0) << r.output;
  return r.output;
}

struct Oracle {
  nlohmann::json info;
  std::vector<float> voxels;
};

Oracle load_oracle(const std::string& out) {
  Oracle o;
  o.info = test::read_json(out + ".json");
  const auto bytes = test::read_bytes(out + ".raw");
  o.voxels.resize(bytes.size() / sizeof(float));
  std::memcpy(o.voxels.data(), bytes.data(), o.voxels.size() * sizeof(float));
  return o;
}

// The largest |DRIFA - oracle| relative to max(1, |oracle|), after checking size, spacing and orientation.
double compare(const Volume& v, const Oracle& o, const std::string& what) {
  for (int a = 0; a < 3; ++a) {
    EXPECT_EQ(v.info.size[a], o.info["size"][a].get<int64_t>()) << what << " axis " << a;
    EXPECT_NEAR(v.info.spacing[a], o.info["spacing"][a].get<double>(), 1e-4) << what << " axis " << a;
  }
  EXPECT_EQ(v.info.file_orientation, o.info["orientation"].get<std::string>()) << what;
  EXPECT_EQ(v.voxels.size(), o.voxels.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < std::min(v.voxels.size(), o.voxels.size()); ++i)
    worst = std::max(worst, std::fabs(double(v.voxels[i]) - o.voxels[i]) / std::max(1.0, std::fabs(double(o.voxels[i]))));
  return worst;
}

constexpr int64_t kMax = settings::limits::kDefaultVolumeVoxels;

// A NIfTI-1 header (348 bytes + 4 extension bytes) for a dim0-D image of the given sizes.
std::string nifti1_header(std::vector<int16_t> dims, int16_t datatype = 4, int16_t bitpix = 16) {
  std::string h(352, '\0');
  auto put = [&](size_t off, auto v) { std::memcpy(h.data() + off, &v, sizeof v); };
  put(0, int32_t(348));
  put(40, int16_t(dims.size()));
  for (size_t i = 0; i < dims.size(); ++i) put(42 + 2 * i, dims[i]);
  put(70, datatype);
  put(72, bitpix);
  for (int i = 0; i < 4; ++i) put(76 + 4 * i, 1.0f);
  put(108, 352.0f);
  put(252, int16_t(0));  // qform_code
  put(254, int16_t(0));  // sform_code
  std::memcpy(h.data() + 344, "n+1\0", 4);
  return h;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

}  // namespace

TEST(Volume, NiftiVoxelsAndGeometryEqualNibabels) {
  test::TempDir dir;
  oracle("reorient " + kTemplates + "JHU-WhiteMatter-labels-2mm.nii.gz PIR " + (dir / "jhu_pir.nii.gz"));
  const std::vector<std::string> files = {kTemplates + "AICHAmc.nii.gz", kTemplates + "ch2.nii.gz", kTemplates + "inia19-t1-brain.nii.gz",
                                          dir / "jhu_pir.nii.gz"};
  for (const auto& f : files) {
    const auto out = dir / fs::path(f).filename().string();
    oracle("nifti " + f + " " + out);
    const Volume v = read_volume(f, kMax);
    const double worst = compare(v, load_oracle(out), f);
    EXPECT_LE(worst, 1e-6) << f;
    std::printf("[geometry] %-28s %-6s %4lld x %4lld x %4lld  %s -> LPS  worst relative difference %.2g\n",
                fs::path(f).filename().c_str(), "nifti", (long long)v.info.size[0], (long long)v.info.size[1],
                (long long)v.info.size[2], v.info.file_orientation.c_str(), worst);
  }
}

TEST(Volume, DicomSeriesOrderAndValuesEqualPydicoms) {
  test::TempDir dir;
  oracle("write-series " + kTemplates + "ch2.nii.gz " + (dir / "series"));
  oracle("series " + (dir / "series") + " " + (dir / "oracle"));
  const auto o = load_oracle(dir / "oracle");
  const Volume v = read_volume(dir / "series", kMax);
  // Order exactly: the files DRIFA stacks are the oracle's, position by position.
  ASSERT_EQ(v.info.files.size(), o.info["files"].size());
  for (size_t i = 0; i < v.info.files.size(); ++i)
    EXPECT_EQ(fs::path(v.info.files[i]).filename(), fs::path(o.info["files"][i].get<std::string>()).filename()) << "slice " << i;
  // The file names are shuffled and InstanceNumbers run against the positions: neither order is the answer.
  std::vector<std::string> by_name = v.info.files;
  std::sort(by_name.begin(), by_name.end());
  EXPECT_NE(by_name, v.info.files);
  const double worst = compare(v, o, "series");
  EXPECT_LE(worst, 1e-5);  // float32 of stored * slope + intercept, the slope varying per slice
  EXPECT_EQ(v.info.file_orientation, "AIL");
  EXPECT_EQ(v.info.patient_id, "P0042");
  std::printf("[geometry] %-28s %-6s %4lld x %4lld x %4lld  %s -> LPS  worst relative difference %.2g\n", "series of ch2 (sagittal)",
              "dicom", (long long)v.info.size[0], (long long)v.info.size[1], (long long)v.info.size[2], v.info.file_orientation.c_str(),
              worst);
}

TEST(Volume, BadSeriesAreRefusedNamingTheFiles) {
  test::TempDir dir;
  oracle("write-series " + kTemplates + "JHU-WhiteMatter-labels-2mm.nii.gz " + (dir / "s"));
  auto fresh = [&](const std::string& name) {
    fs::copy(dir / "s", dir / name, fs::copy_options::recursive);
    return dir / name;
  };
  auto error_of = [&](const std::string& folder) { return test::error_message<Error>([&] { read_volume(folder, kMax); }); };
  auto pyset = [&](const std::string& file, const std::string& statement) {
    auto r = test::run(std::string(DRIFA_PYTHON) + " -c \"import pydicom; d = pydicom.dcmread('" + file + "'); " + statement +
                       "; d.save_as('" + file + "')\"");
    ASSERT_EQ(r.status, 0) << r.output;
  };
  // A duplicated position: one slice copied under another name.
  auto dup = fresh("dup");
  fs::copy_file(dup + "/im003.dcm", dup + "/im003_copy.dcm");
  EXPECT_NE(error_of(dup).find("duplicated slice position"), std::string::npos) << error_of(dup);
  EXPECT_NE(error_of(dup).find("im003"), std::string::npos);
  // A missing slice: the gap is twice the others.
  auto gap = fresh("gap");
  const auto vol = read_volume(dir / "s", kMax);
  fs::remove(gap + "/" + fs::path(vol.info.files[5]).filename().string());
  EXPECT_NE(error_of(gap).find("uneven slice spacing"), std::string::npos) << error_of(gap);
  // No position at all.
  auto nopos = fresh("nopos");
  pyset(nopos + "/im001.dcm", "del d.ImagePositionPatient");
  EXPECT_NE(error_of(nopos).find("im001.dcm: no ImagePositionPatient"), std::string::npos) << error_of(nopos);
  // Mixed orientations and sizes.
  auto orient = fresh("orient");
  pyset(orient + "/im002.dcm", "d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]");
  EXPECT_NE(error_of(orient).find("mixed orientations"), std::string::npos) << error_of(orient);
  auto sizes = fresh("sizes");
  pyset(sizes + "/im002.dcm", "d.Rows = d.Rows - 1; d.PixelData = d.PixelData[:d.Rows * d.Columns * 2]");
  EXPECT_NE(error_of(sizes).find("mixed sizes"), std::string::npos) << error_of(sizes);
  // Two series in one folder: listed, and one can be chosen.
  auto two = fresh("two");
  pyset(two + "/im000.dcm", "d.SeriesInstanceUID = '1.2.3.4'");
  const auto msg = error_of(two);
  EXPECT_NE(msg.find("2 series in one folder"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1.2.3.4 (1 files)"), std::string::npos) << msg;
  EXPECT_EQ(read_volume(two, kMax, "1.2.3.4").info.size[0], 1);   // the chosen one-file series (sagittal: i across slices)
  // "largest" takes the other 19 files, which now miss the moved slice: a gap, named.
  EXPECT_NE(test::error_message<Error>([&] { read_volume(two, kMax, "largest"); }).find("uneven slice spacing"), std::string::npos);
  EXPECT_NE(msg.find("series = \"UID\" or \"largest\""), std::string::npos) << msg;
  // A localizer beside the scan (another series, another orientation): "largest" reads the scan.
  auto loc = fresh("loc");
  fs::copy_file(loc + "/im005.dcm", loc + "/localizer.dcm");
  pyset(loc + "/localizer.dcm", "d.SeriesInstanceUID = '1.2.3.5'; d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]");
  EXPECT_NE(error_of(loc).find("2 series in one folder"), std::string::npos);
  EXPECT_EQ(read_volume(loc, kMax, "largest").info.size[0], 20);
  // A file that is not DICOM, and a cut one.
  auto junk = fresh("junk");
  test::write_bytes(junk + "/notes.dcm", "not a dicom file at all");
  EXPECT_NE(error_of(junk).find("notes.dcm"), std::string::npos) << error_of(junk);
  auto cut = fresh("cut");
  auto bytes = test::read_bytes(cut + "/im004.dcm");
  test::write_bytes(cut + "/im004.dcm", bytes.substr(0, bytes.size() / 2));
  EXPECT_NE(error_of(cut).find("im004.dcm"), std::string::npos) << error_of(cut);
}

TEST(Volume, BadNiftiFilesAreRefusedBeforeAllocation) {
  test::TempDir dir;
  auto error_of = [&](const std::string& f) { return test::error_message<Error>([&] { read_volume(f, kMax); }); };
  // Not a NIfTI header.
  test::write_bytes(dir / "junk.nii", std::string(400, 'x'));
  EXPECT_NE(error_of(dir / "junk.nii").find("junk.nii: invalid NIfTI header: sizeof_hdr"), std::string::npos) << error_of(dir / "junk.nii");
  // An implausible size: refused from the header, before anything is allocated.
  const auto huge = nifti1_header({30000, 30000, 30000});
  test::write_bytes(dir / "huge.nii", huge + std::string(64, '\0'));
  EXPECT_NE(error_of(dir / "huge.nii").find("30000 x 30000 x 30000 voxels, allowed at most"), std::string::npos) << error_of(dir / "huge.nii");
  // A gzip bomb: a few kilobytes that claim (and inflate to) far more than the limit allows.
  write_gz(dir / "bomb.nii.gz", nifti1_header({2048, 2048, 2048}, 2, 8) + std::string(size_t(8) << 20, '\0'));
  EXPECT_LT(fs::file_size(dir / "bomb.nii.gz"), size_t(100000));
  EXPECT_NE(error_of(dir / "bomb.nii.gz").find("2048 x 2048 x 2048 voxels"), std::string::npos) << error_of(dir / "bomb.nii.gz");
  // Truncated: the header promises more data than the file holds (plain and gzip).
  const auto small = nifti1_header({10, 10, 10});
  test::write_bytes(dir / "cut.nii", small + std::string(500, '\0'));
  EXPECT_NE(error_of(dir / "cut.nii").find("truncated NIfTI"), std::string::npos) << error_of(dir / "cut.nii");
  write_gz(dir / "cut.nii.gz", small + std::string(500, '\0'));
  EXPECT_NE(error_of(dir / "cut.nii.gz").find("cut.nii.gz"), std::string::npos) << error_of(dir / "cut.nii.gz");
  // Bad fields: a 4-D series of volumes, a complex datatype, a zero spacing.
  test::write_bytes(dir / "4d.nii", nifti1_header({4, 4, 4, 3}) + std::string(4 * 4 * 4 * 3 * 2, '\0'));
  EXPECT_NE(error_of(dir / "4d.nii").find("DRIFA reads 3-D volumes"), std::string::npos) << error_of(dir / "4d.nii");
  test::write_bytes(dir / "cx.nii", nifti1_header({4, 4, 4}, 32, 64) + std::string(4 * 4 * 4 * 8, '\0'));
  EXPECT_NE(error_of(dir / "cx.nii").find("not a real scalar type"), std::string::npos) << error_of(dir / "cx.nii");
  auto zero = nifti1_header({4, 4, 4});
  const float z = 0;
  std::memcpy(zero.data() + 80, &z, 4);
  test::write_bytes(dir / "zero.nii", zero + std::string(4 * 4 * 4 * 2, '\0'));
  EXPECT_NE(error_of(dir / "zero.nii").find("pixdim[1]"), std::string::npos) << error_of(dir / "zero.nii");
  // A NaN in a used sform: refused from the header (ITK would abort in its SVD).
  auto nan_sform = nifti1_header({4, 4, 4});
  const int16_t one = 1;
  const float nan = std::nanf("");
  std::memcpy(nan_sform.data() + 254, &one, 2);
  std::memcpy(nan_sform.data() + 280 + 4 * 5, &nan, 4);
  test::write_bytes(dir / "nan.nii", nan_sform + std::string(4 * 4 * 4 * 2, '\0'));
  EXPECT_NE(error_of(dir / "nan.nii").find("sform (srow_x/y/z) holds NaN"), std::string::npos) << error_of(dir / "nan.nii");
  // A valid one reads, with the header's sizes.
  test::write_bytes(dir / "ok.nii", small + std::string(10 * 10 * 10 * 2, '\0'));
  EXPECT_EQ(read_volume(dir / "ok.nii", kMax).voxels.size(), 1000u);
  EXPECT_NE(error_of(dir / "missing.nii.gz").find("missing.nii.gz: no such file"), std::string::npos);
}

TEST(Volume, RecipesSelectOrientStackAndWindowSlices) {
  Volume v;
  v.info.size = {4, 3, 5};
  v.info.spacing = {1, 1, 1};
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t i = 0; i < 4; ++i) v.voxels.push_back(float(100 * k + 10 * j + i));
  VolumeOptions o;
  EXPECT_EQ(select_slices(v.info, o, nullptr, "v"), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  o.slices = "every";
  o.every = 2;
  EXPECT_EQ(select_slices(v.info, o, nullptr, "v"), (std::vector<int64_t>{0, 2, 4}));
  o.slices = "central";
  o.central = 3;
  EXPECT_EQ(select_slices(v.info, o, nullptr, "v"), (std::vector<int64_t>{1, 2, 3}));
  o.axis = "sagittal";
  o.central = 2;
  EXPECT_EQ(select_slices(v.info, o, nullptr, "v"), (std::vector<int64_t>{1, 2}));
  Volume mask = v;
  std::fill(mask.voxels.begin(), mask.voxels.end(), 0.0f);
  mask.voxels[size_t(1 + 4 * (2 + 3 * 3))] = 1;  // voxel (1, 2, 3)
  o = {};
  o.slices = "mask";
  EXPECT_EQ(select_slices(v.info, o, &mask, "v"), (std::vector<int64_t>{3}));
  o.axis = "coronal";
  EXPECT_EQ(select_slices(v.info, o, &mask, "v"), (std::vector<int64_t>{2}));

  // Axial: rows are j (anterior first), columns i (the patient's right first); padded to a square.
  VolumeOptions ax;
  cv::Mat a = extract_slice(v, ax, 2, "v");
  ASSERT_EQ(a.rows, 4);
  ASSERT_EQ(a.cols, 4);
  EXPECT_EQ(a.at<float>(0, 0), 200.0f);            // 3 rows in 4: offset (4 - 3) / 2 = 0, the padding below
  EXPECT_EQ(a.at<float>(1, 3), 200 + 10 * 1 + 3);  // row 1 = j 1, column 3 = i 3
  EXPECT_EQ(a.at<float>(3, 0), 0.0f);
  // Coronal: superior at the top.
  VolumeOptions co;
  co.axis = "coronal";
  cv::Mat c = extract_slice(v, co, 1, "v");
  ASSERT_EQ(c.rows, 5);
  EXPECT_EQ(c.at<float>(0, 0), 400 + 10 + 0);  // 5 x 4 padded to 5 x 5; top row = k 4, column 0 = i 0
  EXPECT_EQ(c.at<float>(0, 1), 400 + 10 + 1);
  EXPECT_EQ(c.at<float>(4, 3), 0 + 10 + 3);     // bottom row = k 0
  EXPECT_EQ(c.at<float>(0, 4), 0.0f);           // the padding column
  // Stack 3: channels are slices k-1, k, k+1; at the edge the end slice repeats.
  VolumeOptions st;
  st.stack = 3;
  cv::Mat s0 = extract_slice(v, st, 0, "v");
  ASSERT_EQ(s0.channels(), 3);
  const auto px = s0.at<cv::Vec3f>(1, 3);
  EXPECT_EQ(px[0], 0 + 10 * 1 + 3);    // k = -1 -> 0
  EXPECT_EQ(px[1], 0 + 10 * 1 + 3);    // k = 0
  EXPECT_EQ(px[2], 100 + 10 * 1 + 3);  // k = 1
  EXPECT_THROW(extract_slice(v, st, 5, "v"), Error);
  // In-plane spacing: 2 mm columns, 1 mm rows -> square 1 mm pixels, twice as many columns.
  Volume an = v;
  an.info.spacing = {2, 1, 1};
  cv::Mat wide = extract_slice(an, ax, 0, "v");
  EXPECT_EQ(wide.cols, 8);
  EXPECT_EQ(wide.rows, 8);

  // Windows: brain 80/40 maps 0 -> 0 and 80 -> 1; lung -600/1500 maps -1350 -> 0.
  Volume ct;
  ct.info.size = {4, 1, 1};
  ct.voxels = {-1350, 0, 40, 80};
  VolumeOptions w;
  w.intensity = "brain";
  Volume b = ct;
  normalise_intensity(b, w);
  EXPECT_FLOAT_EQ(b.voxels[0], 0);
  EXPECT_FLOAT_EQ(b.voxels[1], 0);
  EXPECT_FLOAT_EQ(b.voxels[2], 0.5);
  EXPECT_FLOAT_EQ(b.voxels[3], 1);
  w.intensity = "lung";
  Volume l = ct;
  normalise_intensity(l, w);
  EXPECT_FLOAT_EQ(l.voxels[0], 0);
  EXPECT_NEAR(l.voxels[1], (0 + 1350) / 1500.0, 1e-6);
  w.intensity = "window";
  w.window_center = 40;
  w.window_width = 40;
  Volume cw = ct;
  normalise_intensity(cw, w);
  EXPECT_FLOAT_EQ(cw.voxels[2], 0.5);
  EXPECT_FLOAT_EQ(cw.voxels[1], 0);
  w.intensity = "percentile";
  w.percentile_lo = 0;
  w.percentile_hi = 100;
  Volume pc = ct;
  normalise_intensity(pc, w);
  EXPECT_FLOAT_EQ(pc.voxels[0], 0);
  EXPECT_FLOAT_EQ(pc.voxels[3], 1);

  // References.
  EXPECT_EQ(slice_ref("/d/a#b.nii.gz", "ct", 42), "/d/a#b.nii.gz#ct:42");
  auto r = parse_slice_ref("/d/a#b.nii.gz#ct:42");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->volume, "/d/a#b.nii.gz");
  EXPECT_EQ(r->modality, "ct");
  EXPECT_EQ(r->index, 42);
  EXPECT_FALSE(parse_slice_ref("/d/img.png"));
  EXPECT_FALSE(parse_slice_ref("/d/x#y/z:1"));
}

TEST(Volume, RecipeSettingsAreValidated) {
  auto error_of = [](const std::string& extra, int channels = 3) {
    auto j = nlohmann::json::parse("{\"channels\": " + std::to_string(channels) +
                                   ", \"modality\": [{\"name\": \"ct\", \"train\": \"/x\", \"kind\": \"volume\"" + extra +
                                   "}, {\"name\": \"b\", \"train\": \"/y\"}]}");
    return test::error_message<Error>([&] { DataConfig::from_json(settings::Table(j, "run.toml", "data"), "/tmp"); });
  };
  EXPECT_NE(error_of(", \"axis\": \"oblique\"").find("axis: found"), std::string::npos);
  EXPECT_NE(error_of(", \"intensity\": \"liver\"").find("allowed percentile, minmax, window, brain, soft_tissue, lung, bone"), std::string::npos)
      << error_of(", \"intensity\": \"liver\"");
  EXPECT_NE(error_of(", \"stack\": 3", 1).find("set data.channels = 3"), std::string::npos);
  EXPECT_NE(error_of(", \"stack\": 2").find("allowed 1, 3 or 5"), std::string::npos);
  EXPECT_NE(error_of(", \"slices\": \"mask\"").find("needs mask_folder"), std::string::npos);
  EXPECT_NE(error_of(", \"percentiles\": [99, 1]").find("lo < hi"), std::string::npos);
  EXPECT_NE(error_of(", \"intensity\": \"window\"").find("needs window_center and window_width"), std::string::npos);
  // Volume keys on an image modality are unknown keys.
  auto j = nlohmann::json::parse(R"({"modality": [{"name": "a", "train": "/x", "stack": 3}, {"name": "b", "train": "/y"}]})");
  const auto msg = test::error_message<Error>([&] { DataConfig::from_json(settings::Table(j, "run.toml", "data"), "/tmp"); });
  EXPECT_NE(msg.find("stack: unknown key"), std::string::npos) << msg;
}

// Volumes from a real brain template through train (slices grouped by volume) and predict on a
// held-out volume, with the per-slice curve and one answer per volume.
TEST(VolumeCli, TrainOnVolumesAndPredictAHeldOutVolume) {
  test::TempDir dir;
  oracle("make-dataset " + kTemplates + "ch2bet.nii.gz " + (dir / "mri") + " 6 1 24 6");
  auto r = test::run(test::cli() + " synth -q -o " + (dir / "img") + " --size 32 --train-per-class 6 --test-per-class 2");
  ASSERT_EQ(r.status, 0) << r.output;
  // One held-out volume, kept outside the training folders.
  fs::rename(dir / "mri/superior/v000.nii.gz", dir / "held_out.nii.gz");
  test::write_bytes(dir / "run.toml",
                    "seed = 5\n[model]\nwidths = \"tiny\"\nbn_momentum = 0.1\n[data]\nimage_size = 16\nchannels = 3\nworkers = 2\n"
                    "[[data.modality]]\nname = \"mri\"\ntrain = \"" + (dir / "mri") + "\"\nkind = \"volume\"\nslices = \"central\"\n"
                    "central = 4\nstack = 3\nintensity = \"percentile\"\n"
                    "[[data.modality]]\nname = \"derm\"\ntrain = \"" + (dir / "img/derm/train") + "\"\n"
                    "[train]\nepochs = 2\nbatch_size = 8\n");
  r = test::run(test::cli() + " train -q -c " + (dir / "run.toml") + " -o " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  // Every slice carries its volume's group, and no volume lies in two parts.
  const auto split = test::read_json(dir / "run/split.json");
  std::map<std::string, std::set<std::string>> parts_of;
  size_t slices = 0;
  for (const char* part : {"train", "val", "test"})
    for (const auto& rec : split[part][0]) {
      const auto path = rec[0].get<std::string>();
      ASSERT_EQ(rec.size(), 3u) << rec.dump();
      const auto group = rec[2].get<std::string>();
      EXPECT_EQ(path.rfind(group + "#mri:", 0), 0u) << path;
      parts_of[group].insert(part);
      ++slices;
    }
  EXPECT_EQ(parts_of.size(), 11u);  // 12 volumes, one held out
  EXPECT_EQ(slices, 11u * 4u);
  for (const auto& [g, parts] : parts_of) EXPECT_EQ(parts.size(), 1u) << g;
  // predict on the held-out volume alone: its four central slices, a curve, one answer.
  r = test::run(test::cli() + " predict " + (dir / "run") + " -T 0 -i mri=" + (dir / "held_out.nii.gz") + " -o " + (dir / "p.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto p = test::read_json(dir / "p.json");
  ASSERT_EQ(p["volumes"].size(), 1u) << p.dump(1);
  const auto& vol = p["volumes"][0];
  EXPECT_EQ(vol["slices"], nlohmann::json({1, 2, 3, 4}));
  EXPECT_EQ(p["cases"].size(), 4u);
  const auto& curve = vol["curve"]["mri"];
  ASSERT_EQ(curve["superior"].size(), 4u);
  double mean = 0;
  for (size_t s = 0; s < 4; ++s) {
    const double sup = curve["superior"][s].get<double>(), inf = curve["inferior"][s].get<double>();
    EXPECT_NEAR(sup + inf, 1.0, 1e-5);
    EXPECT_NEAR(sup, p["cases"][s]["tasks"]["mri"]["probabilities"]["superior"].get<double>(), 1e-12);
    mean += sup / 4;
  }
  EXPECT_NEAR(vol["tasks"]["mri"]["probabilities"]["superior"].get<double>(), mean, 1e-9);
  // A bare model file carries the recipe (drifa.volumes) and predicts the same.
  r = test::run(test::cli() + " predict " + (dir / "run/best.safetensors") + " --partners-from " + (dir / "run") + " -T 0 -i mri=" +
                (dir / "held_out.nii.gz") + " -o " + (dir / "p2.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto p2 = test::read_json(dir / "p2.json");
  EXPECT_EQ(p2["volumes"][0]["slices"], vol["slices"]);
  EXPECT_NEAR(p2["volumes"][0]["tasks"]["mri"]["probabilities"]["superior"].get<double>(), mean, 1e-5);
  // serve: the same volume as a NIfTI upload gives the same answer (deterministic passes).
  {
    serve::ServiceOptions so;
    so.passes = 0;
    serve::Service svc(uncertainty::open_predictor(dir / "run", torch::kCPU), so);
    serve::PredictRequest req;
    req.files.push_back({"mri", "held_out.nii.gz", test::read_bytes(dir / "held_out.nii.gz")});
    const auto a = svc.predict(req);
    ASSERT_EQ(a["volumes"].size(), 1u) << a.dump(1);
    EXPECT_EQ(a["volumes"][0]["slices"], vol["slices"]);
    EXPECT_EQ(a["cases"].size(), 4u);
    EXPECT_NEAR(a["volumes"][0]["tasks"]["mri"]["probabilities"]["superior"].get<double>(), mean, 1e-5);
    serve::PredictRequest bad;
    bad.files.push_back({"mri", "scan.nii.gz", std::string("\x1f\x8bnot really gzip", 18)});
    try {
      svc.predict(bad);
      ADD_FAILURE() << "a corrupt upload was accepted";
    } catch (const serve::RequestError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_NE(std::string(e.what()).find("scan.nii.gz"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("drifa-serve-"), std::string::npos) << e.what();
    }
  }
  // Grad-CAM on the volume's slices, and the report's per-slice curves of the test volumes.
  r = test::run(test::cli() + " predict " + (dir / "run") + " -T 0 -i mri=" + (dir / "held_out.nii.gz") + " --gradcam " + (dir / "cam") +
                " -o " + (dir / "p3.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  size_t overlays = 0;
  for (const auto& e : fs::directory_iterator(dir / "cam")) overlays += e.path().extension() == ".png" && fs::file_size(e.path()) > 100;
  EXPECT_GE(overlays, 4u);
  r = test::run(test::cli() + " report " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto html = test::read_bytes(dir / "run/report.html");
  EXPECT_NE(html.find("Volumes: probability along the slice axis"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "run/plots/volume_curve_0.png"));
  // A broken volume is a clear error naming it, and exits non-zero.
  test::write_bytes(dir / "bad.nii.gz", "garbage");
  r = test::run(test::cli() + " predict " + (dir / "run") + " -T 0 -i mri=" + (dir / "bad.nii.gz"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("bad.nii.gz"), std::string::npos) << r.output;
}

// stack = 5: five adjacent slices as five input channels, through augmentation and training.
TEST(VolumeCli, FiveSliceStacksTrainWithAugmentation) {
  test::TempDir dir;
  oracle("make-dataset " + kTemplates + "ch2bet.nii.gz " + (dir / "a") + " 3 3 24 6");
  oracle("make-dataset " + kTemplates + "inia19-t1-brain.nii.gz " + (dir / "b") + " 3 4 24 6");
  std::string mods;
  for (const char* m : {"a", "b"})
    mods += std::string("[[data.modality]]\nname = \"") + m + "\"\ntrain = \"" + (dir / m) +
            "\"\nkind = \"volume\"\nstack = 5\nslices = \"every\"\nevery = 2\nintensity = \"minmax\"\n";
  test::write_bytes(dir / "run.toml", "seed = 2\n[model]\nwidths = \"tiny\"\n[data]\nimage_size = 16\nchannels = 5\n" + mods +
                                          "[augment]\nrotation = 15\ntranslate = 2\nbrightness = [0.9, 1.1]\n[train]\nepochs = 1\nbatch_size = 4\n");
  auto r = test::run(test::cli() + " train -q -c " + (dir / "run.toml") + " -o " + (dir / "run"));
  ASSERT_EQ(r.status, 0) << r.output;
  // The model takes five channels (safetensors: 8-byte header length, JSON header, drifa.config metadata).
  const auto bytes = test::read_bytes(dir / "run/best.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(nlohmann::json::parse(header["__metadata__"]["drifa.config"].get<std::string>())["in_channels"], 5);
  EXPECT_TRUE(header["__metadata__"].contains("drifa.volumes"));
  const auto split = test::read_json(dir / "run/split.json");
  EXPECT_EQ(split["train"][0].size() + split["val"][0].size() + split["test"][0].size(), 6u * 3u);  // 6 volumes x slices 0, 2, 4
}

// Several volumes of one patient: a manifest column, or the series' PatientID tag, names the
// patient, and no patient's slices land in two parts.
TEST(Volume, PatientsGroupTheirVolumesFromAManifestOrThePatientIDTag) {
  test::TempDir dir;
  oracle("write-series " + kTemplates + "JHU-WhiteMatter-labels-2mm.nii.gz " + (dir / "proto"));
  // Six series in class folders, four patients: P1 (two in a), P2 (a), P3 (two in b), P4 (b).
  const std::vector<std::pair<std::string, std::string>> series = {{"data/a/s1", "P1"}, {"data/a/s2", "P1"}, {"data/a/s3", "P2"},
                                                                   {"data/b/s4", "P3"}, {"data/b/s5", "P3"}, {"data/b/s6", "P4"}};
  std::string csv = "path,label,patient\n";
  for (const auto& [rel, patient] : series) {
    fs::create_directories(dir / rel);
    fs::copy(dir / "proto", dir / rel, fs::copy_options::recursive);
    auto r = test::run(std::string(DRIFA_PYTHON) + " -c \"import pydicom, glob\nfor f in glob.glob('" + (dir / rel) +
                       "/*.dcm'):\n d = pydicom.dcmread(f); d.PatientID = '" + patient + "'; d.save_as(f)\"");
    ASSERT_EQ(r.status, 0) << r.output;
    csv += rel + "," + rel.substr(5, 1) + "," + patient + "\n";
  }
  test::write_bytes(dir / "volumes.csv", csv);
  auto prepare = [&](const std::string& source_keys) {
    auto j = nlohmann::json::parse("{\"modality\": [{\"name\": \"mri\", \"kind\": \"volume\", \"slices\": \"central\", \"central\": 3, " +
                                   source_keys + "}, {\"name\": \"mri2\", \"kind\": \"volume\", \"train\": \"" + (dir / "data") + "\"}]}");
    return prepare_data(DataConfig::from_json(settings::Table(j, "run.toml", "data"), dir.path().string()), 11);
  };
  for (const std::string keys : {"\"manifest\": \"" + (dir / "volumes.csv") + "\", \"group_column\": \"patient\"",
                                 "\"train\": \"" + (dir / "data") + "\", \"group_patient_id\": true"}) {
    const auto d = prepare(keys);
    std::map<std::string, std::set<std::string>> parts;
    size_t slices = 0;
    for (const auto& part : d.parts())
      for (const auto& rec : part.sets[0].records) {
        parts[rec.group].insert(part.name);
        ++slices;
      }
    EXPECT_EQ(slices, 6u * 3u) << keys;
    EXPECT_EQ(parts.size(), 4u) << keys;  // four patients, not six volumes
    for (const auto& [g, p] : parts) EXPECT_EQ(p.size(), 1u) << g << " in two parts (" << keys << ")";
  }
}
