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

std::vector<std::vector<size_t>> epoch_pairing(const std::vector<size_t>& sizes, uint64_t seed, int64_t epoch) {
  const size_t L = *std::max_element(sizes.begin(), sizes.end());
  std::vector<std::vector<size_t>> cols;
  for (size_t m = 0; m < sizes.size(); ++m) {
    std::mt19937_64 rng(mix_seed(seed, 0xE90C, static_cast<uint64_t>(epoch), m));
    cols.push_back(resample(sizes[m], L, rng));
  }
  std::vector<std::vector<size_t>> out(L, std::vector<size_t>(sizes.size()));
  for (size_t i = 0; i < L; ++i)
    for (size_t m = 0; m < sizes.size(); ++m) out[i][m] = cols[m][i];
  return out;
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
