#pragma once
// libdrifa: the table of contents.
//
// model/      the network of the spec: HIFA + CLIA = MFA, MIFA (MGIFA + MLIFA), RRA, branches, DRIFANet
// io/         safetensors, model files with their config, TOML configs, atomic writes
// runtime/    threads and device selection
#include "drifa/error.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/config_file.h"
#include "drifa/io/model_file.h"
#include "drifa/io/safetensors.h"
#include "drifa/model/branch.h"
#include "drifa/model/clia.h"
#include "drifa/model/config.h"
#include "drifa/model/drifa_net.h"
#include "drifa/model/hifa.h"
#include "drifa/model/mfa.h"
#include "drifa/model/mifa.h"
#include "drifa/model/rra.h"
#include "drifa/model/summary.h"
#include "drifa/runtime/threads.h"
