#include "drifa/data/csv.h"

#include <fstream>
#include <sstream>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"

namespace drifa::data {

int CsvTable::column(const std::string& name, const std::string& source) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  std::string cols;
  for (const auto& h : header) cols += (cols.empty() ? "" : ", ") + h;
  throw Error(source + ": no column '" + name + "' (columns: " + cols + ")");
}

CsvTable parse_csv(const std::string& text, const std::string& source) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  size_t line = 1, quote_line = 0;
  auto end_field = [&] {
    row.push_back(field);
    field.clear();
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) records.push_back(row);  // skip blank lines
    row.clear();
  };
  size_t i = 0;
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 BOM
  for (; i < text.size(); ++i) {
    const char c = text[i];
    any = true;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
      quote_line = line;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n') {
      end_row();
      ++line;
    } else if (c != '\r') {
      field += c;
    }
  }
  if (quoted) throw Error(source + ":" + std::to_string(quote_line) + ": unterminated quoted field");
  if (any && (!field.empty() || !row.empty())) end_row();
  if (records.empty()) throw Error(source + ": empty CSV file (no header)");
  CsvTable t;
  t.header = records[0];
  for (auto& h : t.header) {
    while (!h.empty() && (h.back() == ' ')) h.pop_back();
    while (!h.empty() && (h.front() == ' ')) h.erase(h.begin());
  }
  for (size_t r = 1; r < records.size(); ++r) {
    if (records[r].size() != t.header.size())
      throw Error(source + ": row " + std::to_string(r + 1) + " has " + std::to_string(records[r].size()) +
                  " fields, the header has " + std::to_string(t.header.size()));
    t.rows.push_back(std::move(records[r]));
  }
  return t;
}

CsvTable read_csv(const std::string& path) { return parse_csv(io::read_file(path, "CSV file"), path); }

std::string csv_escape(const std::string& f) {
  if (f.find_first_of(",\"\n\r") == std::string::npos) return f;
  std::string o = "\"";
  for (char c : f) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

}  // namespace drifa::data
