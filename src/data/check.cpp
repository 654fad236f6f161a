#include "drifa/data/check.h"

#include <iomanip>
#include <map>
#include <set>
#include <sstream>

namespace drifa::data {

std::string DataCheck::problems() const {
  std::vector<std::string> found;
  if (!duplicates.empty()) found.push_back(std::to_string(duplicates.size()) + " duplicate pairs across parts");
  if (!unreadable.empty()) found.push_back(std::to_string(unreadable.size()) + " unreadable files");
  size_t spanning = 0;
  for (const auto& g : groups) spanning += g.spanning;
  if (spanning) found.push_back(std::to_string(spanning) + " groups in two parts");
  std::string out;
  for (size_t i = 0; i < found.size(); ++i) out += (i ? ", " : "") + found[i];
  return out;
}

bool DataCheck::ok() const { return problems().empty(); }

std::string DataCheck::table() const {
  std::ostringstream o;
  o << std::left << std::setw(20) << "source" << std::setw(7) << "part" << std::setw(20) << "class" << std::right
    << std::setw(8) << "images" << std::setw(8) << "groups" << "\n";
  for (const auto& r : rows)
    o << std::left << std::setw(20) << r.modality << std::setw(7) << r.part << std::setw(20) << r.label << std::right
      << std::setw(8) << r.images << std::setw(8) << r.groups << "\n";
  o << "\n";
  for (size_t m = 0; m < groups.size(); ++m) {
    const auto& g = groups[m];
    o << "groups (" << g.modality << "): ";
    if (m < grouped.size() && !grouped[m]) {
      o << "none named, each image its own group\n";
      continue;
    }
    o << g.train_groups << " train, " << g.val_groups << " val, " << g.test_groups << " test; " << g.mixed
      << " mixing labels; " << g.spanning << " in two parts" << (g.spanning ? " (e.g. '" + g.example + "')" : "") << "\n";
  }
  o << "duplicates across parts (same decoded pixels): " << duplicates.size() << "\n";
  for (size_t i = 0; i < duplicates.size() && i < 20; ++i) o << "  " << describe(duplicates[i]) << "\n";
  if (duplicates.size() > 20) o << "  ... and " << duplicates.size() - 20 << " more\n";
  o << "unreadable files: " << unreadable.size() << "\n";
  for (size_t i = 0; i < unreadable.size() && i < 20; ++i) o << "  " << unreadable[i] << "\n";
  if (unreadable.size() > 20) o << "  ... and " << unreadable.size() - 20 << " more\n";
  return o.str();
}

DataCheck check_data(const DataConfig& cfg, uint64_t seed) {
  auto d = prepare_data(cfg, seed);
  DataCheck c;
  c.grouped = d.grouped;
  auto add = [&](const std::string& modality, const char* part, const std::vector<std::string>& classes,
                 const std::vector<std::pair<int64_t, std::string>>& items) {  // (label, group)
    std::map<int64_t, std::pair<size_t, std::set<std::string>>> by;
    size_t own = 0;
    for (const auto& [y, g] : items) {
      by[y].first++;
      by[y].second.insert(g.empty() ? "\x01" + std::to_string(own++) : g);
    }
    for (const auto& [y, v] : by)
      c.rows.push_back({modality, part, y < 0 ? std::string("(unknown)") : classes[static_cast<size_t>(y)], v.first, v.second.size()});
  };
  if (d.paired) {
    for (size_t t = 0; t < d.tasks.size(); ++t)
      for (const auto& part : d.parts()) {
        std::vector<std::pair<int64_t, std::string>> items;
        for (const auto& r : part.cases) items.emplace_back(r.labels[t], r.group);
        add("cases: " + d.tasks[t], part.name, d.classes[t], items);  // paired: one row per case
      }
  } else {
    for (size_t m = 0; m < d.modalities.size(); ++m)
      for (const auto& part : d.parts()) {
        std::vector<std::pair<int64_t, std::string>> items;
        for (const auto& r : part.sets[m].records) items.emplace_back(r.label, r.group);
        add(d.modalities[m], part.name, d.classes[m], items);
      }
  }
  c.groups = group_counts(d);
  ImageCache cache(cfg.image_options());
  c.unreadable = verify_images(d.all_paths(), cache, cfg.workers);
  c.duplicates = find_duplicates(d, cache);
  return c;
}

}  // namespace drifa::data
