#pragma once
// One register_* per subcommand; main.cpp wires them up.
#include <CLI/CLI.hpp>

#include "common.h"

namespace drifa::cli {

void register_info(CLI::App& app, GlobalFlags& g);
void register_init(CLI::App& app, GlobalFlags& g);
void register_synth(CLI::App& app, GlobalFlags& g);
void register_check(CLI::App& app, GlobalFlags& g);
void register_train(CLI::App& app, GlobalFlags& g);
void register_evaluate(CLI::App& app, GlobalFlags& g);
void register_ensemble(CLI::App& app, GlobalFlags& g);
void register_cv(CLI::App& app, GlobalFlags& g);
void register_calibrate(CLI::App& app, GlobalFlags& g);
void register_uq(CLI::App& app, GlobalFlags& g);
void register_predict(CLI::App& app, GlobalFlags& g);
void register_gradcam(CLI::App& app, GlobalFlags& g);
void register_tsne(CLI::App& app, GlobalFlags& g);
void register_report(CLI::App& app, GlobalFlags& g);
void register_serve(CLI::App& app, GlobalFlags& g);
void register_volume(CLI::App& app, GlobalFlags& g);

}  // namespace drifa::cli
