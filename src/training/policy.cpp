#include "drifa/training/policy.h"

#include <algorithm>

namespace drifa::training {

EpochVerdict judge_epoch(TrainerState& st, const runs::TrainConfig& tc, int64_t epoch, double val_loss) {
  EpochVerdict v;
  v.improved = val_loss < st.plateau_best - 1e-4;
  if (v.improved) {
    st.plateau_best = val_loss;
    st.plateau_wait = 0;
    st.early_wait = 0;
  } else {
    ++st.plateau_wait;
    ++st.early_wait;
    if (st.plateau_wait >= tc.plateau_patience && st.lr > tc.min_lr) {
      st.lr = std::max(st.lr * tc.plateau_factor, tc.min_lr);
      st.plateau_wait = 0;
      v.lr_reduced = true;
    }
  }
  v.best = val_loss < st.best_val_loss;
  if (v.best) {
    st.best_val_loss = val_loss;
    st.best_epoch = epoch;
  }
  st.epoch = epoch;
  return v;
}

bool patience_spent(const TrainerState& st, const runs::TrainConfig& tc) { return st.early_wait >= tc.early_stop_patience; }

}  // namespace drifa::training
