#include "drifa/data/image.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "drifa/data/dicom.h"
#include "drifa/data/image_header.h"
#include "drifa/data/image_integrity.h"
#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/settings.h"

namespace drifa::data {

namespace {

std::string lower_ext(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

// libjpeg decodes a truncated JPEG with only a warning and grey fill; refuse it instead.
void check_jpeg_complete(const std::string& bytes, const std::string& source) {
  size_t n = bytes.size();
  while (n > 0 && (bytes[n - 1] == '\0' || bytes[n - 1] == '\n' || bytes[n - 1] == '\r')) --n;
  if (n < 4 || static_cast<unsigned char>(bytes[n - 2]) != 0xFF || static_cast<unsigned char>(bytes[n - 1]) != 0xD9)
    throw Error(source + ": truncated JPEG (no end-of-image marker)");
}

}  // namespace

bool is_image_path(const std::string& path) {
  static const char* exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"};
  const auto e = lower_ext(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* x) { return e == x; });
}

std::string read_image_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) throw Error(path + ": file not found");
  if (fs::is_directory(st)) throw Error(path + ": is a folder, not an image");
  if (!fs::is_regular_file(st)) throw Error(path + ": not a regular file (a device, FIFO or socket), not an image");
  const auto size = fs::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read the file size (" + ec.message() + ")");
  if (size == 0) throw Error(path + ": empty file");
  if (size > static_cast<uintmax_t>(settings::limits::kMaxFileBytes))
    throw Error(path + ": " + std::to_string(size) + " bytes, larger than any image DRIFA reads (" +
                std::to_string(settings::limits::kMaxFileBytes) + ")");
  return io::read_file(path, "image");
}

cv::Mat decode_image(const std::string& path, const DicomOptions& dicom, int64_t max_pixels) {
  return decode_image_bytes(read_image_file(path), path, dicom, max_pixels);
}

cv::Mat decode_image_bytes(const std::string& bytes, const std::string& source, const DicomOptions& dicom,
                           int64_t max_pixels) {
  if (bytes.empty()) throw Error(source + ": empty file");
  const auto e = lower_ext(source);
  if (e == ".dcm" || e == ".dicom" || (bytes.size() >= 132 && bytes.compare(128, 4, "DICM") == 0))
    return decode_dicom_bytes(bytes, source, dicom, max_pixels);

  const ImageHeader header = probe_image_header(bytes, source);
  check_image_size(header, max_pixels, source);
  // Decoders fill what is missing and only warn: damaged files are refused here instead.
  if (header.format == "JPEG") {
    check_jpeg_complete(bytes, source);
    check_jpeg_stream(bytes, source);
  } else if (header.format == "PNG") {
    check_png_chunks(bytes, source);
  } else if (header.format == "TIFF") {
    check_tiff_strips(bytes, source);
  }
  cv::Mat raw;
  try {
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    raw = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& ex) {
    throw Error(source + ": cannot decode " + header.format + " image (" + ex.msg + ")");
  }
  if (raw.empty()) throw Error(source + ": cannot decode " + header.format + " image (corrupt or truncated)");
  if (raw.dims != 2 || raw.rows < 1 || raw.cols < 1) throw Error(source + ": not a 2-D image");
  if (raw.cols != header.width || raw.rows != header.height)
    throw Error(source + ": decoded " + std::to_string(raw.cols) + "x" + std::to_string(raw.rows) + " pixels, the " +
                header.format + " header says " + std::to_string(header.width) + "x" + std::to_string(header.height));

  double scale = 1.0;
  switch (raw.depth()) {
    case CV_8U: scale = 1.0 / 255; break;
    case CV_16U: scale = 1.0 / 65535; break;
    case CV_32F: scale = 1.0; break;
    default: throw Error(source + ": unsupported pixel depth (only 8/16-bit integer and 32-bit float)");
  }
  if (raw.depth() == CV_32F && !cv::checkRange(raw, true))
    throw Error(source + ": float image with non-finite pixel values (NaN or infinity)");
  cv::Mat f;
  raw.convertTo(f, CV_32F, scale);
  switch (f.channels()) {
    case 1: break;
    case 3: cv::cvtColor(f, f, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(f, f, cv::COLOR_BGRA2RGB); break;
    default: throw Error(source + ": unsupported channel count " + std::to_string(f.channels()));
  }
  if (raw.depth() == CV_32F) cv::min(cv::max(f, 0.0), 1.0, f);
  return f;
}

cv::Mat to_channels(const cv::Mat& img, int channels) {
  if (img.channels() == channels) return img;
  cv::Mat out;
  if (channels == 3 && img.channels() == 1) {
    cv::cvtColor(img, out, cv::COLOR_GRAY2RGB);
  } else if (channels == 1 && img.channels() == 3) {
    cv::cvtColor(img, out, cv::COLOR_RGB2GRAY);
  } else if (img.channels() == 1) {  // grey into a wider input (five channels: a volume modality's stack beside images)
    cv::merge(std::vector<cv::Mat>(static_cast<size_t>(channels), img), out);
  } else {
    throw Error("cannot convert a " + std::to_string(img.channels()) + "-channel image to " +
                std::to_string(channels) + " channels");
  }
  return out;
}

void write_image(const std::string& path, const cv::Mat& img) {
  const auto dot = path.rfind('.');
  std::vector<uchar> buf;
  if (dot == std::string::npos || !cv::imencode(path.substr(dot), img, buf))
    throw Error(path + ": cannot encode the image");
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir);
  io::atomic_write(path, [&](std::ostream& o) { o.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size())); });
}

}  // namespace drifa::data
