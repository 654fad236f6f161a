#pragma once
// Config files are TOML (toml++); they are converted to JSON so that one from_json() per
// settings struct serves config files, model-file metadata and run records alike.
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace drifa::io {

// Throws drifa::Error naming the file (and line, for syntax errors).
nlohmann::json read_toml(const std::string& path);
nlohmann::json parse_toml(const std::string& text, const std::string& source);

// A JSON file (run records, results); throws drifa::Error naming the file.
nlohmann::json read_json(const std::string& path);

}  // namespace drifa::io
