#include "drifa/data/volume.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gdcmReader.h>
#include <nlohmann/json.hpp>
// Debian's ITK 5.2 generated its compiler detection for GCC only and stops at "Unsupported
// compiler" under clang (the sanitizer and fuzz build). Clang implements the GNU dialect ITK
// asks about: let the detection header see the GCC that built ITK, once, then restore the macros.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wbuiltin-macro-redefined"
#pragma push_macro("__clang__")
#pragma push_macro("__GNUC__")
#pragma push_macro("__GNUC_MINOR__")
#undef __clang__
#undef __GNUC__
#undef __GNUC_MINOR__
#define __GNUC__ 12
#define __GNUC_MINOR__ 2
#include <itk_compiler_detection.h>
#pragma pop_macro("__GNUC_MINOR__")
#pragma pop_macro("__GNUC__")
#pragma pop_macro("__clang__")
#pragma clang diagnostic pop
#endif
#include <itkGDCMImageIO.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageSeriesReader.h>
#include <itkNiftiImageIO.h>
#include <itkOrientImageFilter.h>

#include "drifa/data/dicom_structure.h"
#include "drifa/data/image.h"
#include "drifa/data/isolated.h"
#include "drifa/error.h"
#include "drifa/io/settings.h"

namespace fs = std::filesystem;

