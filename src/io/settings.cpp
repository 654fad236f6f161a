#include "drifa/io/settings.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "drifa/error.h"

namespace drifa::settings {

namespace {

std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

std::string type_name(const nlohmann::json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number_float()) return "a float";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a table";
  return "null";
}

constexpr int kMaxJsonDepth = 64;

}  // namespace

std::string show(const nlohmann::json& v) {
  std::string s;
  if (v.is_number_float() && !std::isfinite(v.get<double>())) s = std::isnan(v.get<double>()) ? "nan" : (v.get<double>() > 0 ? "inf" : "-inf");
  else if (v.is_number_float()) s = num(v.get<double>());
  else s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string describe(const IntRange& r) {
  return "an integer from " + std::to_string(r.lo) + " to " + std::to_string(r.hi);
}

std::string describe(const RealRange& r) {
  return std::string("a finite number in ") + (r.lo_open ? "(" : "[") + num(r.lo) + ", " + num(r.hi) + (r.hi_open ? ")" : "]");
}

bool contains(const IntRange& r, int64_t v) { return v >= r.lo && v <= r.hi; }

bool contains(const RealRange& r, double v) {
  if (!std::isfinite(v)) return false;
  if (r.lo_open ? !(v > r.lo) : !(v >= r.lo)) return false;
  return r.hi_open ? v < r.hi : v <= r.hi;
}

int64_t check_integer(const std::string& source, const std::string& name, int64_t v, IntRange r) {
  if (!contains(r, v)) throw Error(source + ": " + name + ": found " + std::to_string(v) + ", allowed " + describe(r));
  return v;
}

double check_real(const std::string& source, const std::string& name, double v, RealRange r) {
  if (!contains(r, v)) throw Error(source + ": " + name + ": found " + show(nlohmann::json(v)) + ", allowed " + describe(r));
  return v;
}

void check_name(const std::string& source, const std::string& name, const std::string& v) {
  auto fail = [&](const std::string& what) { throw Error(source + ": " + name + ": found " + show(nlohmann::json(v)) + ", " + what); };
  if (v.empty()) fail("allowed a non-empty name");
  if (static_cast<int64_t>(v.size()) > limits::kMaxNameLength)
    fail("allowed a name of at most " + std::to_string(limits::kMaxNameLength) + " bytes");
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f) fail("allowed a name without control characters or NUL bytes");
}

Table::Table(const nlohmann::json& j, std::string source, std::string prefix)
    : j_(&j), source_(std::move(source)), prefix_(std::move(prefix)) {
  if (!j.is_object())
    throw Error(source_ + ": " + (prefix_.empty() ? std::string("settings") : prefix_) + ": found " + type_name(j) +
                ", allowed a table of settings");
}

std::string Table::key_path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

void Table::fail(const std::string& key, const std::string& what) const {
  throw Error(source_ + ": " + key_path(key) + ": " + what);
}

bool Table::has(const char* key) const { return j_->contains(key); }

void Table::require(std::initializer_list<const char*> keys) const {
  for (const char* k : keys)
    if (!has(k)) fail(k, "missing");
}

std::optional<double> Table::real_or_null(const char* key, RealRange r) {
  const auto* v = find(key);
  if (v && v->is_null()) return std::nullopt;
  if (!v) fail(key, "missing");
  return real(key, 0, r);
}

const nlohmann::json* Table::find(const char* key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.push_back(key);
  auto it = j_->find(key);
  return it == j_->end() ? nullptr : &*it;
}

void Table::allow(const char* key) { find(key); }

const nlohmann::json& Table::raw(const char* key) {
  const auto* v = find(key);
  if (!v) fail(key, "missing");
  return *v;
}

int64_t Table::integer(const char* key, int64_t def, IntRange r) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_number_integer()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed " + describe(r));
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail(key, "found " + show(*v) + ", allowed " + describe(r));
  const int64_t x = v->get<int64_t>();
  if (!contains(r, x)) fail(key, "found " + show(*v) + ", allowed " + describe(r));
  return x;
}

double Table::real(const char* key, double def, RealRange r) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_number()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed " + describe(r));
  const double x = v->get<double>();
  if (!contains(r, x)) fail(key, "found " + show(*v) + ", allowed " + describe(r));
  return x;
}

bool Table::boolean(const char* key, bool def) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_boolean()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed true or false");
  return v->get<bool>();
}

std::string Table::string(const char* key, const std::string& def, bool allow_empty) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_string()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a string");
  const auto s = v->get<std::string>();
  if (!allow_empty && s.empty()) fail(key, "found an empty string, allowed a non-empty string");
  if (s.find('\0') != std::string::npos) fail(key, "found a string with a NUL byte, allowed text without NUL bytes");
  return s;
}

std::string Table::choice(const char* key, const std::string& def, std::initializer_list<const char*> options) {
  const auto s = string(key, def);
  std::string allowed;
  for (const char* o : options) {
    if (s == o) return s;
    allowed += (allowed.empty() ? "" : " | ") + std::string(o);
  }
  fail(key, "found " + show(nlohmann::json(s)) + ", allowed " + allowed);
}

