#pragma once
// Seeded, stratified splits and the unpaired pairing of spec section 7.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace drifa::data {

// Stratified: each class contributes round(fraction * n_class) items to the held-out part
// (at least one when the class has two or more). Same seed, same split.
// Returns (kept, held_out) indices, each sorted.
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const std::vector<int64_t>& labels, double fraction,
                                                                      uint64_t seed);

// Groups (patients, lesions, volumes): items sharing a group string are one unit; "" = the item
// is its own group. Each group takes its majority label (ties: the smallest); `mixed` counts the
// groups whose items carry more than one label.
struct GroupIndex {
  std::vector<size_t> group_of;              // per item: its group's index
  std::vector<std::vector<size_t>> members;  // per group: its items, ascending (groups in order of first item)
  std::vector<int64_t> label;                // per group: the majority label
  size_t mixed = 0;
};
GroupIndex index_groups(const std::vector<int64_t>& labels, const std::vector<std::string>& groups);

// stratified_split over groups: within each majority label, the groups are shuffled (seeded) and
// taken into the held-out part while that brings its image count closer to round(fraction *
// images); at least one group when the label has two or more, never all of them. No group is in
// both parts. Returns (kept, held_out) item indices, each sorted.
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_group_split(const std::vector<int64_t>& labels,
                                                                            const std::vector<std::string>& groups,
                                                                            double fraction, uint64_t seed);

// Stratified group k-fold with scikit-learn's StratifiedGroupKFold(shuffle=True) rule: groups
// shuffled (seeded), ordered by the spread of their class counts (largest first), each placed in
// the fold that keeps the folds' class proportions closest (mean over classes of the standard
// deviation of fold_count / class_count), ties to the fold with fewer items. Throws when k
// exceeds the number of groups. Returns the fold of every item.
std::vector<int> stratified_group_folds(const std::vector<int64_t>& labels, const std::vector<std::string>& groups, int k,
                                        uint64_t seed);

// Training pairing for one epoch: every modality's index list is resampled to the common length
// L = max(sizes) (shuffled passes over its data, concatenated and cut at L) and paired by
// position. Re-drawn every epoch. Returns L tuples of M indices.
std::vector<std::vector<size_t>> epoch_pairing(const std::vector<size_t>& sizes, uint64_t seed, int64_t epoch);

// Class-balanced resampling: `length` indices into labels, the classes taking turns (so each
// class fills length / k slots, the remainder to classes drawn at random), each class's slots
// filled by shuffled passes over its members, the whole list shuffled. Labels of -1 are never drawn.
std::vector<size_t> balanced_order(const std::vector<int64_t>& labels, size_t length, uint64_t seed);

// The same pairing as epoch_pairing, every modality's column drawn by balanced_order over its labels.
std::vector<std::vector<size_t>> balanced_epoch_pairing(const std::vector<std::vector<int64_t>>& labels, uint64_t seed,
                                                        int64_t epoch);

// Stratified k-fold: each class's items shuffled (seeded) and dealt to the folds in turn, the
// folds' starting points rotating between classes so fold sizes differ by at most one.
// Returns the fold (0..k-1) of every item.
std::vector<int> stratified_folds(const std::vector<int64_t>& labels, int k, uint64_t seed);

// scikit-learn's compute_class_weight("balanced"): n / (k * n_c) over the labelled items
// (labels of -1 skipped); a class without items gets weight 0 (sklearn refuses such a class).
std::vector<double> balanced_class_weights(const std::vector<int64_t>& labels, int64_t classes);

// Evaluation pairing for the task of modality `anchor`: each of its sizes[anchor] samples exactly
// once, in order; partners from the other modalities drawn deterministically from the seed.
std::vector<std::vector<size_t>> eval_pairing(const std::vector<size_t>& sizes, size_t anchor, uint64_t seed);

// A well-mixed 64-bit seed from several numbers (splitmix64), so (seed, epoch, m) streams
// never overlap in practice.
uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0);

}  // namespace drifa::data