namespace drifa::data {

namespace {

using Image3 = itk::Image<float, 3>;
using Direction = std::array<std::array<double, 3>, 3>;  // [row][column]; column c = axis c's unit vector (LPS)

bool ends_with(std::string s, const std::string& suffix) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Which canonical (LPS) axis each file axis lies closest to, and whether it runs backwards.
struct Mapping {
  std::array<int, 3> axis{};   // file axis c -> canonical axis
  std::array<bool, 3> flip{};  // file axis c runs toward R, A or I
  std::string code;            // nibabel's axis codes of the file, e.g. "RAS"
};

Mapping closest_axes(const Direction& d, const std::string& source) {
  Mapping m;
  std::array<bool, 3> used{};
  for (int c = 0; c < 3; ++c) {
    int best = 0;
    for (int r = 1; r < 3; ++r)
      if (std::fabs(d[r][c]) > std::fabs(d[best][c])) best = r;
    if (!std::isfinite(d[best][c]) || std::fabs(d[best][c]) < 1e-6 || used[best])
      throw Error(source + ": orientation: the direction cosines do not name three distinct axes (degenerate or NaN)");
    used[best] = true;
    m.axis[c] = best;
    m.flip[c] = d[best][c] < 0;
    static const char* pos = "LPS";
    static const char* neg = "RAI";
    m.code += m.flip[c] ? neg[best] : pos[best];
  }
  return m;
}

void fill_canonical(VolumeInfo& info, const Mapping& m, const std::array<int64_t, 3>& size, const std::array<double, 3>& spacing) {
  for (int c = 0; c < 3; ++c) {
    info.size[m.axis[c]] = size[c];
    info.spacing[m.axis[c]] = spacing[c];
  }
  info.file_orientation = m.code;
}

void check_voxels(const std::array<int64_t, 3>& size, int64_t max_voxels, const std::string& source) {
  long double n = 1;
  for (auto s : size) n *= static_cast<long double>(s);
  if (n > static_cast<long double>(max_voxels))
    throw Error(source + ": " + std::to_string(size[0]) + " x " + std::to_string(size[1]) + " x " + std::to_string(size[2]) +
                " voxels, allowed at most " + std::to_string(max_voxels) + " (data.max_volume_voxels)");
}

// ---- NIfTI ------------------------------------------------------------------

template <typename T>
T read_at(const std::string& h, size_t off, bool swap) {
  T v;
  std::memcpy(&v, h.data() + off, sizeof(T));
  if (swap) {
    char* p = reinterpret_cast<char*>(&v);
    std::reverse(p, p + sizeof(T));
  }
  return v;
}

std::string nifti_head(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) throw Error(path + ": cannot open");
  std::string h(540, '\0');
  const int n = gzread(f, h.data(), static_cast<unsigned>(h.size()));
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string what = err < 0 && msg ? msg : "";
  gzclose(f);
  if (n < 0) throw Error(path + ": not a readable NIfTI file (" + (what.empty() ? "gzip error" : what) + ")");
  h.resize(static_cast<size_t>(n));
  return h;
}

int64_t bytes_of(int datatype) {
  switch (datatype) {
    case 2: case 256: return 1;     // uint8, int8
    case 4: case 512: return 2;     // int16, uint16
    case 8: case 768: case 16: return 4;  // int32, uint32, float32
    case 64: case 1024: case 1280: return 8;  // float64, int64, uint64
    default: return 0;
  }
}

// ---- DICOM series -----------------------------------------------------------

struct SliceTags {
  std::string file, series, patient;
  bool has_position = false, has_orientation = false;
  std::array<double, 3> position{};
  std::array<double, 6> orientation{};
  std::array<double, 2> pixel_spacing{1, 1};
  int rows = 0, cols = 0;
};

std::string tag_string(const gdcm::DataSet& ds, uint16_t g, uint16_t e) {
  const gdcm::Tag t(g, e);
  if (!ds.FindDataElement(t)) return "";
  const auto* bv = ds.GetDataElement(t).GetByteValue();
  if (!bv) return "";
  std::string s(bv->GetPointer(), bv->GetLength());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

std::vector<double> tag_numbers(const gdcm::DataSet& ds, uint16_t g, uint16_t e) {
  std::string s = tag_string(ds, g, e);
  for (auto& c : s)
    if (c == '\\') c = ' ';
  std::istringstream in(s);
  std::vector<double> v;
  double x;
  while (in >> x) v.push_back(x);
  return v;
}

int tag_us(const gdcm::DataSet& ds, uint16_t g, uint16_t e, bool big_endian) {
  const gdcm::Tag t(g, e);
  if (!ds.FindDataElement(t)) return 0;
  const auto* bv = ds.GetDataElement(t).GetByteValue();
  if (!bv || bv->GetLength() < 2) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bv->GetPointer());
  return big_endian ? (p[0] << 8 | p[1]) : (p[1] << 8 | p[0]);
}

SliceTags read_slice_tags(const std::string& file) {
  const std::string bytes = read_image_file(file);
  const auto structure = check_dicom_structure(bytes, file);  // GDCM only sees structurally whole files
  std::istringstream stream(bytes);
  gdcm::Reader reader;
  reader.SetStream(stream);
  if (!reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010))) throw Error(file + ": not a readable DICOM file");
  const auto& ds = reader.GetFile().GetDataSet();
  SliceTags s;
  s.file = file;
  s.series = tag_string(ds, 0x0020, 0x000e);
  s.patient = tag_string(ds, 0x0010, 0x0020);
  const bool be = structure.transfer_syntax == "1.2.840.10008.1.2.2";
  s.rows = tag_us(ds, 0x0028, 0x0010, be);
  s.cols = tag_us(ds, 0x0028, 0x0011, be);
  if (structure.pixel_data_length < 0) throw Error(file + ": DICOM file without pixel data");
  if (s.rows <= 0 || s.cols <= 0) throw Error(file + ": DICOM Rows/Columns missing or zero");
  auto ipp = tag_numbers(ds, 0x0020, 0x0032);
  auto iop = tag_numbers(ds, 0x0020, 0x0037);
  auto ps = tag_numbers(ds, 0x0028, 0x0030);
  if (ipp.size() == 3 && std::all_of(ipp.begin(), ipp.end(), [](double x) { return std::isfinite(x); })) {
    s.has_position = true;
    std::copy(ipp.begin(), ipp.end(), s.position.begin());
  }
  if (iop.size() == 6 && std::all_of(iop.begin(), iop.end(), [](double x) { return std::isfinite(x); })) {
    s.has_orientation = true;
    std::copy(iop.begin(), iop.end(), s.orientation.begin());
  }
  if (ps.size() == 2 && ps[0] > 0 && ps[1] > 0 && std::isfinite(ps[0]) && std::isfinite(ps[1])) s.pixel_spacing = {ps[0], ps[1]};
  return s;
}

