// The command-line tool as a user runs it: exit codes, messages, files.
#include <gtest/gtest.h>

#include "drifa/drifa.h"
#include "drifa/runtime/precision.h"
#include "drifa/runs/run_config.h"
#include "test_helpers.h"

using namespace drifa;
using test::cli;
using test::run;

TEST(Cli, InfoPrintsThePaperConfiguration) {
  auto r = run(cli() + " info --threads 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("parameters (trainable): 53865668"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("parameters of the built model: 53865668 (matches)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("threads: 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GMAC"), std::string::npos);
}

TEST(Cli, InfoDefaultsToAllCores) {
  auto r = run("env -u DRIFA_THREADS " + cli() + " info --preset tiny");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("threads: " + std::to_string(std::thread::hardware_concurrency())), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("859988"), std::string::npos) << r.output;
  // DRIFA_THREADS sets the default (a parallel test run, a scheduler's slots); --threads wins.
  r = run("DRIFA_THREADS=1 " + cli() + " info --preset tiny");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("threads: 1\n"), std::string::npos) << r.output;
  r = run("DRIFA_THREADS=1 " + cli() + " info --preset tiny --threads 2");
  EXPECT_NE(r.output.find("threads: 2\n"), std::string::npos) << r.output;
  for (const char* bad : {"0", "two", "1x", "100000"}) {
    r = run(std::string("DRIFA_THREADS=") + bad + " " + cli() + " info --preset tiny");
    EXPECT_EQ(r.status, 1) << bad;
    EXPECT_NE(r.output.find(std::string("DRIFA_THREADS: found '") + bad + "', allowed an integer from 1 to"), std::string::npos)
        << r.output;
  }
}

// oneDNN's kernel ISA is read from oneDNN itself, so a cap set in the environment shows (what
// run_bench.py --isa avx2 relies on to stand in for an AVX2-only processor).
TEST(Cli, InfoNamesOneDNNsKernelsAndTheirCap) {
  const auto& cpu = cpu_features();
  auto native = run(cli() + " info --preset tiny");
  ASSERT_EQ(native.status, 0) << native.output;
  if (onednn_isa() == "unknown") GTEST_SKIP() << "this LibTorch does not export oneDNN's API";
  // (AVX-512 machines report avx512_core and a suffix: _vnni, _bf16, _amx)
  const std::string expect = cpu.avx512f ? "oneDNN kernels: avx512_core" : "oneDNN kernels: avx2";
  if (cpu.avx2) EXPECT_NE(native.output.find(expect), std::string::npos) << native.output;
  auto capped = run("ONEDNN_MAX_CPU_ISA=AVX2 " + cli() + " info --preset tiny");
  ASSERT_EQ(capped.status, 0) << capped.output;
  if (cpu.avx2) EXPECT_NE(capped.output.find("oneDNN kernels: avx2\n"), std::string::npos) << capped.output;
  // bf16 would be emulated under the cap, so auto does not time it there
  EXPECT_EQ(capped.output.find("fp32 against bf16"), std::string::npos) << capped.output;
  if (cpu.bf16_kernels()) EXPECT_NE(native.output.find("fp32 against bf16, channels-last"), std::string::npos) << native.output;
}

TEST(Cli, InitThenInfoOnTheFile) {
  test::TempDir dir;
  auto r = run(cli() + " init --preset tiny --modalities 3 --classes 4,2,3 --attention mifa -o " + (dir / "m.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto info = run(cli() + " info " + (dir / "m.safetensors"));
  ASSERT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("attention=mifa  modalities=3"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("(matches)"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("metadata drifa.seed: 0"), std::string::npos) << info.output;
}

TEST(Cli, TomlConfigAndOverrides) {
  test::TempDir dir;
  test::write_bytes(dir / "m.toml", "[model]\nmodalities = 4\nclasses = [4, 2, 3, 2]\n");
  auto r = run(cli() + " info --config " + (dir / "m.toml"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("107029107"), std::string::npos) << r.output;
  auto r34 = run(cli() + " info --config " + (dir / "m.toml") + " --widths resnet34 --image-size 64");
  ASSERT_EQ(r34.status, 0) << r34.output;
  EXPECT_NE(r34.output.find("(matches)"), std::string::npos) << r34.output;
}

TEST(Cli, BadInputsExitNonZeroWithAClearMessage) {
  test::TempDir dir;
  struct Case {
    std::string args, expect;
  };
  test::write_bytes(dir / "bad.toml", "[model]\nmodalities = \n");
  test::write_bytes(dir / "one.toml", "[model]\nmodalities = 1\n");
  test::write_bytes(dir / "junk.safetensors", "this is not a model");
  const Case cases[] = {
      {"info --modalities 1", "--modalities: found 1, allowed an integer from 2 to 64"},
      {"info --classes 5,x", "--classes: found 'x' in '5,x', allowed a comma-separated list of integers"},
      {"info --attention both", "attention: found \"both\", allowed none | mfa | mifa | drifa"},
      {"info --widths resnet50", "command line: widths: found \"resnet50\", allowed resnet18 | resnet34 | tiny"},
      {"info --preset huge", "--preset: found 'huge', allowed paper | four | tiny | demo"},
      {"info --config " + (dir / "bad.toml"), "bad.toml:2"},
      {"info --config " + (dir / "one.toml"), "one.toml: model.modalities: found 1, allowed an integer from 2 to 64"},
      {"info --config " + (dir / "missing.toml"), "cannot open config file"},
      {"info " + (dir / "junk.safetensors"), "junk.safetensors: not a valid safetensors file"},
      {"info " + (dir / "nothere.safetensors"), "nothere.safetensors: cannot open"},
  };
  for (const auto& c : cases) {
    auto r = run(cli() + " " + c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << " -> " << r.output;
    EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
  }
}

TEST(Cli, ExampleConfigsParse) {
  for (const char* f : {"skin-cervix.toml", "brain-mri-lung-ct.toml", "four-modality.toml", "paired.toml"}) {
    auto cfg = runs::RunConfig::from_toml(std::string(DRIFA_SOURCE_DIR) + "/examples/" + f);
    EXPECT_GE(cfg.data.paired ? cfg.data.paired_spec.image_columns.size() : cfg.data.modalities.size(), 2u) << f;
    EXPECT_EQ(cfg.data.image_size, 128) << f;
  }
}