namespace {
void check_count(const Table& t, const char* key, size_t n, IntRange count) {
  if (!contains(count, static_cast<int64_t>(n)))
    t.fail(key, "found a list of " + std::to_string(n) + " entries, allowed " + std::to_string(count.lo) + " to " +
                    std::to_string(count.hi) + " entries");
}
}  // namespace

std::vector<int64_t> Table::integers(const char* key, std::vector<int64_t> def, IntRange each, IntRange count) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a list of " + describe(each) + "s");
  check_count(*this, key, v->size(), count);
  std::vector<int64_t> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    const std::string where = key + std::string("[") + std::to_string(i) + "]";
    if (!e.is_number_integer() || (e.is_number_unsigned() && e.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) ||
        !contains(each, e.get<int64_t>()))
      fail(where, "found " + show(e) + ", allowed " + describe(each));
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::vector<double> Table::reals(const char* key, std::vector<double> def, RealRange each, IntRange count) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a list of numbers");
  check_count(*this, key, v->size(), count);
  std::vector<double> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    if (!e.is_number() || !contains(each, e.get<double>()))
      fail(key + std::string("[") + std::to_string(i) + "]", "found " + show(e) + ", allowed " + describe(each));
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<std::string> Table::names(const char* key, std::vector<std::string> def, IntRange count, bool unique) {
  const auto* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a list of names");
  check_count(*this, key, v->size(), count);
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    const std::string where = key_path(key) + "[" + std::to_string(i) + "]";
    if (!e.is_string()) throw Error(source_ + ": " + where + ": found " + show(e) + " (" + type_name(e) + "), allowed a name");
    const auto s = e.get<std::string>();
    check_name(source_, where, s);
    if (unique && !seen.insert(s).second)
      throw Error(source_ + ": " + where + ": found " + show(e) + " twice, allowed distinct names");
    out.push_back(s);
  }
  return out;
}

std::vector<std::vector<std::string>> Table::name_lists(const char* key, IntRange count, IntRange each_count) {
  const auto* v = find(key);
  if (!v) return {};
  if (!v->is_array()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a list of name lists");
  check_count(*this, key, v->size(), count);
  std::vector<std::vector<std::string>> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const auto& e = (*v)[i];
    const std::string where = key_path(key) + "[" + std::to_string(i) + "]";
    if (!e.is_array()) throw Error(source_ + ": " + where + ": found " + show(e) + " (" + type_name(e) + "), allowed a list of names");
    // An empty list means "unnamed" (indices), so only non-empty lists are held to each_count.
    if (!e.empty() && !contains(each_count, static_cast<int64_t>(e.size())))
      throw Error(source_ + ": " + where + ": found a list of " + std::to_string(e.size()) + " names, allowed " +
                  std::to_string(each_count.lo) + " to " + std::to_string(each_count.hi));
    std::vector<std::string> names_i;
    std::set<std::string> seen;
    for (size_t k = 0; k < e.size(); ++k) {
      const std::string w = where + "[" + std::to_string(k) + "]";
      if (!e[k].is_string()) throw Error(source_ + ": " + w + ": found " + show(e[k]) + " (" + type_name(e[k]) + "), allowed a name");
      const auto n = e[k].get<std::string>();
      check_name(source_, w, n);
      if (!seen.insert(n).second) throw Error(source_ + ": " + w + ": found " + show(e[k]) + " twice, allowed distinct names");
      names_i.push_back(n);
    }
    out.push_back(std::move(names_i));
  }
  return out;
}

Table Table::table(const char* key) {
  const auto* v = find(key);
  if (!v) fail(key, "missing");
  return Table(*v, source_, key_path(key));
}

std::vector<Table> Table::tables(const char* key, IntRange count) {
  const auto* v = find(key);
  if (!v) return {};
  if (!v->is_array()) fail(key, "found " + show(*v) + " (" + type_name(*v) + "), allowed a list of tables");
  check_count(*this, key, v->size(), count);
  std::vector<Table> out;
  for (size_t i = 0; i < v->size(); ++i) out.emplace_back((*v)[i], source_, key_path(key) + "[" + std::to_string(i) + "]");
  return out;
}

void Table::finish() const {
  for (auto it = j_->begin(); it != j_->end(); ++it)
    if (std::find(known_.begin(), known_.end(), it.key()) == known_.end()) {
      std::string allowed;
      for (const auto& k : known_) allowed += (allowed.empty() ? "" : ", ") + k;
      fail(it.key(), "unknown key; allowed: " + allowed);
    }
}

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (depth > kMaxJsonDepth) throw Error(source + ": malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (ev == E::object_start) keys.emplace_back();
    else if (ev == E::object_end && !keys.empty()) keys.pop_back();
    else if (ev == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second)
      throw Error(source + ": malformed JSON: duplicate key " + show(parsed));
    return true;
  };
  try {
    return nlohmann::json::parse(text, cb);
  } catch (const nlohmann::json::exception& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 1, column 5: ..."; keep the part after "]".
    std::string w = e.what();
    const auto p = w.find("] ");
    throw Error(source + ": malformed JSON: " + (p == std::string::npos ? w : w.substr(p + 2)));
  }
}

}  // namespace drifa::settings