std::array<double, 3> cross(const std::array<double, 3>& a, const std::array<double, 3>& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

std::string show_numbers(const double* v, int n) {
  std::ostringstream o;
  for (int i = 0; i < n; ++i) o << (i ? "\\" : "") << v[i];
  return o.str();
}

struct Series {
  std::vector<SliceTags> slices;  // ordered along the normal
  Direction direction{};
  std::array<double, 3> spacing{};
};

// Reads every file's header in the folder, picks the series, checks it and orders its slices
// along the slice normal by ImagePositionPatient (never by InstanceNumber or file name).
Series scan_series(const std::string& dir, const std::string& want, int64_t max_voxels) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || name == "DICOMDIR") continue;
    if (it->is_regular_file(ec)) files.push_back(it->path().string());
  }
  if (ec) throw Error(dir + ": cannot list the series folder (" + ec.message() + ")");
  if (files.empty()) throw Error(dir + ": no DICOM files in the series folder");
  std::sort(files.begin(), files.end());
  std::map<std::string, std::vector<SliceTags>> by_series;
  for (const auto& f : files) {
    auto t = read_slice_tags(f);
    by_series[t.series].push_back(std::move(t));
  }
  std::vector<SliceTags> chosen;
  if (want == "largest") {  // the most files; a tie goes to the smallest UID (map order)
    for (const auto& [uid, v] : by_series)
      if (v.size() > chosen.size()) chosen = v;
  } else if (!want.empty()) {
    auto it = by_series.find(want);
    if (it == by_series.end()) {
      std::string list;
      for (const auto& [uid, v] : by_series) list += (list.empty() ? "" : ", ") + uid + " (" + std::to_string(v.size()) + " files)";
      throw Error(dir + ": no series " + want + " here; found " + list);
    }
    chosen = it->second;
  } else if (by_series.size() > 1) {
    std::string list;
    for (const auto& [uid, v] : by_series) list += (list.empty() ? "" : ", ") + (uid.empty() ? "(no SeriesInstanceUID)" : uid) + " (" + std::to_string(v.size()) + " files)";
    throw Error(dir + ": " + std::to_string(by_series.size()) + " series in one folder: " + list +
                "; choose one with the modality's series = \"UID\" or \"largest\", or give each its own folder");
  } else {
    chosen = by_series.begin()->second;
  }
  const auto& first = chosen.front();
  for (const auto& s : chosen) {
    if (!s.has_position) throw Error(s.file + ": no ImagePositionPatient (0020,0032): slices cannot be ordered by position");
    if (!s.has_orientation) throw Error(s.file + ": no ImageOrientationPatient (0020,0037)");
    if (s.rows != first.rows || s.cols != first.cols)
      throw Error(dir + ": mixed sizes in one series: " + s.file + " is " + std::to_string(s.rows) + " x " + std::to_string(s.cols) +
                  ", " + first.file + " is " + std::to_string(first.rows) + " x " + std::to_string(first.cols));
    for (int i = 0; i < 6; ++i)
      if (std::fabs(s.orientation[i] - first.orientation[i]) > 1e-4)
        throw Error(dir + ": mixed orientations in one series: " + s.file + " has ImageOrientationPatient " +
                    show_numbers(s.orientation.data(), 6) + ", " + first.file + " has " + show_numbers(first.orientation.data(), 6));
  }
  const std::array<double, 3> row{first.orientation[0], first.orientation[1], first.orientation[2]};
  const std::array<double, 3> col{first.orientation[3], first.orientation[4], first.orientation[5]};
  const auto normal = cross(row, col);
  auto along = [&](const SliceTags& s) { return s.position[0] * normal[0] + s.position[1] * normal[1] + s.position[2] * normal[2]; };
  std::stable_sort(chosen.begin(), chosen.end(), [&](const SliceTags& a, const SliceTags& b) { return along(a) < along(b); });
  std::vector<double> gaps;
  for (size_t i = 1; i < chosen.size(); ++i) {
    const double g = along(chosen[i]) - along(chosen[i - 1]);
    if (g < 1e-3)
      throw Error(dir + ": duplicated slice position " + show_numbers(chosen[i].position.data(), 3) + " in " + chosen[i - 1].file +
                  " and " + chosen[i].file);
    gaps.push_back(g);
  }
  double gap = 1.0;
  if (!gaps.empty()) {
    auto sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    gap = sorted[sorted.size() / 2];
    for (size_t i = 0; i < gaps.size(); ++i)
      if (std::fabs(gaps[i] - gap) > 0.01 * gap + 1e-3)
        throw Error(dir + ": uneven slice spacing: " + std::to_string(gaps[i]) + " mm between " + chosen[i].file + " and " +
                    chosen[i + 1].file + ", " + std::to_string(gap) + " mm elsewhere (a missing or extra slice?)");
  }
  Series out;
  for (int r = 0; r < 3; ++r) {
    out.direction[r][0] = row[r];
    out.direction[r][1] = col[r];
    out.direction[r][2] = normal[r];
  }
  // PixelSpacing is (between rows, between columns): the column step is along the row direction.
  out.spacing = {first.pixel_spacing[1], first.pixel_spacing[0], gap};
  check_voxels({first.cols, first.rows, int64_t(chosen.size())}, max_voxels, dir);
  out.slices = std::move(chosen);
  return out;
}

