#include "drifa/inference/mc_sampler.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/runtime/autocast.h"

namespace drifa::inference {

at::Generator pass_generator(uint64_t seed, int64_t id, int64_t pass) {
  return at::detail::createCPUGenerator(data::mix_seed(seed, 0x3C, static_cast<uint64_t>(id), static_cast<uint64_t>(pass)));
}

namespace {

// MCSample mode, no autograd and the requested autocast for the life of the object.
struct Sampling {
  Sampling(DRIFANet& n, const MCOptions& opt, torch::Device device) : passes(checked(opt.passes)), mode(n, Mode::MCSample), ac(opt.bf16, device) {}
  static int checked(int passes) {
    if (passes < 1) throw Error("Monte Carlo passes must be at least 1, got " + std::to_string(passes));
    return passes;
  }
  int passes;
  ModeGuard mode;
  torch::NoGradGuard no_grad;
  AutocastGuard ac;
};

// Generators for passes first .. first+G-1 of every row, pass-major (as repeat() lays rows out).
std::vector<at::Generator> pass_generators(const MCOptions& opt, const std::vector<int64_t>& ids, int64_t first, int64_t G) {
  std::vector<at::Generator> g;
  g.reserve(static_cast<size_t>(G) * ids.size());
  for (int64_t p = first; p < first + G; ++p)
    for (auto id : ids) g.push_back(pass_generator(opt.seed, id, p));
  return g;
}

// Appends each task's softmax of a call covering G passes of B rows, as [G, B, K].
void keep(std::vector<std::vector<torch::Tensor>>& out, const ForwardResult& r, int64_t G, int64_t B) {
  for (size_t t = 0; t < out.size(); ++t)
    out[t].push_back(torch::softmax(r.logits[t].to(torch::kFloat32), 1).view({G, B, -1}).cpu());
}

std::vector<torch::Tensor> concat(std::vector<std::vector<torch::Tensor>>& out) {
  std::vector<torch::Tensor> res;
  for (auto& v : out) res.push_back(torch::cat(v, 0));
  return res;
}

// The first present modality (absent ones are undefined tensors).
const torch::Tensor& present(const std::vector<torch::Tensor>& x) {
  for (const auto& t : x)
    if (t.defined()) return t;
  throw Error("mc_sample: every modality is absent");
}

void check_ids(const std::vector<torch::Tensor>& x, const std::vector<int64_t>& ids) {
  if (static_cast<int64_t>(ids.size()) != present(x).size(0)) throw Error("mc_sample: one id per batch row is needed");
}

}  // namespace

std::vector<torch::Tensor> mc_sample_from_prefix(DRIFANet& net, const std::vector<torch::Tensor>& prefix,
                                                 const std::vector<int64_t>& ids, const MCOptions& opt) {
  check_ids(prefix, ids);
  Sampling session(net, opt, present(prefix).device());
  const int64_t B = present(prefix).size(0), P = opt.passes;
  std::vector<std::vector<torch::Tensor>> out(static_cast<size_t>(net->config().tasks()));
  const int64_t per_call = std::max<int64_t>(1, std::min<int64_t>(P, opt.rows_per_call / std::max<int64_t>(B, 1)));
  for (int64_t first = 0; first < P; first += per_call) {
    const int64_t G = std::min(per_call, P - first);
    std::vector<torch::Tensor> hg;
    for (const auto& x : prefix) hg.push_back(G == 1 || !x.defined() ? x : x.repeat({G, 1, 1, 1}));
    ForwardOptions fo;
    fo.dropout_rngs = pass_generators(opt, ids, first, G);
    keep(out, net->suffix(std::move(hg), fo), G, B);
  }
  return concat(out);
}

std::vector<torch::Tensor> mc_sample(DRIFANet& net, const std::vector<torch::Tensor>& inputs,
                                     const std::vector<int64_t>& ids, const MCOptions& opt) {
  check_ids(inputs, ids);
  Sampling session(net, opt, present(inputs).device());
  if (opt.share_prefix) return mc_sample_from_prefix(net, net->prefix(inputs), ids, opt);
  std::vector<std::vector<torch::Tensor>> out(static_cast<size_t>(net->config().tasks()));
  for (int64_t p = 0; p < opt.passes; ++p) {
    ForwardOptions fo;
    fo.dropout_rngs = pass_generators(opt, ids, p, 1);
    keep(out, net->forward(inputs, fo), 1, present(inputs).size(0));
  }
  return concat(out);
}

}  // namespace drifa::inference
