#include "drifa/io/config_file.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/settings.h"

namespace drifa::io {

namespace {

nlohmann::json to_json(const toml::node& node) {
  if (auto* t = node.as_table()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto&& [k, v] : *t) j[std::string(k.str())] = to_json(v);
    return j;
  }
  if (auto* a = node.as_array()) {
    nlohmann::json j = nlohmann::json::array();
    for (auto&& v : *a) j.push_back(to_json(v));
    return j;
  }
  if (auto* v = node.as_string()) return v->get();
  if (auto* v = node.as_integer()) return v->get();
  if (auto* v = node.as_floating_point()) return v->get();
  if (auto* v = node.as_boolean()) return v->get();
  throw Error(node.source().path ? *node.source().path + ":" + std::to_string(node.source().begin.line) +
                  ": a date or time value; DRIFA settings take numbers, strings, booleans, lists and tables"
                                 : std::string("a TOML date or time value; DRIFA settings take numbers, strings, booleans, lists and tables"));
}

}  // namespace

nlohmann::json parse_toml(const std::string& text, const std::string& source) {
  try {
    return to_json(toml::parse(text, source));
  } catch (const toml::parse_error& e) {
    std::ostringstream o;
    o << source << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw Error(o.str());
  }
}

nlohmann::json read_toml(const std::string& path) { return parse_toml(read_file(path, "config file"), path); }

nlohmann::json read_json(const std::string& path) { return settings::parse_json(read_file(path, "JSON file"), path); }

}  // namespace drifa::io
