#include "drifa/explain/gradcam.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "drifa/error.h"
#include "drifa/inference/inferer.h"

namespace drifa::explain {

GradCAM grad_cam(DRIFANet& net, const std::vector<torch::Tensor>& inputs, const GradCAMOptions& opt) {
  const auto& cfg = net->config();
  if (opt.modality < 0 || opt.modality >= cfg.modalities)
    throw Error("Grad-CAM: modality " + std::to_string(opt.modality) + " out of range (the model has " +
                std::to_string(cfg.modalities) + ")");
  if (opt.task < 0 || opt.task >= cfg.tasks())
    throw Error("Grad-CAM: task " + std::to_string(opt.task) + " out of range (the model has " + std::to_string(cfg.tasks()) + ")");
  const int64_t stage = opt.stage < 0 ? cfg.stages() - 1 : opt.stage;
  if (stage >= cfg.stages())
    throw Error("Grad-CAM: stage " + std::to_string(opt.stage) + " out of range (the model has " + std::to_string(cfg.stages()) + ")");
  if (opt.target_class >= cfg.classes[opt.task])
    throw Error("Grad-CAM: class " + std::to_string(opt.target_class) + " out of range for task " + cfg.task_name(opt.task));

  if (!inputs.at(static_cast<size_t>(opt.modality)).defined())
    throw Error("Grad-CAM: modality " + cfg.modality_name(opt.modality) + " is absent; there is no map to explain");
  torch::AutoGradMode grad_on(true);
  torch::Device device = torch::kCPU;
  for (const auto& x : inputs)
    if (x.defined()) device = x.device();
  const ForwardResult r = inference::Inferer(net, {device}).with_stages(inputs);
  const auto& A = r.stages[static_cast<size_t>(stage)][static_cast<size_t>(opt.modality)];
  auto logits = r.logits[static_cast<size_t>(opt.task)];
  GradCAM g;
  g.probs = torch::softmax(logits.detach().to(torch::kFloat32), 1).cpu();
  g.target_class = opt.target_class < 0 ? g.probs.argmax(1)
                                        : torch::full({logits.size(0)}, opt.target_class, torch::kLong);
  auto score = logits.gather(1, g.target_class.to(logits.device()).view({-1, 1})).sum();
  auto grad = torch::autograd::grad({score}, {A})[0];
  auto w = grad.mean({2, 3}, /*keepdim=*/true);
  auto cam = torch::relu((w * A).sum(1)).detach().to(torch::kFloat32);  // [B, h, w]
  g.raw = cam.cpu();
  auto up = torch::nn::functional::interpolate(
                cam.unsqueeze(1), torch::nn::functional::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{inputs[static_cast<size_t>(opt.modality)].size(2), inputs[static_cast<size_t>(opt.modality)].size(3)})
                                      .mode(torch::kBilinear)
                                      .align_corners(false))
                .squeeze(1)
                .clamp_min(0);
  auto peak = up.amax({1, 2}, true);
  g.map = torch::where(peak > 0, up / peak.clamp_min(1e-30), torch::zeros_like(up)).cpu();
  return g;
}

LesionScore lesion_score(const torch::Tensor& map, const torch::Tensor& mask) {
  if (map.sizes() != mask.sizes()) throw Error("lesion_score: map and mask sizes differ");
  auto inside = mask.ne(0);
  LesionScore s;
  const double total = map.sum().item<double>();
  s.uniform = inside.to(torch::kFloat64).mean().item<double>();
  s.energy_inside = total > 0 ? map.masked_select(inside).sum().item<double>() / total : s.uniform;
  s.pointing_hit = total > 0 && inside.flatten()[map.flatten().argmax()].item<bool>();
  return s;
}

cv::Mat overlay(const cv::Mat& image, const torch::Tensor& map, double alpha) {
  auto m = map.to(torch::kFloat32).contiguous().cpu();
  cv::Mat small(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_32F, m.data_ptr<float>());
  cv::Mat resized, heat8, heat;
  cv::resize(small, resized, image.size(), 0, 0, cv::INTER_LINEAR);
  resized.convertTo(heat8, CV_8U, 255.0);
  cv::applyColorMap(heat8, heat, cv::COLORMAP_JET);
  cv::Mat base8, base;
  image.convertTo(base8, CV_8U, 255.0);
  if (base8.channels() == 1) cv::cvtColor(base8, base, cv::COLOR_GRAY2BGR);
  else cv::cvtColor(base8, base, cv::COLOR_RGB2BGR);
  cv::Mat out;
  cv::addWeighted(base, 1.0 - alpha, heat, alpha, 0.0, out);
  return out;
}

}  // namespace drifa::explain
