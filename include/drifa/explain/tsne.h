#pragma once
// Exact t-SNE (van der Maaten & Hinton, 2008) on tensors, for the paper's Fig. 5: no C++ t-SNE
// library is packaged in Debian. It follows scikit-learn's TSNE(method="exact") step for step:
// perplexity-calibrated Gaussian affinities (binary search on the precision), symmetric joint P,
// Student-t Q with one degree of freedom, PCA initialisation scaled to std 1e-4, early
// exaggeration 12 for 250 iterations at momentum 0.5, then momentum 0.8, per-coordinate gains,
// learning rate "auto" = max(N / 12 / 4, 50).
#include <cstdint>

#include <torch/types.h>

namespace drifa::explain {

struct TSNEOptions {
  double perplexity = 30;
  int iterations = 1000;
  double early_exaggeration = 12;
  int exaggeration_iterations = 250;
  double learning_rate = 0;  // 0: "auto"
  bool pca_init = true;      // false: random normal (std 1e-4) from seed
  uint64_t seed = 0;
  double min_grad_norm = 1e-7;
};

struct TSNEResult {
  torch::Tensor embedding;  // [N, 2] float64
  double kl_divergence = 0;
  int iterations = 0;
};

// x: [N, D] features with N - 1 > perplexity (throws drifa::Error otherwise).
TSNEResult tsne(const torch::Tensor& x, const TSNEOptions& opt = {});

// scikit-learn's trustworthiness(X, Y, n_neighbors): how well the k nearest neighbours in the
// embedding were neighbours in the input (1 = perfectly). Euclidean in both spaces.
double trustworthiness(const torch::Tensor& x, const torch::Tensor& y, int64_t k = 5);

}  // namespace drifa::explain
