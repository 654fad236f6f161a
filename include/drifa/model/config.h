#pragma once
// ModelConfig: everything needed to build a DRIFA-Net (spec section 5).
// It travels inside every saved model (safetensors metadata), so a model file is self-describing.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace drifa {

// Which attention parts are present (spec section 5, ablations).
//   none  : plain multi-branch ResNet, fusion by concatenation only
//   mfa   : MFA inside every modality, no cross-modal MIFA
//   mifa  : MIFA after every stage, no MFA
//   drifa : both (the paper's network)
enum class Attention { None, MFA, MIFA, DRIFA };

std::string to_string(Attention a);
Attention parse_attention(const std::string& s);  // throws drifa::Error
inline bool has_mfa(Attention a) { return a == Attention::MFA || a == Attention::DRIFA; }
inline bool has_mifa(Attention a) { return a == Attention::MIFA || a == Attention::DRIFA; }

// Width presets: "resnet18" = 2x64,2x128,2x256,2x512; "resnet34" = 3x64,4x128,6x256,3x512;
// "tiny" = resnet18 divided by 8. Throws drifa::Error for an unknown name.
std::vector<int64_t> widths_preset(const std::string& name);

struct ModelConfig {
  int64_t modalities = 2;
  std::vector<int64_t> classes = {5, 7};  // one entry per task: classes of that task
  int64_t in_channels = 3;
  int64_t image_size = 128;               // input is image_size x image_size
  std::vector<int64_t> widths = {64, 64, 128, 128, 256, 256, 512, 512};
  double dropout = 0.25;
  // BN running-stat momentum (PyTorch convention). The spec's 0.01 (Keras 0.99) needs thousands of
  // steps for the running statistics to settle; short runs (the demo) use 0.1.
  double bn_momentum = 0.01;
  Attention attention = Attention::DRIFA;

  // Optional names; empty means "modality0..", "task0..", "0..K-1".
  std::vector<std::string> modality_names;
  std::vector<std::string> task_names;
  std::vector<std::vector<std::string>> class_names;

  int64_t tasks() const { return static_cast<int64_t>(classes.size()); }
  int64_t stages() const { return static_cast<int64_t>(widths.size()); }
  int64_t feature_dim() const { return modalities * widths.back(); }
  std::string modality_name(int64_t m) const;
  std::string task_name(int64_t t) const;
  std::string class_name(int64_t t, int64_t k) const;
  std::vector<std::string> task_class_names(int64_t t) const;  // class_name(t, k) for every k

  // Throws drifa::Error "SOURCE: KEY: found .., allowed .." for the first field out of its bounds
  // (settings::limits); source names where the configuration came from.
  void validate(const std::string& source = "model config", const std::string& prefix = "") const;

  nlohmann::json to_json() const;
  // Reads the keys present in j on top of base, through the settings validator (io/settings.h),
  // then validates the whole. source names the file (and key) the JSON came from.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source, const ModelConfig& base,
                               const std::string& prefix = "");
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "model config");  // on the defaults

  // The authors' configurations (spec section 5 table).
  static ModelConfig paper();          // 2 modalities, tasks 5 and 7, ResNet-18 widths
  static ModelConfig four_modality();  // 4 modalities, tasks 4,2,3,2
  // Ours, for tests and the demo.
  static ModelConfig tiny();  // the paper's tasks at widths "tiny" and 32 px: a second per epoch
  static ModelConfig demo();  // drifa synth's demo network: 2 x 3 classes, 64 px, widths 16..128, dropout 0.1, BN momentum 0.1
  // The named presets (CLI --preset, the benchmark, the tests): paper | four | tiny | demo.
  static ModelConfig preset(const std::string& name, const std::string& source = "--preset");
  static const std::vector<std::string>& preset_names();
};

}  // namespace drifa
