#pragma once
// Grad-CAM (Selvaraju et al.; the paper's Fig. 4) on DRIFA-Net: for modality m, task t, class c
// and stage i, with A = the stage's output for modality m (after fusion, from
// ForwardResult::stages), weights w_k = mean_HW d logit_{t,c} / d A_k and
// map = ReLU(sum_k w_k A_k), upsampled bilinearly to the input size.
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include "drifa/model/drifa_net.h"

namespace drifa::explain {

struct GradCAMOptions {
  int64_t modality = 0;
  int64_t task = 0;
  int64_t target_class = -1;  // -1: the predicted class of each sample
  int64_t stage = -1;         // -1: the last stage
};

struct GradCAM {
  torch::Tensor map;           // [B, H, W] at the input size, each scaled to [0, 1] (all 0 when the map is 0)
  torch::Tensor raw;           // [B, h, w] at the stage's resolution, unscaled
  torch::Tensor target_class;  // [B] the class explained
  torch::Tensor probs;         // [B, K_t] deterministic probabilities of the task
};

// Runs the model in Eval mode (restoring its mode). inputs on the model's device.
GradCAM grad_cam(DRIFANet& net, const std::vector<torch::Tensor>& inputs, const GradCAMOptions& opt);

// How well a map points at a known lesion (mask: [H, W], nonzero inside).
struct LesionScore {
  double energy_inside = 0;  // share of the map's sum that falls inside the lesion
  double uniform = 0;        // the same for a uniform map: the lesion's area share
  bool pointing_hit = false;  // the map's maximum lies inside the lesion
};
LesionScore lesion_score(const torch::Tensor& map, const torch::Tensor& mask);

// The map coloured (OpenCV's JET) and blended over an image (CV_32FC1/3 in [0, 1], any size;
// the map is resized to it). Returns 8-bit BGR.
cv::Mat overlay(const cv::Mat& image, const torch::Tensor& map, double alpha = 0.45);

}  // namespace drifa::explain
