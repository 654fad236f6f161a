// drifa volume: what DRIFA reads from a volume (NIfTI file or DICOM series folder): its geometry
// before and after bringing it to LPS+, the series' patient, and what the read cost.
#include <chrono>
#include <iomanip>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "drifa/data/volume.h"
#include "drifa/io/atomic_file.h"

namespace drifa::cli {

void register_volume(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::vector<std::string> paths;
    std::string series, out;
    int64_t max_voxels = settings::limits::kDefaultVolumeVoxels;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("volume", "geometry and read cost of volumes (.nii, .nii.gz, DICOM series folders) as DRIFA reads them");
  cmd->add_option("volumes", o->paths, "NIfTI files or DICOM series folders")->required();
  cmd->add_option("--series", o->series, "from a folder holding several series: a SeriesInstanceUID, or largest (the most files)");
  cmd->add_option("--max-voxels", o->max_voxels, "refuse larger volumes before reading them")->check(bounded(settings::limits::kVolumeVoxels));
  cmd->add_option("-o,--out", o->out, "also write the table as JSON here");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    nlohmann::json rows = nlohmann::json::array();
    double secs = 0, voxels = 0;
    for (const auto& p : o->paths) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto v = data::read_volume(p, o->max_voxels, o->series);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto& i = v.info;
      secs += s;
      voxels += double(v.voxels.size());
      std::cout << p << ": " << i.format << ", " << i.size[0] << " x " << i.size[1] << " x " << i.size[2] << " voxels of "
                << std::setprecision(4) << i.spacing[0] << " x " << i.spacing[1] << " x " << i.spacing[2] << " mm, " << i.file_orientation
                << " -> LPS" << (i.patient_id.empty() ? "" : ", PatientID " + i.patient_id) << ", read in " << std::setprecision(3) << s
                << " s\n";
      rows.push_back({{"path", p}, {"format", i.format}, {"size", i.size}, {"spacing", i.spacing}, {"file_orientation", i.file_orientation},
                      {"patient_id", i.patient_id}, {"series_uid", i.series_uid}, {"files", i.files.size()}, {"seconds", s}});
    }
    std::cout << o->paths.size() << " volume(s), " << std::setprecision(3) << double(o->paths.size()) / secs << " volumes/s, "
              << voxels / secs / 1e6 << " Mvoxels/s\n";
    if (!o->out.empty()) io::atomic_write_text(o->out, nlohmann::json{{"volumes", rows}, {"seconds", secs}}.dump(2));
  });
}

}  // namespace drifa::cli
