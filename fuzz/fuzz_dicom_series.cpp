// DICOM series folders (the per-file structure walk, DRIFA's position/orientation/size checks,
// then ITK's series reader). The input holds the folder's files separated by "DRIFA-FILE".
#include <filesystem>
#include <string>

#include "drifa/data/volume.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto dir = drifa::fuzz::scratch() / "series";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string sep = "DRIFA-FILE";
  size_t start = 0;
  for (int n = 0; n < 8; ++n) {
    const size_t end = in.find(sep, start);
    const std::string part = in.substr(start, end == std::string::npos ? std::string::npos : end - start);
    drifa::fuzz::write_file(dir / ("f" + std::to_string(n) + ".dcm"), reinterpret_cast<const uint8_t*>(part.data()), part.size());
    if (end == std::string::npos) break;
    start = end + sep.size();
  }
  return drifa::fuzz::expect_clean([&] { drifa::data::read_volume(dir.string(), 1 << 20); });
}
