// Precision from the hardware (runtime/precision): the processor's flags read from /proc/cpuinfo,
// whether auto times bf16 on each kind of processor (forced answers), and the run config's
// precision setting with its older spelling bf16 = true.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "drifa/error.h"
#include "drifa/runtime/precision.h"
#include "drifa/runs/run_config.h"
#include "drifa/training/tuning.h"

using namespace drifa;

namespace {
std::string cpuinfo(const std::string& model, const std::string& flags) {
  // two processors, as the kernel lists them; only the first one's lines count
  return "processor\t: 0\nvendor_id\t: X\nmodel name\t: " + model + "\nflags\t\t: " + flags +
         "\n\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n";
}
}  // namespace

// bf16 is a candidate for auto (training/tuning.h times it) only where oneDNN computes it natively.
TEST(Precision, Bf16IsACandidateOnlyWhereTheCpuComputesItNatively) {
  const auto avx2 = parse_cpuinfo(cpuinfo("Intel Xeon AVX2 box", "fpu sse2 avx avx2 fma"));
  const auto bf16 = parse_cpuinfo(cpuinfo("AMD EPYC 9B14", "fpu avx2 avx512f avx512bw avx512_bf16 avx_vnni"));
  const auto amx = parse_cpuinfo(cpuinfo("Intel Xeon Sapphire Rapids", "avx2 avx512f amx_bf16 amx_tile"));
  const auto avx512_only = parse_cpuinfo(cpuinfo("Intel Xeon Skylake", "avx2 avx512f avx512bw"));
  EXPECT_EQ(avx2.model, "Intel Xeon AVX2 box");
  EXPECT_TRUE(avx2.avx2);
  EXPECT_FALSE(avx2.avx512f);
  EXPECT_TRUE(bf16.avx512_bf16);
  EXPECT_TRUE(amx.amx_bf16);
  const torch::Device cpu(torch::kCPU), cuda(torch::kCUDA, 0);
  ModelConfig m;
  const auto names = [&](const drifa::CpuFeatures& c, const torch::Device& d, Attention a = Attention::DRIFA) {
    m.attention = a;
    std::vector<std::string> v;
    for (const auto& k : training::knobs_for(m, d, c)) v.push_back(k.name);
    return v;
  };
  const auto has = [](const std::vector<std::string>& v, const std::string& n) { return std::find(v.begin(), v.end(), n) != v.end(); };
  EXPECT_FALSE(has(names(avx2, cpu), "bf16"));
  EXPECT_FALSE(has(names(avx512_only, cpu), "bf16"));  // AVX-512 without BF16 still emulates bf16
  EXPECT_TRUE(has(names(bf16, cpu), "bf16"));
  EXPECT_TRUE(has(names(amx, cpu), "bf16"));
  EXPECT_TRUE(names(bf16, cuda).empty());  // auto keeps CUDA in fp32, untimed
  EXPECT_TRUE(has(names(avx2, cpu), "channels-last"));
  EXPECT_TRUE(has(names(avx2, cpu), "attention kernels"));
  EXPECT_FALSE(has(names(avx2, cpu, Attention::None), "attention kernels"));  // nothing for them to do
  EXPECT_EQ(names(avx2, cpu).back(), "recomputed maps");                      // the memory knob, last
  EXPECT_FALSE(has(names(avx2, cpu, Attention::None), "recomputed maps"));
  EXPECT_TRUE(has(names(avx2, cpu, Attention::MIFA), "recomputed maps"));
  EXPECT_TRUE(has(names(avx2, cpu), "MFA chain"));
  EXPECT_FALSE(has(names(avx2, cpu, Attention::MIFA), "MFA chain"));  // MIFA alone has no MFA
  for (const auto& k : training::knobs_for(m, cpu, avx2))  // the chain saves memory too: kept unless slower
    EXPECT_EQ(k.saves_memory, k.name == "MFA chain" || k.name == "recomputed maps") << k.name;
  EXPECT_TRUE(training::knobs_for(m, cpu, avx2).back().saves_memory);
  EXPECT_EQ(isa_summary(avx2), "Intel Xeon AVX2 box: avx2 (bf16 emulated)");
  EXPECT_EQ(isa_summary(bf16), "AMD EPYC 9B14: avx2 avx512f avx512_bf16 (native bf16)");
  // oneDNN's kernels capped below bf16 (ONEDNN_MAX_CPU_ISA=AVX2) would emulate it: not a candidate
  auto capped = bf16;
  capped.kernels_isa = "avx2";
  EXPECT_FALSE(capped.bf16_kernels());
  EXPECT_FALSE(has(names(capped, cpu), "bf16"));
  capped.kernels_isa = "avx512_core_bf16";
  EXPECT_TRUE(capped.bf16_kernels());
  capped.kernels_isa = "avx512_core_amx";
  EXPECT_TRUE(capped.bf16_kernels());
  // nothing to read: no features, no bf16
  const auto none = parse_cpuinfo("");
  EXPECT_EQ(none.model, "unknown");
  EXPECT_FALSE(none.bf16_kernels());
}

