#include "drifa/evaluation/aggregate.h"

#include <torch/torch.h>

#include "drifa/data/split.h"
#include "drifa/error.h"

namespace drifa::evaluation {

torch::Tensor combine_rows(const torch::Tensor& rows, int64_t dim, const std::string& how) {
  if (how == "mean") return rows.mean(dim);
  if (how != "max") throw Error("aggregate: found '" + how + "', allowed mean or max");
  const auto top = std::get<0>(rows.max(dim));
  return top / top.sum(-1, true);
}

GroupPredictions aggregate_groups(const torch::Tensor& labels, const torch::Tensor& probs, const std::vector<std::string>& groups,
                                  const std::string& how) {
  if (how != "mean" && how != "max") throw Error("aggregate: found '" + how + "', allowed mean or max");
  const auto y = labels.to(torch::kLong).contiguous();
  const int64_t N = y.size(0);
  if (groups.size() != static_cast<size_t>(N)) throw Error("aggregate: need one group per row");
  const bool samples = probs.dim() == 3;
  const auto p = probs.to(torch::kFloat64);
  std::vector<int64_t> rows, kept;
  std::vector<std::string> kept_groups;
  for (int64_t i = 0; i < N; ++i)
    if (y.data_ptr<int64_t>()[i] >= 0) {
      rows.push_back(i);
      kept.push_back(y.data_ptr<int64_t>()[i]);
      kept_groups.push_back(groups[static_cast<size_t>(i)]);
    }
  const auto gi = data::index_groups(kept, kept_groups);
  GroupPredictions out;
  out.mixed = static_cast<int64_t>(gi.mixed);
  std::vector<torch::Tensor> parts;
  for (size_t g = 0; g < gi.members.size(); ++g) {
    std::vector<int64_t> idx;
    for (auto j : gi.members[g]) idx.push_back(rows[j]);
    const auto first = gi.members[g].front();
    out.groups.push_back(kept_groups[first].empty() ? "#" + std::to_string(rows[first]) : kept_groups[first]);
    out.images.push_back(static_cast<int64_t>(idx.size()));
    const auto at = torch::tensor(idx, torch::kLong);
    const auto sel = samples ? p.index_select(1, at) : p.index_select(0, at);  // [S, n, K] | [n, K]
    parts.push_back(combine_rows(sel, samples ? 1 : 0, how));
  }
  out.labels = torch::tensor(gi.label, torch::kLong);
  out.probs = parts.empty() ? (samples ? torch::zeros({p.size(0), 0, p.size(2)}) : torch::zeros({0, p.size(1)}))
                            : torch::stack(parts, samples ? 1 : 0).to(torch::kFloat32);
  return out;
}

}  // namespace drifa::evaluation