// scan_series in a child process: GDCM asserts inside its header reader on some malformed meta
// groups even after the structure walk (found by fuzz_dicom_series). The series comes back as JSON.
Series scan_series_isolated(const std::string& dir, const std::string& want, int64_t max_voxels) {
  const std::string got = run_isolated(
      [&] {
        const Series s = scan_series(dir, want, max_voxels);
        nlohmann::json j{{"direction", s.direction}, {"spacing", s.spacing}, {"slices", nlohmann::json::array()}};
        for (const auto& t : s.slices)
          j["slices"].push_back({{"file", t.file}, {"series", t.series}, {"patient", t.patient}, {"rows", t.rows}, {"cols", t.cols}});
        return j.dump();
      },
      dir + ": malformed DICOM series: the DICOM header reader (GDCM)");
  const auto j = nlohmann::json::parse(got);
  Series s;
  s.direction = j["direction"].get<Direction>();
  s.spacing = j["spacing"].get<std::array<double, 3>>();
  for (const auto& t : j["slices"]) {
    SliceTags st;
    st.file = t["file"];
    st.series = t["series"];
    st.patient = t["patient"];
    st.rows = t["rows"];
    st.cols = t["cols"];
    s.slices.push_back(std::move(st));
  }
  return s;
}

Direction direction_of(const Image3::DirectionType& d) {
  Direction o{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) o[r][c] = d[r][c];
  return o;
}

Volume to_canonical(Image3::Pointer img, VolumeInfo info, const std::string& source) {
  const Mapping m = closest_axes(direction_of(img->GetDirection()), source);
  auto orient = itk::OrientImageFilter<Image3, Image3>::New();
  orient->UseImageDirectionOn();
  orient->SetDesiredCoordinateOrientation(itk::SpatialOrientation::ITK_COORDINATE_ORIENTATION_RAI);  // identity in LPS
  orient->SetInput(img);
  orient->Update();
  Image3::Pointer out = orient->GetOutput();
  const auto region = out->GetLargestPossibleRegion().GetSize();
  const auto sp = out->GetSpacing();
  Volume v;
  v.info = std::move(info);
  v.info.file_orientation = m.code;
  for (int a = 0; a < 3; ++a) {
    v.info.size[a] = static_cast<int64_t>(region[a]);
    v.info.spacing[a] = sp[a];
  }
  const size_t n = static_cast<size_t>(region[0] * region[1] * region[2]);
  v.voxels.assign(out->GetBufferPointer(), out->GetBufferPointer() + n);
  for (float x : v.voxels)
    if (!std::isfinite(x)) throw Error(source + ": NaN or infinite voxel values");
  return v;
}

