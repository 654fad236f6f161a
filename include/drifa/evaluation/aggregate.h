#pragma once
// Patient-level (group-level) predictions: one answer per group from its images' probabilities.
//   mean  the mean of the group's probability rows
//   max   per class the largest probability over the group's rows, renormalised to sum 1
//         (a lesion seen in any slice counts)
//   none  no group-level answer
// A group's label is its images' majority label (ties: the smallest), as in the splits.
#include <string>
#include <vector>

#include <torch/types.h>

namespace drifa::evaluation {

struct GroupPredictions {
  std::vector<std::string> groups;  // in order of first scored row; "" rows are their own (named "#ROW")
  torch::Tensor labels;             // [G] int64
  torch::Tensor probs;              // [G, K] or [S, G, K] for samples
  std::vector<int64_t> images;      // per group: scored rows
  int64_t mixed = 0;                // groups whose rows carry more than one label
};

// One group's rows combined by how ("mean" | "max", else drifa::Error): rows along dimension dim
// ([n, K] with dim 0, or samples [S, n, K] with dim 1), in their own dtype.
torch::Tensor combine_rows(const torch::Tensor& rows, int64_t dim, const std::string& how);

// labels [N] (rows of -1 skipped), probs [N, K] or samples [S, N, K]; groups one per row.
GroupPredictions aggregate_groups(const torch::Tensor& labels, const torch::Tensor& probs, const std::vector<std::string>& groups,
                                  const std::string& how);

}  // namespace drifa::evaluation
