#pragma once
// A small RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF). Debian has no C++ CSV
// library worth the dependency; this is written here and tested.
#include <string>
#include <vector>

namespace drifa::data {

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name, const std::string& source) const;  // throws naming the file
};

// Throws drifa::Error naming the file and line for unterminated quotes or ragged rows.
CsvTable read_csv(const std::string& path);
CsvTable parse_csv(const std::string& text, const std::string& source);
std::string csv_escape(const std::string& field);

}  // namespace drifa::data
