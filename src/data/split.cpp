#include "drifa/data/split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

namespace drifa::data {

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  auto sm = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  };
  return sm(sm(sm(sm(a) ^ b) ^ c) ^ d);
}

std::pair<std::vector<size_t>, std::vector<size_t>> stratified_split(const std::vector<int64_t>& labels, double fraction,
                                                                      uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
  std::vector<size_t> keep, held;
  for (auto& [k, idx] : by_class) {
    std::mt19937_64 rng(mix_seed(seed, 0x5711, static_cast<uint64_t>(k)));
    std::shuffle(idx.begin(), idx.end(), rng);
    size_t n = static_cast<size_t>(std::llround(fraction * static_cast<double>(idx.size())));
    if (fraction > 0 && n == 0 && idx.size() >= 2) n = 1;
    if (n >= idx.size() && idx.size() >= 1) n = idx.size() - 1;  // never empty a class in the kept part
    held.insert(held.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n));
    keep.insert(keep.end(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end());
  }
  std::sort(keep.begin(), keep.end());
  std::sort(held.begin(), held.end());
  return {keep, held};
}

namespace {
std::vector<size_t> resample(size_t n, size_t length, std::mt19937_64& rng) {
  std::vector<size_t> out;
  out.reserve(length + n);
  std::vector<size_t> perm(n);
  while (out.size() < length) {
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    out.insert(out.end(), perm.begin(), perm.end());
  }
  out.resize(length);
  return out;
}
}  // namespace

namespace {
// Per-modality index columns of one length -> tuples of one index per modality, by position.
std::vector<std::vector<size_t>> pair_columns(const std::vector<std::vector<size_t>>& cols) {
  const size_t L = cols.empty() ? 0 : cols[0].size();
  std::vector<std::vector<size_t>> out(L, std::vector<size_t>(cols.size()));
  for (size_t i = 0; i < L; ++i)
    for (size_t m = 0; m < cols.size(); ++m) out[i][m] = cols[m][i];
  return out;
}
}  // namespace

std::vector<std::vector<size_t>> epoch_pairing(const std::vector<size_t>& sizes, uint64_t seed, int64_t epoch) {
  const size_t L = *std::max_element(sizes.begin(), sizes.end());
  std::vector<std::vector<size_t>> cols;
  for (size_t m = 0; m < sizes.size(); ++m) {
    std::mt19937_64 rng(mix_seed(seed, 0xE90C, static_cast<uint64_t>(epoch), m));
    cols.push_back(resample(sizes[m], L, rng));
  }
  return pair_columns(cols);
}

std::vector<size_t> balanced_order(const std::vector<int64_t>& labels, size_t length, uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= 0) by_class[labels[i]].push_back(i);
  std::vector<size_t> out;
  if (by_class.empty()) return out;
  std::mt19937_64 rng(mix_seed(seed, 0xBA1));
  std::vector<int64_t> classes;
  for (const auto& kv : by_class) classes.push_back(kv.first);
  const size_t k = classes.size();
  std::vector<size_t> slots(k, length / k);
  std::vector<size_t> extra(k);
  for (size_t i = 0; i < k; ++i) extra[i] = i;
  std::shuffle(extra.begin(), extra.end(), rng);
  for (size_t i = 0; i < length % k; ++i) slots[extra[i]] += 1;
  for (size_t c = 0; c < k; ++c) {
    const auto& members = by_class[classes[c]];
    for (auto j : resample(members.size(), slots[c], rng)) out.push_back(members[j]);
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

std::vector<std::vector<size_t>> balanced_epoch_pairing(const std::vector<std::vector<int64_t>>& labels, uint64_t seed,
                                                        int64_t epoch) {
  size_t L = 0;
  for (const auto& l : labels) L = std::max(L, l.size());
  std::vector<std::vector<size_t>> cols;
  for (size_t m = 0; m < labels.size(); ++m)
    cols.push_back(balanced_order(labels[m], L, mix_seed(seed, 0xE90C, static_cast<uint64_t>(epoch), m)));
  return pair_columns(cols);
}

std::vector<int> stratified_folds(const std::vector<int64_t>& labels, int k, uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
  std::vector<int> fold(labels.size(), 0);
  size_t next = 0;  // where the next class starts dealing, so small classes do not all land in fold 0
  for (auto& [c, idx] : by_class) {
    std::mt19937_64 rng(mix_seed(seed, 0xF01D, static_cast<uint64_t>(c)));
    std::shuffle(idx.begin(), idx.end(), rng);
    for (size_t j = 0; j < idx.size(); ++j) fold[idx[j]] = static_cast<int>((next + j) % static_cast<size_t>(k));
    next = (next + idx.size()) % static_cast<size_t>(k);
  }
  return fold;
}

std::vector<double> balanced_class_weights(const std::vector<int64_t>& labels, int64_t classes) {
  std::vector<double> count(static_cast<size_t>(classes), 0);
  double n = 0;
  for (auto y : labels)
    if (y >= 0 && y < classes) {
      count[static_cast<size_t>(y)] += 1;
      n += 1;
    }
  std::vector<double> w(static_cast<size_t>(classes), 0);
  for (int64_t c = 0; c < classes; ++c)
    if (count[c] > 0) w[c] = n / (double(classes) * count[c]);
  return w;
}

std::vector<std::vector<size_t>> eval_pairing(const std::vector<size_t>& sizes, size_t anchor, uint64_t seed) {
  const size_t L = sizes[anchor];
  std::vector<std::vector<size_t>> out(L, std::vector<size_t>(sizes.size()));
  for (size_t m = 0; m < sizes.size(); ++m) {
    std::vector<size_t> col;
    if (m == anchor) {
      col.resize(L);
      for (size_t i = 0; i < L; ++i) col[i] = i;
    } else {
      std::mt19937_64 rng(mix_seed(seed, 0xE7A1, anchor, m));
      col = resample(sizes[m], L, rng);
    }
    for (size_t i = 0; i < L; ++i) out[i][m] = col[i];
  }
  return out;
}

}  // namespace drifa::data
