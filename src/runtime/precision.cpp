#include "drifa/runtime/precision.h"

#include <dlfcn.h>

#include <fstream>
#include <set>
#include <sstream>

#include "drifa/error.h"

namespace drifa {

Precision parse_precision(const std::string& s, const std::string& where) {
  if (s == "auto") return Precision::Auto;
  if (s == "fp32") return Precision::FP32;
  if (s == "bf16") return Precision::BF16;
  throw Error(where + ": found \"" + s + "\", allowed auto, fp32, bf16");
}

std::string to_string(Precision p) {
  switch (p) {
    case Precision::Auto: return "auto";
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
  }
  return "fp32";
}

CpuFeatures parse_cpuinfo(const std::string& text) {
  CpuFeatures c;
  c.model = "unknown";
  std::istringstream in(text);
  std::string line;
  bool model_seen = false, flags_seen = false;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    std::string value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (key == "model name" && !model_seen) {
      c.model = value;
      model_seen = true;
    } else if (key == "flags" && !flags_seen) {
      std::istringstream fl(value);
      std::set<std::string> f;
      for (std::string w; fl >> w;) f.insert(w);
      c.avx2 = f.count("avx2") > 0;
      c.avx512f = f.count("avx512f") > 0;
      c.avx512_bf16 = f.count("avx512_bf16") > 0;
      c.amx_bf16 = f.count("amx_bf16") > 0;
      flags_seen = true;
    }
  }
  return c;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures c = [] {
    std::ifstream in("/proc/cpuinfo");
    std::stringstream ss;
    ss << in.rdbuf();
    CpuFeatures f = parse_cpuinfo(ss.str());
    if (const auto k = onednn_isa(); k != "unknown") f.kernels_isa = k;
    return f;
  }();
  return c;
}

std::string isa_summary(const CpuFeatures& cpu) {
  std::string flags;
  for (auto [on, name] : {std::pair<bool, const char*>{cpu.avx2, "avx2"}, {cpu.avx512f, "avx512f"},
                          {cpu.avx512_bf16, "avx512_bf16"}, {cpu.amx_bf16, "amx_bf16"}})
    if (on) flags += (flags.empty() ? "" : " ") + std::string(name);
  if (flags.empty()) flags = "no avx2";
  return cpu.model + ": " + flags + (cpu.native_bf16() ? " (native bf16)" : " (bf16 emulated)");
}

std::string onednn_isa() {
  // oneDNN's public C API (dnnl.h, dnnl_debug.h), looked up at run time: Debian's LibTorch links
  // the system libdnnl.so.2, and no header or link dependency is added for two calls.
  auto effective = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "dnnl_get_effective_cpu_isa"));
  auto to_str = reinterpret_cast<const char* (*)(int)>(dlsym(RTLD_DEFAULT, "dnnl_cpu_isa2str"));
  if (!effective || !to_str) return "unknown";
  const char* s = to_str(effective());
  if (!s) return "unknown";
  std::string name = s;
  if (name.rfind("cpu_isa_", 0) == 0) name.erase(0, 8);
  return name;
}

}  // namespace drifa
