// NIfTI volumes (DRIFA's header check, then ITK's reader) with a small voxel limit. Inputs that
// start with the gzip magic are read as .nii.gz (the bomb and truncation checks), others as .nii.
#include "drifa/data/volume.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const auto file = drifa::fuzz::scratch() / (gz ? "input.nii.gz" : "input.nii");
  drifa::fuzz::write_file(file, data, size);
  // 2^16 voxels: the same header and reader paths as a large volume, at many more inputs per second.
  return drifa::fuzz::expect_clean([&] { drifa::data::read_volume(file.string(), 1 << 16); });
}
