#pragma once
// The authors' schedule around the epochs (spec section 7), with Keras semantics: an epoch
// improves when the validation loss beats the best so far by at least 1e-4; ReduceLROnPlateau
// multiplies the learning rate by plateau_factor (not below min_lr) after plateau_patience epochs
// without an improvement; EarlyStopping ends the run after early_stop_patience of them; the best
// model is the one of the lowest validation loss. It reads and writes only the trainer's state.
#include "drifa/runs/run_config.h"
#include "drifa/training/checkpoint.h"

namespace drifa::training {

struct EpochVerdict {
  bool improved = false;    // by at least 1e-4
  bool best = false;        // the lowest validation loss yet: save the model
  bool lr_reduced = false;  // st.lr is the new rate
};

// Updates st after an epoch whose validation loss is val_loss (epoch: its number).
EpochVerdict judge_epoch(TrainerState& st, const runs::TrainConfig& tc, int64_t epoch, double val_loss);

// Early stopping: true once early_stop_patience epochs went by without an improvement.
bool patience_spent(const TrainerState& st, const runs::TrainConfig& tc);

}  // namespace drifa::training
