#pragma once
// Volumes as hospitals store them, read with ITK: NIfTI-1/2 files (.nii, .nii.gz) and DICOM
// series (a folder of slice files, read through GDCM), brought to one canonical orientation.
//
// Canonical orientation: LPS+, the DICOM patient system and ITK's identity direction. Voxel
// (i, j, k) steps toward the patient's Left, Posterior and Superior; the file's axes are
// permuted and flipped to the closest of these (no resampling, as nibabel's
// as_closest_canonical does toward RAS+). An axial slice k is therefore shown in the
// radiological convention: anterior at the top, the patient's right on the image's left.
//
// Every failure is a drifa::Error naming the file (or series folder) and what is wrong.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace drifa::data {

struct VolumeInfo {
  std::array<int64_t, 3> size{};     // canonical (i, j, k)
  std::array<double, 3> spacing{};   // mm, canonical axes
  std::string file_orientation;      // the file's own axis codes before reorienting, e.g. "RAS", "LPI"
  std::string format;                // "nifti" | "dicom"
  std::string patient_id, series_uid;  // DICOM only
  std::vector<std::string> files;    // DICOM: the slice files, ordered along the slice normal
};

struct Volume {
  VolumeInfo info;
  std::vector<float> voxels;  // modality values (rescale applied), i fastest: i + nx * (j + ny * k)
  float at(int64_t i, int64_t j, int64_t k) const { return voxels[size_t(i + info.size[0] * (j + info.size[1] * k))]; }
};

// A NIfTI file by its name (.nii, .nii.gz) or a folder (a DICOM series).
bool is_volume_path(const std::string& path);

// Header only (DICOM: every file's header): size, spacing, orientation. Refuses a volume of
// more than max_voxels before anything is allocated. series: the SeriesInstanceUID to read
// from a folder holding several, or "largest" (the most files); "" = the folder must hold one,
// else the error lists them.
VolumeInfo read_volume_info(const std::string& path, int64_t max_voxels, const std::string& series = "");
Volume read_volume(const std::string& path, int64_t max_voxels, const std::string& series = "");

// The NIfTI header check that runs before ITK sees the file (also the fuzz target's entry):
// sizeof_hdr and magic (NIfTI-1 or -2, either byte order), dimensions, datatype, vox_offset,
// pixdim; the voxel count against max_voxels; an uncompressed file shorter than its data.
// header: the first bytes of the (decompressed) file; file_bytes: the file's size, or -1 (gz).
// Returns the bytes the file must hold (decompressed): vox_offset + the image.
int64_t check_nifti_header(const std::string& header, int64_t file_bytes, int64_t max_voxels, const std::string& source);

}  // namespace drifa::data
