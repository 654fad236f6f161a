#include "drifa/model/summary.h"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "drifa/error.h"
#include "drifa/model/branch.h"
#include "drifa/runtime/memory.h"

namespace drifa {

namespace {

int64_t conv_out(int64_t size, int64_t k, int64_t s, int64_t p) { return (size + 2 * p - k) / s + 1; }

// MFA on C channels at spatial size hw (H*W): parameters and MACs (1x1 convs + fc).
int64_t mfa_params(int64_t c) { return 8 * c * c + 9 * c + 1; }
int64_t mfa_macs(int64_t c, int64_t hw) {
  // hifa conv1..4 + clia conv1 at full resolution, clia conv2 at 1x1, fc 2C->C
  return 5 * c * c * hw + c * c + 2 * c * c;
}
int64_t conv_params(int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; }
int64_t conv_macs(int64_t in, int64_t out, int64_t k, int64_t out_hw) { return in * out * k * k * out_hw; }

}  // namespace

int64_t estimate_memory_bytes(const ModelConfig& cfg, int64_t batch, bool training) {
  const auto s = summarize(cfg);  // bounded configurations: no int64 overflow below
  const bool attention = cfg.attention != Attention::None;
  const double params = double(s.total_params) * 4.0 * (training ? 4.0 : 1.0);
  double kept = 0, largest = 0;
  for (const auto& st : s.stages) {
    const double side = st.index < 0 ? 2.0 * double(st.out_size) : double(st.out_size);  // the stem's conv runs before its pool
    const double map = double(batch) * double(cfg.modalities) * double(st.out_channels) * side * side * 4.0;
    kept += map * (attention ? 40.0 : 12.0);
    largest = std::max(largest, map);
  }
  const double total = params + (training ? kept : 4.0 * largest);
  return total > 9e18 ? int64_t(9e18) : static_cast<int64_t>(total);
}

void check_fits_in_memory(const ModelConfig& cfg, int64_t batch, bool training, const std::string& source) {
  const int64_t need = estimate_memory_bytes(cfg, batch, training);
  const int64_t have = available_memory_bytes();
  if (have > 0 && need > have) {
    auto gb = [](int64_t b) {
      std::ostringstream o;
      o << std::fixed << std::setprecision(1) << double(b) / double(1ll << 30) << " GiB";
      return o.str();
    };
    throw Error(source + ": this model (widths " + std::to_string(cfg.widths.front()) + ".." + std::to_string(cfg.widths.back()) +
                ", " + std::to_string(cfg.stages()) + " stages, " + std::to_string(cfg.image_size) + " px, " +
                std::to_string(summarize(cfg).total_params) + " parameters) needs about " + gb(need) + " for " +
                (training ? "a training step" : "a forward pass") + " of " + std::to_string(batch) +
                " sample(s); this machine has " + gb(have) + " available");
  }
}

ModelSummary summarize(const ModelConfig& cfg) {
  cfg.validate();
  ModelSummary s;
  s.config = cfg;
  const int64_t M = cfg.modalities;
  const bool mfa = has_mfa(cfg.attention), mifa = has_mifa(cfg.attention);

  // Stem
  int64_t size = conv_out(cfg.image_size, 7, 2, 3);
  const int64_t w0 = cfg.widths[0];
  StageSummary stem{-1, cfg.in_channels, w0, 2, 0, 0, 0};
  stem.params = conv_params(cfg.in_channels, w0, 7) + 2 * w0 + (mfa ? mfa_params(w0) : 0);
  stem.macs = conv_macs(cfg.in_channels, w0, 7, size * size) + (mfa ? mfa_macs(w0, size * size) : 0);
  size = conv_out(size, 3, 2, 1);  // max-pool
  stem.out_size = size;
  stem.params *= M;
  stem.macs *= M;
  s.stages.push_back(stem);

  const int64_t n = cfg.stages();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t in = i == 0 ? w0 : cfg.widths[i - 1], out = cfg.widths[i];
    const int64_t stride = stage_stride(cfg.widths, i);
    size = conv_out(size, 3, stride, 1);
    const int64_t hw = size * size;
    StageSummary st{i, in, out, stride, size, 0, 0};
    st.params = conv_params(in, out, 3) + conv_params(out, out, 3) + 4 * out;
    st.macs = conv_macs(in, out, 3, hw) + conv_macs(out, out, 3, hw);
    if (mfa) {
      const int64_t k = i < n - 1 ? 3 : 2;  // mfa1, mfa2 and the post-block MFA
      st.params += k * mfa_params(out);
      st.macs += k * mfa_macs(out, hw);
    }
    if (stride != 1 || in != out) {
      st.params += conv_params(in, out, 1) + 2 * out;
      st.macs += conv_macs(in, out, 1, hw);
    }
    st.params *= M;
    st.macs *= M;
    if (mifa) {
      st.params += (out * out + out) + M * (out * out + out) + 1 + out + M * out;
      st.macs += 3 * out * out + M * out * out * hw;
    }
    s.stages.push_back(st);
  }
  for (auto k : cfg.classes) {
    s.head_params += cfg.feature_dim() * k + k;
    s.total_macs += cfg.feature_dim() * k;
  }
  s.total_params = s.head_params;
  for (const auto& st : s.stages) {
    s.total_params += st.params;
    s.total_macs += st.macs;
  }
  return s;
}

std::string format_summary(const ModelSummary& s) {
  const auto& c = s.config;
  std::ostringstream o;
  o << "DRIFA-Net  attention=" << to_string(c.attention) << "  modalities=" << c.modalities
    << "  input=" << c.in_channels << "x" << c.image_size << "x" << c.image_size << "  dropout=" << c.dropout << "\n";
  o << "tasks:";
  for (int64_t t = 0; t < c.tasks(); ++t) o << " " << c.task_name(t) << "(" << c.classes[t] << ")";
  o << "\nmodalities:";
  for (int64_t m = 0; m < c.modalities; ++m) o << " " << c.modality_name(m);
  o << "\n\n";
  o << std::left << std::setw(8) << "stage" << std::right << std::setw(10) << "in->out" << std::setw(8) << "stride"
    << std::setw(10) << "output" << std::setw(14) << "params" << std::setw(16) << "MACs/sample" << "\n";
  for (const auto& st : s.stages) {
    std::string name = st.index < 0 ? "stem" : std::to_string(st.index);
    std::string io = std::to_string(st.in_channels) + "->" + std::to_string(st.out_channels);
    std::string out = std::to_string(st.out_size) + "x" + std::to_string(st.out_size);
    o << std::left << std::setw(8) << name << std::right << std::setw(10) << io << std::setw(8) << st.stride
      << std::setw(10) << out << std::setw(14) << st.params << std::setw(16) << st.macs << "\n";
  }
  o << std::left << std::setw(36) << "heads" << std::right << std::setw(14) << s.head_params << "\n\n";
  o << "parameters (trainable): " << s.total_params << "\n";
  o << "multiply-accumulates per sample (conv + linear): " << s.total_macs << " ("
    << std::fixed << std::setprecision(2) << s.gmac() << " GMAC)\n";
  o << "(each stage row: all modalities' branches plus that stage's MIFA fusion)\n";
  return o.str();
}

}  // namespace drifa