TEST(Precision, ThisMachinesFlagsAreReadFromProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  if (!in) GTEST_SKIP() << "no /proc/cpuinfo";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto flags_line = text.substr(text.find("\nflags"), text.find('\n', text.find("\nflags") + 1) - text.find("\nflags"));
  const auto& c = cpu_features();
  EXPECT_EQ(c.avx2, flags_line.find(" avx2") != std::string::npos);
  EXPECT_EQ(c.avx512_bf16, flags_line.find(" avx512_bf16") != std::string::npos);
  std::cout << "[precision] this machine: " << isa_summary(c) << "; bf16 " << (c.bf16_kernels() ? "a candidate" : "not a candidate")
            << " for auto\n";
}

TEST(Precision, RunConfigSettingAndItsOlderSpelling) {
  using runs::TrainConfig;
  EXPECT_EQ(TrainConfig{}.precision, "auto");  // precision from the hardware by default
  auto c = TrainConfig::from_json({{"precision", "auto"}}, "run.toml", TrainConfig{});
  EXPECT_EQ(c.precision, "auto");
  EXPECT_EQ(c.to_json()["precision"], "auto");
  EXPECT_EQ(TrainConfig::from_json(c.to_json(), "config.json", TrainConfig{}).precision, "auto");
  // bf16 = true is precision "bf16"; a run made before the setting resumes with the same config.json
  EXPECT_EQ(TrainConfig::from_json({{"bf16", true}}, "run.toml", TrainConfig{}).precision, "bf16");
  // a run made before the setting (fp32) wrote bf16 = false alone, as fp32 runs still do: it reads
  // back fp32 whatever the default, and the same config.json comes out
  TrainConfig fp32;
  fp32.precision = "fp32";
  const auto old = fp32.to_json();
  EXPECT_FALSE(old.contains("precision"));
  EXPECT_EQ(TrainConfig::from_json(old, "config.json", TrainConfig{}).precision, "fp32");
  EXPECT_EQ(TrainConfig::from_json(old, "config.json", TrainConfig{}).to_json(), old);
  EXPECT_EQ(TrainConfig::from_json(nlohmann::json::object(), "run.toml", TrainConfig{}).precision, "auto");
  EXPECT_EQ(TrainConfig::from_json(TrainConfig{}.to_json(), "config.json", TrainConfig{}).precision, "auto");
  auto bf = TrainConfig::from_json({{"precision", "bf16"}}, "run.toml", TrainConfig{});
  EXPECT_EQ(bf.to_json()["bf16"], true);
  EXPECT_EQ(TrainConfig::from_json(bf.to_json(), "config.json", TrainConfig{}).precision, "bf16");
  // bad values name the file, the key and what is allowed
  try {
    TrainConfig::from_json({{"precision", "fp16"}}, "run.toml", TrainConfig{});
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("run.toml"), std::string::npos) << m;
    EXPECT_NE(m.find("precision"), std::string::npos) << m;
    EXPECT_NE(m.find("auto"), std::string::npos) << m;
  }
  EXPECT_THROW(TrainConfig::from_json({{"precision", "fp32"}, {"bf16", true}}, "run.toml", TrainConfig{}), Error);
  EXPECT_NO_THROW(TrainConfig::from_json({{"precision", "bf16"}, {"bf16", true}}, "run.toml", TrainConfig{}));
  EXPECT_THROW(parse_precision("half"), Error);
}