std::string itk_message(const itk::ExceptionObject& e) {
  std::string s = e.GetDescription();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

VolumeInfo nifti_info(const std::string& path, int64_t max_voxels, bool isolate) {
  std::error_code ec;
  const bool gz = ends_with(path, ".gz");
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read (" + ec.message() + ")");
  if (static_cast<int64_t>(size) > settings::limits::kMaxFileBytes)
    throw Error(path + ": " + std::to_string(size) + " bytes, allowed at most " + std::to_string(settings::limits::kMaxFileBytes));
  const int64_t need = check_nifti_header(nifti_head(path), gz ? -1 : static_cast<int64_t>(size), max_voxels, path);
  // ITK's NIfTI reader fills a gzip stream that ends early with zeros, silently: count the
  // decompressed bytes first (up to what the header needs, so a bomb costs no more than that).
  if (gz) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw Error(path + ": cannot open");
    std::vector<char> buf(size_t(1) << 20);
    int64_t got = 0;
    int n = 0;
    while (got < need && (n = gzread(f, buf.data(), static_cast<unsigned>(std::min<int64_t>(int64_t(buf.size()), need - got)))) > 0) got += n;
    int err = 0;
    const char* msg = gzerror(f, &err);
    const std::string what = msg ? msg : "";
    gzclose(f);
    if (n < 0 || err < 0) throw Error(path + ": corrupt gzip stream (" + what + ")");
    if (got < need)
      throw Error(path + ": truncated NIfTI: " + std::to_string(got) + " bytes after decompression, the header's image needs " +
                  std::to_string(need));
  }
  // ITK's header reading may abort on values the check above does not foresee: in a child process.
  struct Geometry {
    std::array<int64_t, 3> sz{1, 1, 1};
    std::array<double, 3> sp{1, 1, 1};
    Direction d{};
  } g;
  const auto read_header = [&] {
        auto io = itk::NiftiImageIO::New();
        io->SetFileName(path);
        try {
          io->ReadImageInformation();
        } catch (const itk::ExceptionObject& e) {
          throw Error(path + ": invalid NIfTI header (" + itk_message(e) + ")");
        }
        Geometry r;
        for (int k = 0; k < 3; ++k) r.d[k][k] = 1;
        const unsigned dims = std::min(3u, io->GetNumberOfDimensions());
        for (unsigned a = 0; a < dims; ++a) {
          r.sz[a] = static_cast<int64_t>(io->GetDimensions(a));
          r.sp[a] = io->GetSpacing(a);
          const auto dir = io->GetDirection(a);
          for (int k = 0; k < 3; ++k) r.d[k][a] = k < int(dir.size()) ? dir[k] : 0.0;
        }
        return std::string(reinterpret_cast<const char*>(&r), sizeof r);
      };
  const std::string got = isolate ? run_isolated(read_header, path + ": malformed NIfTI: the NIfTI reader (ITK)") : read_header();
  if (got.size() != sizeof g) throw Error(path + ": the NIfTI reader returned an inconsistent header");
  std::memcpy(&g, got.data(), sizeof g);
  const auto& sz = g.sz;
  const auto& sp = g.sp;
  const auto& d = g.d;
  VolumeInfo info;
  info.format = "nifti";
  fill_canonical(info, closest_axes(d, path), sz, sp);
  return info;
}

}  // namespace

bool is_volume_path(const std::string& path) {
  std::error_code ec;
  return ends_with(path, ".nii") || ends_with(path, ".nii.gz") || fs::is_directory(path, ec);
}

