// Export from C++, load into the PyTorch port of the spec (Debian python3-torch), compare logits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "drifa/drifa.h"
#include "test_helpers.h"

using namespace drifa;

namespace {

struct Case {
  int64_t modalities;
  std::vector<int64_t> classes;
  Attention attention;
  int64_t in_channels, image_size;
  int64_t absent = -1;  // >= 0: this modality is absent (no input), and a per-sample mask is checked too
};

double crosscheck(const Case& k) {
  test::TempDir dir;
  ModelConfig c;
  c.modalities = k.modalities;
  c.classes = k.classes;
  c.attention = k.attention;
  c.in_channels = k.in_channels;
  c.image_size = k.image_size;
  c.widths = widths_preset("tiny");
  torch::manual_seed(42 + k.modalities);
  DRIFANet net(c);
  {
    // Non-trivial scales, alphas and BN statistics, so every tensor matters.
    torch::NoGradGuard ng;
    for (auto& [n, t] : runs::model_state(*net)) {
      if (n.find("running_var") != std::string::npos || n.find("scale") != std::string::npos ||
          n.find("alpha") != std::string::npos)
        t.copy_(torch::rand_like(t) + 0.5);
      else if (n.find("running_mean") != std::string::npos || n.find("bias") != std::string::npos)
        t.copy_(torch::randn_like(t) * 0.1);
    }
  }
  net->set_mode(Mode::Eval);
  io::NamedTensors ioset;
  std::vector<torch::Tensor> xs;
  for (int64_t m = 0; m < c.modalities; ++m) {
    if (m == k.absent) {
      xs.emplace_back();
      continue;
    }
    xs.push_back(torch::rand({3, c.in_channels, c.image_size, c.image_size}));
    ioset.emplace_back("x" + std::to_string(m), xs.back());
  }
  torch::NoGradGuard ng;
  auto r = net->forward(xs);
  for (size_t t = 0; t < r.logits.size(); ++t) ioset.emplace_back("logits" + std::to_string(t), r.logits[t]);
  if (k.absent >= 0) {
    // Per sample: row 0 has everything present, rows 1 and 2 lose one more modality each.
    ForwardOptions fo;
    fo.presence = torch::ones({3, c.modalities});
    fo.presence[1][(k.absent + 1) % c.modalities] = 0;
    fo.presence[2][(k.absent + c.modalities - 1) % c.modalities] = 0;
    ioset.emplace_back("presence", fo.presence);
    const auto masked = net->forward(xs, fo);
    for (size_t t = 0; t < masked.logits.size(); ++t) ioset.emplace_back("masked" + std::to_string(t), masked.logits[t]);
  }
  runs::save_model(net, dir / "model.safetensors");
  io::save_safetensors(dir / "io.safetensors", ioset);
  auto res = test::run(std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/crosscheck.py " +
                       (dir / "model.safetensors") + " " + (dir / "io.safetensors"));
  EXPECT_EQ(res.status, 0) << res.output;
  auto pos = res.output.find("max_abs_diff=");
  if (pos == std::string::npos) {
    ADD_FAILURE() << "no result from the Python peer: " << res.output;
    return 1e9;
  }
  std::cout << "[crosscheck] M=" << k.modalities << " " << to_string(k.attention)
            << (k.absent >= 0 ? " absent " + std::to_string(k.absent) : std::string()) << ": " << res.output;
  return std::stod(res.output.substr(pos + 13));
}

}  // namespace

TEST(CrossCheck, PyTorchPortGivesTheSameLogits) {
  const Case cases[] = {
      {2, {5, 7}, Attention::DRIFA, 3, 32},
      {3, {4, 2, 3}, Attention::DRIFA, 3, 48},
      {4, {4, 2, 3, 2}, Attention::MIFA, 1, 32},
      {2, {3}, Attention::MFA, 3, 32},
      {2, {2, 2}, Attention::None, 3, 40},
      // Absent modalities: skipped branch, MIFA over the present ones, zeros to the head.
      {3, {4, 2, 3}, Attention::DRIFA, 3, 32, 1},
      {2, {5, 7}, Attention::MIFA, 3, 32, 0},
  };
  for (const auto& k : cases) EXPECT_LE(crosscheck(k), 1e-4) << "M=" << k.modalities << " " << to_string(k.attention);
}
