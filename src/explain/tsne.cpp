#include "drifa/explain/tsne.h"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "drifa/error.h"

namespace drifa::explain {

namespace {

constexpr double kMachineEps = std::numeric_limits<double>::epsilon();

torch::Tensor squared_distances(const torch::Tensor& x) {
  auto sq = x.pow(2).sum(1, true);
  return (sq + sq.t() - 2 * x.mm(x.t())).clamp_min(0).fill_diagonal_(0);
}

// Row-conditional P with each row's entropy equal to log(perplexity) (scikit-learn's
// _binary_search_perplexity: 100 steps, tolerance 1e-5).
torch::Tensor conditional_p(const torch::Tensor& d2, double perplexity) {
  const int64_t n = d2.size(0);
  auto P = torch::zeros_like(d2);
  auto d = d2.accessor<double, 2>();
  auto p = P.accessor<double, 2>();
  const double desired = std::log(perplexity);
  std::vector<double> row(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double beta = 1, lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    for (int step = 0; step < 100; ++step) {
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        row[static_cast<size_t>(j)] = j == i ? 0.0 : std::exp(-d[i][j] * beta);
        sum += row[static_cast<size_t>(j)];
      }
      if (sum == 0) sum = 1e-8;
      double hsum = 0;
      for (int64_t j = 0; j < n; ++j) {
        row[static_cast<size_t>(j)] /= sum;
        hsum += d[i][j] * row[static_cast<size_t>(j)];
      }
      const double diff = std::log(sum) + beta * hsum - desired;
      if (std::abs(diff) <= 1e-5) break;
      if (diff > 0) {
        lo = beta;
        beta = std::isinf(hi) ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = std::isinf(lo) ? beta / 2 : (beta + lo) / 2;
      }
    }
    for (int64_t j = 0; j < n; ++j) p[i][j] = row[static_cast<size_t>(j)];
  }
  return P;
}

torch::Tensor pca_2d(const torch::Tensor& x) {
  auto xc = x - x.mean(0, true);
  auto cov = xc.t().mm(xc) / std::max<int64_t>(x.size(0) - 1, 1);
  auto eig = at::linalg_eigh(cov, "L");
  auto vecs = std::get<1>(eig);  // ascending eigenvalues
  const int64_t D = vecs.size(1);
  auto top = torch::stack({vecs.select(1, D - 1), vecs.select(1, D - 2)}, 1);  // [D, 2]
  // Deterministic sign: the largest-magnitude loading of each component is positive.
  auto idx = top.abs().argmax(0);
  auto sign = top.gather(0, idx.view({1, 2})).sign();
  sign = torch::where(sign == 0, torch::ones_like(sign), sign);
  return xc.mm(top * sign);
}

}  // namespace

TSNEResult tsne(const torch::Tensor& features, const TSNEOptions& opt) {
  if (features.dim() != 2) throw Error("t-SNE: features must be [N, D]");
  auto x = features.to(torch::kFloat64).cpu().contiguous();
  const int64_t n = x.size(0);
  if (!(opt.perplexity > 0) || double(n - 1) <= opt.perplexity)
    throw Error("t-SNE: perplexity " + std::to_string(opt.perplexity) + " needs more than " +
                std::to_string(static_cast<int64_t>(opt.perplexity) + 1) + " samples, got " + std::to_string(n) +
                "; lower --perplexity");
  if (!torch::isfinite(x).all().item<bool>()) throw Error("t-SNE: the features contain NaN or infinity");

  auto P = conditional_p(squared_distances(x), opt.perplexity);
  P = P + P.t();
  P = (P / std::max(P.sum().item<double>(), kMachineEps)).clamp_min(kMachineEps).fill_diagonal_(0);

  torch::Tensor y;
  if (opt.pca_init) {
    y = pca_2d(x);
    const double s = y.select(1, 0).std(/*unbiased=*/false).item<double>();
    y = y / (s > 0 ? s : 1.0) * 1e-4;
  } else {
    auto gen = at::detail::createCPUGenerator(opt.seed);
    y = at::randn({n, 2}, gen, torch::TensorOptions().dtype(torch::kFloat64)) * 1e-4;
  }
  const double lr = opt.learning_rate > 0 ? opt.learning_rate : std::max(double(n) / opt.early_exaggeration / 4.0, 50.0);
  auto update = torch::zeros_like(y), gains = torch::ones_like(y);
  TSNEResult r;
  auto step = [&](const torch::Tensor& Pcur, double momentum, int from, int to) {
    for (int it = from; it < to; ++it) {
      auto num = (1.0 + squared_distances(y)).reciprocal().fill_diagonal_(0);  // Student-t, dof 1
      auto Q = (num / num.sum()).clamp_min(kMachineEps);
      auto W = (Pcur - Q) * num;
      W.fill_diagonal_(0);
      auto grad = 4.0 * (W.sum(1, true) * y - W.mm(y));
      r.iterations = it + 1;
      const double gnorm = grad.norm().item<double>();
      auto inc = (update * grad) < 0;
      gains = torch::where(inc, gains + 0.2, gains * 0.8).clamp_min(0.01);
      update = momentum * update - lr * (gains * grad);
      y = y + update;
      if (gnorm < opt.min_grad_norm) return true;
    }
    return false;
  };
  const int explore = std::min(opt.exaggeration_iterations, opt.iterations);
  bool done = step(P * opt.early_exaggeration, 0.5, 0, explore);
  if (!done) step(P, 0.8, explore, opt.iterations);
  auto num = (1.0 + squared_distances(y)).reciprocal().fill_diagonal_(0);
  auto Q = (num / num.sum()).clamp_min(kMachineEps);
  auto Pd = P.clamp_min(kMachineEps);
  r.kl_divergence = (P * (Pd / Q).log()).sum().item<double>();
  r.embedding = y;
  return r;
}

double trustworthiness(const torch::Tensor& x_in, const torch::Tensor& y_in, int64_t k) {
  auto x = x_in.to(torch::kFloat64).cpu(), y = y_in.to(torch::kFloat64).cpu();
  const int64_t n = x.size(0);
  if (y.size(0) != n) throw Error("trustworthiness: X and Y have different numbers of rows");
  if (k < 1 || 2 * k >= n) throw Error("trustworthiness: n_neighbors must be >= 1 and < n / 2 (scikit-learn), got " + std::to_string(k) + " for " + std::to_string(n) + " samples");
  auto dx = squared_distances(x);
  dx.fill_diagonal_(std::numeric_limits<double>::infinity());
  // Input-space rank of every j for every i (1 = nearest); stable order as numpy's argsort.
  auto order = std::get<1>(dx.sort(/*stable=*/true, 1, false));
  auto ranks = torch::empty_like(order);
  ranks.scatter_(1, order, torch::arange(1, n + 1, torch::kLong).expand({n, n}).contiguous());
  auto dy = squared_distances(y);
  dy.fill_diagonal_(std::numeric_limits<double>::infinity());
  auto nn_y = std::get<1>(dy.sort(/*stable=*/true, 1, false)).narrow(1, 0, k);
  auto r = ranks.gather(1, nn_y) - k;
  const double t = r.clamp_min(0).sum().item<double>();
  return 1.0 - t * (2.0 / (double(n) * double(k) * (2.0 * double(n) - 3.0 * double(k) - 1.0)));
}

}  // namespace drifa::explain