int64_t check_nifti_header(const std::string& h, int64_t file_bytes, int64_t max_voxels, const std::string& source) {
  auto bad = [&](const std::string& what) { throw Error(source + ": invalid NIfTI header: " + what); };
  if (h.size() < 348) bad("the file holds " + std::to_string(h.size()) + " bytes, a header needs 348");
  const auto s1 = read_at<int32_t>(h, 0, false);
  bool v2 = false, swap = false;
  if (s1 == 348 || s1 == 540) {
    v2 = s1 == 540;
  } else if (read_at<int32_t>(h, 0, true) == 348 || read_at<int32_t>(h, 0, true) == 540) {
    swap = true;
    v2 = read_at<int32_t>(h, 0, true) == 540;
  } else {
    bad("sizeof_hdr is " + std::to_string(s1) + ", expected 348 (NIfTI-1) or 540 (NIfTI-2)");
  }
  std::array<int64_t, 8> dim{};
  std::array<double, 8> pixdim{};
  int datatype, bitpix;
  double vox_offset;
  if (v2) {
    if (h.size() < 540) bad("NIfTI-2 header cut short at " + std::to_string(h.size()) + " bytes");
    if (h.compare(4, 4, std::string("n+2\0", 4)) != 0) bad("magic is not \"n+2\" (a single-file NIfTI-2)");
    datatype = read_at<int16_t>(h, 12, swap);
    bitpix = read_at<int16_t>(h, 14, swap);
    for (int i = 0; i < 8; ++i) dim[i] = read_at<int64_t>(h, 16 + 8 * i, swap);
    for (int i = 0; i < 8; ++i) pixdim[i] = read_at<double>(h, 104 + 8 * i, swap);
    vox_offset = static_cast<double>(read_at<int64_t>(h, 168, swap));
  } else {
    if (h.compare(344, 4, std::string("n+1\0", 4)) != 0)
      bad(h.compare(344, 4, std::string("ni1\0", 4)) == 0 ? "a .hdr/.img pair; DRIFA reads single-file .nii / .nii.gz"
                                                            : "magic is not \"n+1\" (a single-file NIfTI-1)");
    datatype = read_at<int16_t>(h, 70, swap);
    bitpix = read_at<int16_t>(h, 72, swap);
    for (int i = 0; i < 8; ++i) dim[i] = read_at<int16_t>(h, 40 + 2 * i, swap);
    for (int i = 0; i < 8; ++i) pixdim[i] = read_at<float>(h, 76 + 4 * i, swap);
    vox_offset = read_at<float>(h, 108, swap);
  }
  // The orientation ITK takes from the header: NaN or infinity there aborts ITK (a vnl assert in its
  // SVD, found by fuzz_nifti). Checked when its code says it is used.
  {
    const int qcode = v2 ? read_at<int32_t>(h, 344, swap) : read_at<int16_t>(h, 252, swap);
    const int scode = v2 ? read_at<int32_t>(h, 348, swap) : read_at<int16_t>(h, 254, swap);
    auto field = [&](size_t i1, size_t i2) { return v2 ? read_at<double>(h, i2, swap) : double(read_at<float>(h, i1, swap)); };
    if (qcode > 0)
      for (int i = 0; i < 6; ++i)  // quatern_b, c, d, qoffset_x, y, z
        if (!std::isfinite(field(256 + 4 * size_t(i), 352 + 8 * size_t(i)))) bad("qform (quatern/qoffset) holds NaN or infinity");
    if (scode > 0)
      for (int i = 0; i < 12; ++i)  // srow_x, srow_y, srow_z
        if (!std::isfinite(field(280 + 4 * size_t(i), 400 + 8 * size_t(i)))) bad("sform (srow_x/y/z) holds NaN or infinity");
  }
  if (dim[0] < 2 || dim[0] > 7) bad("dim[0] is " + std::to_string(dim[0]) + ", expected 2 to 7");
  for (int i = 1; i <= dim[0]; ++i)
    if (dim[i] < 1) bad("dim[" + std::to_string(i) + "] is " + std::to_string(dim[i]) + ", expected at least 1");
  for (int i = 4; i <= dim[0]; ++i)
    if (dim[i] != 1) bad("a " + std::to_string(dim[0]) + "-D image (dim[" + std::to_string(i) + "] = " + std::to_string(dim[i]) + "); DRIFA reads 3-D volumes");
  const int64_t bytes = bytes_of(datatype);
  if (bytes == 0) bad("datatype " + std::to_string(datatype) + " is not a real scalar type (complex and RGB are not read)");
  if (bitpix != bytes * 8) bad("bitpix " + std::to_string(bitpix) + " disagrees with datatype " + std::to_string(datatype));
  if (!std::isfinite(pixdim[0])) bad("pixdim[0] (qfac) is not finite");
  for (int i = 1; i <= std::min<int64_t>(3, dim[0]); ++i)
    if (!std::isfinite(pixdim[i]) || pixdim[i] == 0)
      bad("pixdim[" + std::to_string(i) + "] is " + std::to_string(pixdim[i]) + ", expected a finite non-zero spacing");
  const std::array<int64_t, 3> size{dim[1], dim[2], dim[0] >= 3 ? dim[3] : 1};
  check_voxels(size, max_voxels, source);
  const int64_t header_end = v2 ? 544 : 352;
  if (!std::isfinite(vox_offset) || vox_offset < header_end - 4 || vox_offset > double(settings::limits::kMaxFileBytes))
    bad("vox_offset " + std::to_string(vox_offset) + " lies outside the file's plausible range");
  const auto need = static_cast<int64_t>(vox_offset) + size[0] * size[1] * size[2] * bytes;  // bounded by max_voxels above
  if (file_bytes >= 0 && file_bytes < need)
    throw Error(source + ": truncated NIfTI: " + std::to_string(file_bytes) + " bytes, the header's image needs " + std::to_string(need));
  return need;
}

namespace {
// isolate: ITK and GDCM run in child processes; false inside a child that read_volume started.
VolumeInfo volume_info(const std::string& path, int64_t max_voxels, const std::string& series, bool isolate) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const Series s = isolate ? scan_series_isolated(path, series, max_voxels) : scan_series(path, series, max_voxels);
    VolumeInfo info;
    info.format = "dicom";
    info.series_uid = s.slices.front().series;
    info.patient_id = s.slices.front().patient;
    for (const auto& t : s.slices) info.files.push_back(t.file);
    fill_canonical(info, closest_axes(s.direction, path), {s.slices.front().cols, s.slices.front().rows, int64_t(s.slices.size())},
                   s.spacing);
    return info;
  }
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or folder");
  if (!ends_with(path, ".nii") && !ends_with(path, ".nii.gz"))
    throw Error(path + ": not a volume (expected a .nii or .nii.gz file, or a folder holding one DICOM series)");
  return nifti_info(path, max_voxels, isolate);
}
}  // namespace

