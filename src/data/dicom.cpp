#include "drifa/data/dicom.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <vector>

#include <gdcmAttribute.h>
#include <gdcmImageReader.h>

#include "drifa/data/dicom_structure.h"
#include "drifa/data/isolated.h"
#include "drifa/error.h"

namespace drifa::data {

namespace {

// First value of a multi-valued decimal string tag, if present.
bool first_ds(const gdcm::DataSet& ds, uint16_t group, uint16_t element, double* out) {
  const gdcm::Tag tag(group, element);
  if (!ds.FindDataElement(tag)) return false;
  const auto& de = ds.GetDataElement(tag);
  const auto* bv = de.GetByteValue();
  if (!bv || bv->GetLength() == 0) return false;
  std::string s(bv->GetPointer(), bv->GetLength());
  for (auto& c : s)
    if (c == '\\') c = ' ';
  std::istringstream in(s);
  return static_cast<bool>(in >> *out);
}

template <typename T>
void widen(const std::vector<char>& buf, size_t n, std::vector<double>& out, const std::string& path) {
  if (n > buf.size() / sizeof(T))
    throw Error(path + ": DICOM pixel buffer (" + std::to_string(buf.size()) + " bytes) is shorter than its " +
                std::to_string(n) + " samples need");
  out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, buf.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<double>(x);
  }
}

// GDCM's part of the decoding; runs in a child process (see decode_dicom_bytes).
cv::Mat decode_with_gdcm(const std::string& bytes, const std::string& path, const DicomOptions& opt, int64_t max_pixels,
                         int64_t declared) {
  std::istringstream stream(bytes);
  gdcm::ImageReader reader;
  reader.SetStream(stream);
  if (!reader.Read()) throw Error(path + ": cannot read DICOM image (truncated, corrupt or no pixel data)");
  const gdcm::Image& img = reader.GetImage();
  const unsigned int* dims = img.GetDimensions();
  if (img.GetNumberOfDimensions() == 3 && dims[2] > 1)
    throw Error(path + ": multi-frame DICOM (" + std::to_string(dims[2]) + " frames) is not supported; export single frames");
  if (dims[0] < 1 || dims[1] < 1) throw Error(path + ": DICOM image of " + std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + " pixels");
  if (static_cast<int64_t>(dims[0]) > max_pixels / static_cast<int64_t>(dims[1]))
    throw Error(path + ": DICOM header claims " + std::to_string(dims[0]) + "x" + std::to_string(dims[1]) +
                " pixels, more than the limit of " + std::to_string(max_pixels) + " (data.max_image_pixels); refused before decoding");
  const int cols = static_cast<int>(dims[0]), rows = static_cast<int>(dims[1]);
  const gdcm::PixelFormat& pf = img.GetPixelFormat();
  const int spp = pf.GetSamplesPerPixel();
  if (spp != 1 && spp != 3) throw Error(path + ": unsupported samples per pixel " + std::to_string(spp));
  const size_t need = img.GetBufferLength();
  if (need == 0 || need > static_cast<size_t>(max_pixels) * 3 * 8)
    throw Error(path + ": DICOM pixel buffer of " + std::to_string(need) + " bytes does not fit its " + std::to_string(cols) +
                "x" + std::to_string(rows) + " pixels");
  if (declared != 0xFFFFFFFFll && static_cast<size_t>(declared) < need)
    throw Error(path + ": DICOM pixel data holds " + std::to_string(declared) + " bytes, its " + std::to_string(cols) + "x" +
                std::to_string(rows) + " pixels need " + std::to_string(need) + " (truncated or corrupt)");
  std::vector<char> buf(need);
  if (!img.GetBuffer(buf.data()))
    throw Error(path + ": cannot decode DICOM pixel data (truncated or unsupported transfer syntax)");

  const size_t n = static_cast<size_t>(rows) * cols * spp;
  std::vector<double> v;
  switch (pf.GetScalarType()) {
    case gdcm::PixelFormat::UINT8: widen<uint8_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::INT8: widen<int8_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::UINT16: widen<uint16_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::INT16: widen<int16_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::UINT32: widen<uint32_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::INT32: widen<int32_t>(buf, n, v, path); break;
    case gdcm::PixelFormat::FLOAT32: widen<float>(buf, n, v, path); break;
    case gdcm::PixelFormat::FLOAT64: widen<double>(buf, n, v, path); break;
    default: throw Error(path + ": unsupported DICOM pixel type " + std::string(pf.GetScalarTypeAsString()));
  }
  if (!std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); }))
    throw Error(path + ": DICOM image with non-finite pixel values (NaN or infinity)");

  if (spp == 3) {  // colour DICOM: 8-bit RGB (GDCM has converted YBR/planar for us)
    cv::Mat out(rows, cols, CV_32FC3);
    const double maxv = pf.GetBitsStored() > 8 ? std::ldexp(1.0, std::min<int>(pf.GetBitsStored(), 32)) - 1 : 255.0;
    float* o = out.ptr<float>();
    for (size_t i = 0; i < n; ++i) o[i] = static_cast<float>(std::min(1.0, std::max(0.0, v[i] / maxv)));
    return out;
  }

  const double slope = img.GetSlope(), intercept = img.GetIntercept();
  for (auto& x : v) {
    x = x * slope + intercept;
    if (!std::isfinite(x))
      throw Error(path + ": DICOM image with non-finite values (NaN or infinite pixels, rescale slope or intercept)");
  }
  double lo, hi;
  double center = 0, width = 0;
  const auto& ds = reader.GetFile().GetDataSet();
  if (opt.window_center && opt.window_width) {
    center = *opt.window_center;
    width = *opt.window_width;
  } else if (!(first_ds(ds, 0x0028, 0x1050, &center) && first_ds(ds, 0x0028, 0x1051, &width))) {
    width = 0;
  }
  if (width > 0) {
    lo = center - width / 2;
    hi = center + width / 2;
  } else {
    lo = *std::min_element(v.begin(), v.end());
    hi = *std::max_element(v.begin(), v.end());
  }
  const double range = hi > lo ? hi - lo : 1.0;
  const bool invert = img.GetPhotometricInterpretation() == gdcm::PhotometricInterpretation::MONOCHROME1;
  cv::Mat out(rows, cols, CV_32FC1);
  float* o = out.ptr<float>();
  for (size_t i = 0; i < n; ++i) {
    double y = std::min(1.0, std::max(0.0, (v[i] - lo) / range));
    o[i] = static_cast<float>(invert ? 1.0 - y : y);
  }
  return out;
}

}  // namespace

