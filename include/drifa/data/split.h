#pragma once
// Seeded, stratified splits and the unpaired pairing of spec section 7.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace drifa::data {

// Stratified: each class contributes round(fraction * n_class) items to the held-out part
// (at least one when the class has two or more). Same seed, same split.
// Returns (kept, held_out) indices, each sorted.
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const std::vector<int64_t>& labels, double fraction,
                                                                      uint64_t seed);

// Training pairing for one epoch: every modality's index list is resampled to the common length
// L = max(sizes) (shuffled passes over its data, concatenated and cut at L) and paired by
// position. Re-drawn every epoch. Returns L tuples of M indices.
std::vector<std::vector<size_t>> epoch_pairing(const std::vector<size_t>& sizes, uint64_t seed, int64_t epoch);

// Evaluation pairing for the task of modality `anchor`: each of its sizes[anchor] samples exactly
// once, in order; partners from the other modalities drawn deterministically from the seed.
std::vector<std::vector<size_t>> eval_pairing(const std::vector<size_t>& sizes, size_t anchor, uint64_t seed);

// A well-mixed 64-bit seed from several numbers (splitmix64), so (seed, epoch, m) streams
// never overlap in practice.
uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0);

}  // namespace drifa::data
