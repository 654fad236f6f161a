#include "drifa/uncertainty/mc_sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/runtime/autocast.h"

namespace drifa::uncertainty {

at::Generator pass_generator(uint64_t seed, int64_t id, int64_t pass) {
  return at::detail::createCPUGenerator(data::mix_seed(seed, 0x3C, static_cast<uint64_t>(id), static_cast<uint64_t>(pass)));
}

namespace {

struct ModeRestore {
  DRIFANet& net;
  Mode before;
  ~ModeRestore() { net->set_mode(before); }
};

}  // namespace

std::vector<torch::Tensor> mc_sample(DRIFANet& net, const std::vector<torch::Tensor>& inputs,
                                     const std::vector<int64_t>& ids, const MCOptions& opt) {
  if (opt.passes < 1) throw Error("Monte Carlo passes must be at least 1, got " + std::to_string(opt.passes));
  if (inputs.empty() || static_cast<int64_t>(ids.size()) != inputs[0].size(0))
    throw Error("mc_sample: one id per batch row is needed");
  const int64_t B = inputs[0].size(0), P = opt.passes;
  const size_t T = static_cast<size_t>(net->config().tasks());
  ModeRestore restore{net, net->mode()};
  net->set_mode(Mode::MCSample);
  torch::NoGradGuard no_grad;
  AutocastGuard ac(opt.bf16, inputs[0].device());

  std::vector<std::vector<torch::Tensor>> out(T);  // per task, per group [G, B, K]
  auto keep = [&](const ForwardResult& r, int64_t G) {
    for (size_t t = 0; t < T; ++t)
      out[t].push_back(torch::softmax(r.logits[t].to(torch::kFloat32), 1).view({G, B, -1}).cpu());
  };
  auto rngs_for = [&](int64_t first, int64_t G) {
    std::vector<at::Generator> g;
    g.reserve(static_cast<size_t>(G * B));
    for (int64_t p = first; p < first + G; ++p)  // pass-major, as repeat() lays the rows out
      for (int64_t b = 0; b < B; ++b) g.push_back(pass_generator(opt.seed, ids[static_cast<size_t>(b)], p));
    return g;
  };

  if (!opt.share_prefix) {
    for (int64_t p = 0; p < P; ++p) {
      ForwardOptions fo;
      fo.dropout_rngs = rngs_for(p, 1);
      keep(net->forward(inputs, fo), 1);
    }
  } else {
    const auto h = net->prefix(inputs);
    const int64_t per_call = std::max<int64_t>(1, std::min<int64_t>(P, opt.rows_per_call / std::max<int64_t>(B, 1)));
    for (int64_t first = 0; first < P; first += per_call) {
      const int64_t G = std::min(per_call, P - first);
      std::vector<torch::Tensor> hg;
      for (const auto& x : h) hg.push_back(G == 1 ? x : x.repeat({G, 1, 1, 1}));
      ForwardOptions fo;
      fo.dropout_rngs = rngs_for(first, G);
      keep(net->suffix(std::move(hg), fo), G);
    }
  }
  std::vector<torch::Tensor> res;
  for (auto& v : out) res.push_back(torch::cat(v, 0));
  return res;
}

}  // namespace drifa::uncertainty
