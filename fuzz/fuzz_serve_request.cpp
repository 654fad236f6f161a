// drifa serve's requests after HTTP parsing: uploads (field, file name, bytes) and option fields,
// through Service::predict on a tiny in-memory model. Every request is answered or refused with
// a RequestError (a drifa::Error); anything else escaping, a crash or a sanitizer report is a
// finding. Input: parts separated by "\n--\n"; a part is "f<field>\n<file name>\n<bytes>" (a
// file) or "v<name>\n<value>" (an option).
#include <string>

#include "drifa/serve/service.h"
#include "fuzz_common.h"

namespace {

drifa::serve::Service& service() {
  static drifa::serve::Service s = [] {
    const auto cfg = drifa::ModelConfig::from_json(
        {{"modalities", 2}, {"classes", {2, 3}}, {"image_size", 16}, {"widths", {4, 4, 8, 8}}, {"dropout", 0.1},
         {"modality_names", {"a", "b"}}, {"task_names", {"a", "b"}}},
        "fuzz");
    drifa::uncertainty::Predictor p;
    p.nets.push_back(drifa::DRIFANet(cfg));
    p.pairing = "paired";
    drifa::serve::ServiceOptions o;
    o.max_passes = 3;
    o.passes = 0;
    o.max_image_pixels = 1 << 16;
    o.batch.max_wait_ms = 0;
    return drifa::serve::Service(std::move(p), o);
  }();
  return s;
}

std::string line(std::string& rest) {
  const auto nl = rest.find('\n');
  std::string first = rest.substr(0, nl);
  rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
  return first;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  drifa::serve::PredictRequest r;
  for (size_t at = 0; at <= in.size();) {
    auto end = in.find("\n--\n", at);
    if (end == std::string::npos) end = in.size();
    std::string part = in.substr(at, end - at);
    at = end + 4;
    if (part.empty()) continue;
    const char kind = part[0];
    part.erase(0, 1);
    const auto name = line(part);
    if (kind == 'f') {
      const auto filename = line(part);
      r.files.push_back({name, filename, part});
    } else {
      r.fields.emplace_back(name, part);
    }
  }
  return drifa::fuzz::expect_clean([&] { service().predict(r); });
}
