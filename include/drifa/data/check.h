#pragma once
// The data checks alone (`drifa check -c RUN.toml`): what training would read, split and refuse,
// without training. Counts per modality, part and class (images and groups), groups mixing labels
// or found in two parts, the same pixels in two parts, unreadable files.
#include <string>
#include <vector>

#include "drifa/data/sources.h"

namespace drifa::data {

struct DataCheck {
  struct Row {
    std::string modality, part, label;  // modality: its name, or "cases: TASK" for paired cases
    size_t images = 0, groups = 0;
  };
  std::vector<Row> rows;
  std::vector<bool> grouped;          // per modality (paired: one), as PreparedData::grouped
  std::vector<GroupCounts> groups;    // per modality (paired: one)
  std::vector<Duplicate> duplicates;  // across parts
  std::vector<std::string> unreadable;  // "path: what is wrong"
  // No leak and nothing unreadable: what training would accept without --skip-bad or --allow-duplicates.
  bool ok() const;  // no problems()
  // What would stop training, e.g. "56 duplicate pairs across parts, 2 unreadable files"; "" when ok.
  std::string problems() const;
  std::string table() const;  // the report, as `drifa check` prints it
};

// Reads and splits as prepare_data does (its errors: missing folders, bad group settings, test
// groups shared with training), then decodes every image once.
DataCheck check_data(const DataConfig& cfg, uint64_t seed);

}  // namespace drifa::data
