#include "drifa/data/split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <unordered_map>

#include "drifa/error.h"

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

GroupIndex index_groups(const std::vector<int64_t>& labels, const std::vector<std::string>& groups) {
  if (groups.size() != labels.size()) throw Error("groups: one group per item needed");
  GroupIndex g;
  std::unordered_map<std::string, size_t> at;
  for (size_t i = 0; i < labels.size(); ++i) {
    size_t k;
    auto it = groups[i].empty() ? at.end() : at.find(groups[i]);
    if (it != at.end()) {
      k = it->second;
    } else {
      k = g.members.size();
      if (!groups[i].empty()) at.emplace(groups[i], k);
      g.members.emplace_back();
    }
    g.group_of.push_back(k);
    g.members[k].push_back(i);
  }
  for (const auto& m : g.members) {
    std::map<int64_t, size_t> count;
    for (auto i : m) count[labels[i]]++;
    int64_t best = count.begin()->first;
    for (const auto& [y, c] : count)
      if (c > count[best]) best = y;  // map order: ties keep the smallest label
    g.label.push_back(best);
    if (count.size() > 1) g.mixed++;
  }
  return g;
}

std::pair<std::vector<size_t>, std::vector<size_t>> stratified_group_split(const std::vector<int64_t>& labels,
                                                                            const std::vector<std::string>& groups,
                                                                            double fraction, uint64_t seed) {
  const auto g = index_groups(labels, groups);
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t k = 0; k < g.members.size(); ++k) by_class[g.label[k]].push_back(k);
  std::vector<size_t> keep, held;
  for (auto& [y, gs] : by_class) {
    std::mt19937_64 rng(mix_seed(seed, 0x6A11, static_cast<uint64_t>(y)));
    std::shuffle(gs.begin(), gs.end(), rng);
    size_t images = 0;
    for (auto k : gs) images += g.members[k].size();
    const double target = std::max(fraction > 0 && gs.size() >= 2 ? 1.0 : 0.0, std::round(fraction * double(images)));
    std::vector<bool> out(gs.size(), false);
    double have = 0;
    size_t taken = 0;
    for (size_t j = 0; j < gs.size(); ++j) {
      const double n = double(g.members[gs[j]].size());
      if (have < target && (taken == 0 || std::abs(have + n - target) <= std::abs(have - target))) {
        out[j] = true;
        have += n;
        ++taken;
      }
    }
    if (taken == gs.size() && taken > 0) out.back() = false;  // never empty a label in the kept part
    for (size_t j = 0; j < gs.size(); ++j)
      for (auto i : g.members[gs[j]]) (out[j] ? held : keep).push_back(i);
  }
  std::sort(keep.begin(), keep.end());
  std::sort(held.begin(), held.end());
  return {keep, held};
}

std::vector<int> stratified_group_folds(const std::vector<int64_t>& labels, const std::vector<std::string>& groups, int k,
                                        uint64_t seed) {
  const auto g = index_groups(labels, groups);
  const size_t G = g.members.size(), K = static_cast<size_t>(k);
  if (k < 2) throw Error("--folds: found " + std::to_string(k) + ", allowed at least 2");
  if (G < K)
    throw Error("--folds: found " + std::to_string(k) + " folds for " + std::to_string(G) +
                " groups, allowed at most as many folds as groups (a group is never split between folds)");
  std::map<int64_t, size_t> cls;
  for (auto y : labels) cls.emplace(y, 0);
  size_t c = 0;
  for (auto& kv : cls) kv.second = c++;
  const size_t C = cls.size();
  std::vector<std::vector<double>> counts(G, std::vector<double>(C, 0));
  std::vector<double> total(C, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    counts[g.group_of[i]][cls[labels[i]]] += 1;
    total[cls[labels[i]]] += 1;
  }
  std::vector<size_t> order(G);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(mix_seed(seed, 0x6F01));
  std::shuffle(order.begin(), order.end(), rng);
  auto spread = [&](const std::vector<double>& v) {
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
    double s = 0;
    for (double x : v) s += (x - mean) * (x - mean);
    return std::sqrt(s / double(v.size()));
  };
  std::vector<double> gspread(G);
  for (size_t q = 0; q < G; ++q) gspread[q] = spread(counts[q]);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gspread[a] > gspread[b]; });
  std::vector<std::vector<double>> fold(K, std::vector<double>(C, 0));
  std::vector<double> fold_items(K, 0);
  std::vector<int> group_fold(G, 0);
  std::vector<double> column(K);
  for (size_t q : order) {
    double best_eval = 0;
    size_t best = K;
    for (size_t f = 0; f < K; ++f) {
      for (size_t cc = 0; cc < C; ++cc) fold[f][cc] += counts[q][cc];
      double eval = 0;
      for (size_t cc = 0; cc < C; ++cc) {
        for (size_t h = 0; h < K; ++h) column[h] = fold[h][cc] / total[cc];
        eval += spread(column);
      }
      eval /= double(C);
      for (size_t cc = 0; cc < C; ++cc) fold[f][cc] -= counts[q][cc];
      if (best == K || eval < best_eval - 1e-12 || (std::abs(eval - best_eval) <= 1e-12 && fold_items[f] < fold_items[best])) {
        best = f;
        best_eval = eval;
      }
    }
    for (size_t cc = 0; cc < C; ++cc) fold[best][cc] += counts[q][cc];
    fold_items[best] += double(g.members[q].size());
    group_fold[q] = static_cast<int>(best);
  }
  std::vector<int> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) out[i] = group_fold[g.group_of[i]];
  return out;
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