VolumeInfo read_volume_info(const std::string& path, int64_t max_voxels, const std::string& series) {
  return volume_info(path, max_voxels, series, true);
}

namespace {

Volume read_with_itk(const std::string& path, VolumeInfo info) {
  Image3::Pointer img;
  try {
    if (info.format == "dicom") {
      auto io = itk::GDCMImageIO::New();
      io->LoadPrivateTagsOff();
      auto reader = itk::ImageSeriesReader<Image3>::New();
      reader->SetImageIO(io);
      reader->SetFileNames(info.files);  // our order: along the normal
      reader->ForceOrthogonalDirectionOff();
      reader->Update();
      img = reader->GetOutput();
      // ITK takes the slice step from the first two positions; the scan checked them all.
      auto sp = img->GetSpacing();
      const Mapping m = closest_axes(direction_of(img->GetDirection()), path);
      for (int c = 0; c < 3; ++c) sp[c] = info.spacing[m.axis[c]];
      img->SetSpacing(sp);
    } else {
      auto io = itk::NiftiImageIO::New();
      auto reader = itk::ImageFileReader<Image3>::New();
      reader->SetImageIO(io);
      reader->SetFileName(path);
      reader->Update();
      img = reader->GetOutput();
    }
  } catch (const itk::ExceptionObject& e) {
    throw Error(path + ": cannot read the volume (" + itk_message(e) + ")");
  }
  try {
    return to_canonical(img, std::move(info), path);
  } catch (const itk::ExceptionObject& e) {
    throw Error(path + ": cannot reorient the volume (" + itk_message(e) + ")");
  }
}

}  // namespace

Volume read_volume(const std::string& path, int64_t max_voxels, const std::string& series) {
  // ITK aborts on some malformed values (GDCM's asserts under the series reader and in its header
  // reader, vnl's finite-matrix assert under the NIfTI reader; found by fuzz_dicom_series and
  // fuzz_nifti): header and voxels are read in one child process (data/isolated.h) and come back
  // as [JSON length][geometry JSON][float voxels].
  std::error_code ec;
  const bool is_series = fs::is_directory(path, ec);
  const std::string got = run_isolated(
      [&] {
        const Volume v = read_with_itk(path, volume_info(path, max_voxels, series, false));
        const auto& i = v.info;
        const std::string j = nlohmann::json{{"size", i.size},
                                             {"spacing", i.spacing},
                                             {"file_orientation", i.file_orientation},
                                             {"format", i.format},
                                             {"patient_id", i.patient_id},
                                             {"series_uid", i.series_uid},
                                             {"files", i.files}}
                                  .dump();
        const uint64_t n = j.size();
        std::string out(reinterpret_cast<const char*>(&n), sizeof n);
        out += j;
        out.append(reinterpret_cast<const char*>(v.voxels.data()), v.voxels.size() * sizeof(float));
        return out;
      },
      path + ": malformed volume: the volume reader (ITK" + (is_series ? ", GDCM)" : ")"));
  auto inconsistent = [&] { return Error(path + ": the volume reader returned an inconsistent volume"); };
  uint64_t n = 0;
  if (got.size() < sizeof n) throw inconsistent();
  std::memcpy(&n, got.data(), sizeof n);
  if (n > got.size() - sizeof n) throw inconsistent();
  const auto j = nlohmann::json::parse(got.substr(sizeof n, n));
  Volume v;
  v.info.size = j["size"].get<std::array<int64_t, 3>>();
  v.info.spacing = j["spacing"].get<std::array<double, 3>>();
  v.info.file_orientation = j["file_orientation"];
  v.info.format = j["format"];
  v.info.patient_id = j["patient_id"];
  v.info.series_uid = j["series_uid"];
  v.info.files = j["files"].get<std::vector<std::string>>();
  const size_t head = sizeof n + n, count = (got.size() - head) / sizeof(float);
  if (count * sizeof(float) != got.size() - head ||
      static_cast<long double>(count) != static_cast<long double>(v.info.size[0]) * v.info.size[1] * v.info.size[2])
    throw inconsistent();
  v.voxels.resize(count);
  std::memcpy(v.voxels.data(), got.data() + head, count * sizeof(float));
  return v;
}

}  // namespace drifa::data
