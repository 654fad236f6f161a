#include "drifa/data/image.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "drifa/data/dicom.h"
#include "drifa/error.h"
#include "drifa/io/atomic_file.h"

namespace drifa::data {

namespace {

std::string lower_ext(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

std::string read_tail(const std::string& path, size_t n, size_t* size) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  *size = static_cast<size_t>(in.tellg());
  const size_t k = std::min(n, *size);
  std::string s(k, '\0');
  in.seekg(static_cast<std::streamoff>(*size - k));
  in.read(s.data(), static_cast<std::streamsize>(k));
  return s;
}

// libjpeg decodes a truncated JPEG with only a warning and grey fill; refuse it instead.
void check_jpeg_complete(const std::string& path) {
  size_t size = 0;
  std::string tail = read_tail(path, 64, &size);
  while (!tail.empty() && (tail.back() == '\0' || tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  if (tail.size() < 2 || static_cast<unsigned char>(tail[tail.size() - 2]) != 0xFF ||
      static_cast<unsigned char>(tail.back()) != 0xD9)
    throw Error(path + ": truncated JPEG (no end-of-image marker)");
}

}  // namespace

bool is_image_path(const std::string& path) {
  static const char* exts[] = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"};
  const auto e = lower_ext(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* x) { return e == x; });
}

bool looks_like_dicom(const std::string& path) {
  const auto e = lower_ext(path);
  if (e == ".dcm" || e == ".dicom") return true;
  std::ifstream in(path, std::ios::binary);
  char buf[132] = {};
  in.read(buf, 132);
  return in.gcount() == 132 && std::string(buf + 128, 4) == "DICM";
}

cv::Mat decode_image(const std::string& path, const DicomOptions& dicom) {
  if (!std::filesystem::exists(path)) throw Error(path + ": file not found");
  if (std::filesystem::is_directory(path)) throw Error(path + ": is a folder, not an image");
  if (std::filesystem::file_size(path) == 0) throw Error(path + ": empty file");
  if (looks_like_dicom(path)) return decode_dicom(path, dicom);

  const auto e = lower_ext(path);
  if (e == ".jpg" || e == ".jpeg") check_jpeg_complete(path);
  cv::Mat raw;
  try {
    raw = cv::imread(path, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& ex) {
    throw Error(path + ": cannot decode image (" + ex.msg + ")");
  }
  if (raw.empty()) throw Error(path + ": cannot decode image (corrupt, truncated or unsupported format)");
  if (raw.dims != 2 || raw.rows < 1 || raw.cols < 1) throw Error(path + ": not a 2-D image");

  double scale = 1.0;
  switch (raw.depth()) {
    case CV_8U: scale = 1.0 / 255; break;
    case CV_16U: scale = 1.0 / 65535; break;
    case CV_32F: scale = 1.0; break;
    default: throw Error(path + ": unsupported pixel depth (only 8/16-bit integer and 32-bit float)");
  }
  cv::Mat f;
  raw.convertTo(f, CV_32F, scale);
  switch (f.channels()) {
    case 1: break;
    case 3: cv::cvtColor(f, f, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(f, f, cv::COLOR_BGRA2RGB); break;
    default: throw Error(path + ": unsupported channel count " + std::to_string(f.channels()));
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