cv::Mat decode_dicom_bytes(const std::string& bytes, const std::string& path, const DicomOptions& opt, int64_t max_pixels) {
  // Before GDCM reads anything: the element structure is complete (GDCM asserts on a stream that
  // ends inside an element), and the Pixel Data length fits the file (GDCM would allocate the
  // declared length and zero-fill it).
  const int64_t declared = check_dicom_structure(bytes, path).pixel_data_length;
  if (declared < 0) throw Error(path + ": DICOM file without pixel data (no image)");
  // GDCM may abort on malformed values: it runs in a child process (data/isolated.h).
  const std::string got = run_isolated(
      [&] {
        const cv::Mat m = decode_with_gdcm(bytes, path, opt, max_pixels, declared);
        const int64_t head[3] = {m.rows, m.cols, m.type()};
        std::string out(reinterpret_cast<const char*>(head), sizeof head);
        out.append(reinterpret_cast<const char*>(m.data), m.total() * m.elemSize());
        return out;
      },
      path + ": malformed DICOM: the DICOM decoder (GDCM)");
  int64_t head[3];
  if (got.size() < sizeof head) throw Error(path + ": DICOM decoder returned an inconsistent image");
  std::memcpy(head, got.data(), sizeof head);
  cv::Mat out(static_cast<int>(head[0]), static_cast<int>(head[1]), static_cast<int>(head[2]));
  if (out.total() * out.elemSize() != got.size() - sizeof head) throw Error(path + ": DICOM decoder returned an inconsistent image");
  std::memcpy(out.data, got.data() + sizeof head, got.size() - sizeof head);
  return out;
}

}  // namespace drifa::data
