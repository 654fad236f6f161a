#include "drifa/training/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include <torch/torch.h>

#include "drifa/calibration/calibration.h"
#include "drifa/data/split.h"
#include "drifa/error.h"
#include "drifa/inference/method.h"
#include "drifa/io/atomic_file.h"
#include "drifa/io/folder_lock.h"
#include "drifa/io/config_file.h"
#include "drifa/inputs/partners.h"
#include "drifa/inputs/presence.h"
#include "drifa/runs/tables.h"
#include "drifa/runs/model_file.h"
#include "drifa/model/summary.h"
#include "drifa/optim/fused_adam.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/precision.h"
#include "drifa/runtime/progress.h"
#include "drifa/training/checkpoint.h"
#include "drifa/training/policy.h"
#include "drifa/training/tuning.h"
#include "drifa/runtime/layout.h"
#include "drifa/runs/files.h"
#include "drifa/runs/run_folder.h"

namespace fs = std::filesystem;

namespace drifa::training {

namespace {

// The first setting where a run's saved config.json and the configuration it is resumed with
// differ, as `train.precision: "auto" now, "fp32" in config.json` ("" when they are equal).
std::string first_difference(const nlohmann::json& now, const nlohmann::json& saved, const std::string& at = "") {
  const auto differ = [](const std::string& where, const std::string& a, const std::string& b) {
    return where + ": " + a + " now, " + b + " in config.json";
  };
  if (!now.is_object() || !saved.is_object())
    return now == saved ? "" : differ(at.empty() ? "the configuration" : at, now.dump(), saved.dump());
  for (const auto* side : {&now, &saved})
    for (auto it = side->begin(); it != side->end(); ++it) {
      const auto key = at.empty() ? it.key() : at + "." + it.key();
      if (!now.contains(it.key()) || !saved.contains(it.key())) {
        const auto shown = [&](const nlohmann::json& j) { return j.contains(it.key()) ? j[it.key()].dump() : "not set"; };
        return differ(key, shown(now), shown(saved));
      }
      if (auto d = first_difference(now[it.key()], saved[it.key()], key); !d.empty()) return d;
    }
  return "";
}

std::string csv_of(const nlohmann::json& log) {
  std::ostringstream o;
  if (log.empty()) return "";
  bool first = true;
  for (auto it = log[0].begin(); it != log[0].end(); ++it) o << (first ? "" : ",") << it.key(), first = false;
  o << "\n";
  for (const auto& row : log) {
    first = true;
    for (auto it = row.begin(); it != row.end(); ++it) o << (first ? "" : ",") << it.value().dump(), first = false;
    o << "\n";
  }
  return o.str();
}

void set_lr(torch::optim::Adam& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

}  // namespace

std::vector<torch::Tensor> training_class_weights(const runs::TrainConfig& tc, const data::PreparedData& d, const ModelConfig& mcfg) {
  std::vector<torch::Tensor> w;
  if (tc.class_weights == "none") return w;
  const auto labels = d.train_labels();
  for (int64_t t = 0; t < mcfg.tasks(); ++t) {
    std::vector<double> v;
    if (tc.class_weights == "balanced") {
      v = data::balanced_class_weights(labels[static_cast<size_t>(t)], mcfg.classes[t]);
    } else {
      if (tc.class_weight_lists.size() != static_cast<size_t>(mcfg.tasks()))
        throw Error("[train]: class_weights: found " + std::to_string(tc.class_weight_lists.size()) + " lists, allowed one per task (" +
                    std::to_string(mcfg.tasks()) + ")");
      v = tc.class_weight_lists[static_cast<size_t>(t)];
      if (static_cast<int64_t>(v.size()) != mcfg.classes[t])
        throw Error("[train]: class_weights[" + std::to_string(t) + "]: found " + std::to_string(v.size()) +
                    " weights, allowed one per class of task " + mcfg.task_name(t) + " (" + std::to_string(mcfg.classes[t]) + ")");
    }
    w.push_back(torch::tensor(v, torch::kFloat32));
  }
  return w;
}

namespace {

// The run's bookkeeping: its folder, who writes it, and what it says.
struct RunFiles {
  RunFiles(const std::string& dir, const TrainOptions& opt)
      : dir(dir),
        ckpt(runs::files::path(dir, runs::files::kCheckpoint)),
        best(runs::files::path(dir, runs::files::kBestModel)),
        cfg(runs::files::path(dir, runs::files::kConfig)),
        split(runs::files::path(dir, runs::files::kSplit)),
        log(runs::files::path(dir, runs::files::kLogJson)),
        world(opt.group ? opt.group->size() : 1),
        rank(opt.group ? opt.group->rank() : 0),
        lead(rank == 0),
        quiet(opt.quiet || !lead) {}
  void say(const std::string& s) const {
    if (!quiet) std::cerr << s << "\n";
  }
  std::string dir, ckpt, best, cfg, split, log;
  int world, rank;
  bool lead;   // rank 0 alone writes the run folder and prints
  bool quiet;
};

// Opens or starts the run: the split (saved, or made from the config's seed), checked images
// and groups, config.json and split.json written on a start, the partner bank of an unpaired run.
data::PreparedData open_run(const runs::RunConfig& cfg, const RunFiles& f, const TrainOptions& opt, data::ImageCache& cache,
                            bool& resuming) {
  // Same seed -> same split, pairing, augmentation, initialisation and dropout masks.
  data::PreparedData d;
  // --resume on a run stopped before its first checkpoint starts it again: there is nothing to
  // lose, and one command then continues a run wherever it was interrupted.
  resuming = opt.resume && fs::exists(f.ckpt);
  if (opt.resume && fs::exists(f.cfg))
    if (const auto saved = io::read_json(f.cfg), now = cfg.to_json(); saved != now)
      throw Error(f.dir + ": the configuration differs from the one this run was started with (" +
                  first_difference(now, saved) + ")");
  if (resuming) {
    d = data::PreparedData::from_json(io::read_json(f.split), f.split);
  } else if (opt.resume) {
    f.say(f.dir + ": no checkpoint yet; starting the run from its beginning");
    d = opt.data ? *opt.data : data::prepare_data(cfg.data, cfg.seed);
  } else {
    if (fs::exists(f.ckpt))
      throw Error(f.dir + ": already holds a training run; use --resume to continue it or choose another --out");
    d = opt.data ? *opt.data : data::prepare_data(cfg.data, cfg.seed);
  }
  {
    std::vector<std::string> warnings;
    f.say("checking " + std::to_string(d.all_paths().size()) + " images ...");
    data::verify_prepared(d, cache, cfg.data, warnings);
    if (f.lead)
      for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
    const auto counts = data::group_counts(d);
    for (size_t m = 0; m < counts.size(); ++m) {
      const auto& gc = counts[m];
      if (m >= d.grouped.size() || !d.grouped[m]) {
        f.say("groups (" + gc.modality + "): none named, each image its own group (splits and intervals by image)");
        continue;
      }
      f.say("groups (" + gc.modality + "): " + std::to_string(gc.train_groups) + " train, " + std::to_string(gc.val_groups) +
            " val, " + std::to_string(gc.test_groups) + " test; " + std::to_string(gc.mixed) +
            " mixing labels (placed by their majority label)");
      if (gc.spanning > 0)
        throw Error(f.dir + ": " + gc.modality + ": " + std::to_string(gc.spanning) + " groups in two parts (group '" +
                    gc.example + "'); the split leaks");
    }
  }
  if (!resuming && f.lead) {
    io::atomic_write_text(f.cfg, cfg.to_json().dump(2));
    io::atomic_write_text(f.split, d.to_json().dump());
  }
  // Unpaired: the partners that stand in for a case's missing modalities at prediction time.
  const auto bank_path = runs::files::path(f.dir, runs::files::kPartners);
  if (f.lead && !d.paired && !fs::exists(bank_path))
    inputs::save_partner_bank(bank_path, inputs::build_partner_bank(d, cache, inputs::kBankSize, data::mix_seed(cfg.seed, 0xBA)));
  return d;
}

// What one epoch of training leaves: the summed loss, samples seen, steps, per task the
// correctly classified and the scored training samples.
struct EpochStats {
  double loss_sum = 0;
  size_t seen = 0, steps = 0;
  std::vector<double> correct, counted;
};

// The parts of a training step that stay fixed over the run.
struct Step {
  const runs::RunConfig& cfg;
  const TrainOptions& opt;
  const RunFiles& f;
  const ModelConfig& mcfg;
  const std::vector<torch::Tensor>& class_weights;
  uint64_t tseed;
  int micro, shard;
  bool sharded;
  SpeedSettings speed;
};

// One epoch: the epoch's examples (this rank's shards), forward, loss, backward, Adam steps
// (gradients averaged over the ranks), progress bar. Throws on a non-finite loss.
EpochStats train_epoch(const Step& s, DRIFANet& net, FusedAdam& adam, const data::PreparedData& d, data::ImageCache& cache,
                       const TrainerState& st, int64_t epoch, std::optional<Progress>& bar) {
  const auto& tc = s.cfg.train;
  const auto& opt = s.opt;
  const int world = s.f.world, rank = s.f.rank, micro = s.micro;
  const size_t T = static_cast<size_t>(s.mcfg.tasks());
  // Ranks draw their own dropout masks; one process keeps the plain seed.
  torch::manual_seed(world > 1 ? data::mix_seed(s.tseed, 0xD20, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank))
                               : data::mix_seed(s.tseed, 0xD20, static_cast<uint64_t>(epoch)));
  auto examples = d.train_examples(s.tseed, epoch, tc.sampling == "balanced");
  if (tc.steps_per_epoch > 0 && examples.size() > size_t(tc.steps_per_epoch) * tc.batch_size)
    examples.resize(size_t(tc.steps_per_epoch) * tc.batch_size);
  data::LoaderOptions lo;
  if (s.sharded) {
    // Global batch s is cut into world * micro shards; shard j = m * world + rank is this
    // rank's micro-batch m. A last incomplete global batch is left out so shards stay equal.
    std::vector<data::Example> mine;
    const size_t steps = examples.size() / size_t(tc.batch_size);
    for (size_t st = 0; st < steps; ++st)
      for (int m = 0; m < micro; ++m) {
        const size_t first = st * size_t(tc.batch_size) + size_t(m * world + rank) * size_t(s.shard);
        mine.insert(mine.end(), examples.begin() + long(first), examples.begin() + long(first + size_t(s.shard)));
      }
    if (mine.empty()) throw Error("the epoch has fewer than batch_size = " + std::to_string(tc.batch_size) + " training pairs");
    examples = std::move(mine);
    lo.batch_size = s.shard;
  } else {
    // BatchNorm cannot train on a batch of one: drop a last batch of size 1.
    lo.batch_size = std::min<int>(tc.batch_size, static_cast<int>(examples.size()));
    lo.drop_last = examples.size() % lo.batch_size == 1;
  }
  lo.workers = s.cfg.data.workers;
  lo.augment = s.cfg.augment.enabled();
  lo.aug = s.cfg.augment;
  lo.seed = s.tseed;
  lo.epoch = epoch;
  data::BatchLoader loader(examples, cache, lo);
  net->set_mode(Mode::Train);
  bar.emplace("epoch " + std::to_string(epoch) + "/" + std::to_string(tc.epochs), loader.batches() / size_t(micro), s.f.quiet);
  EpochStats e;
  e.correct.assign(T, 0);
  e.counted.assign(T, 0);
  size_t micro_done = 0;
  data::Batch b;
  while (loader.next(b)) {
    for (auto& x : b.inputs) x = s.speed.channels_last ? to_channels_last(x.to(opt.device)) : x.to(opt.device);
    torch::Tensor loss;
    ForwardResult r;
    ForwardOptions fo;
    if (tc.modality_dropout > 0) {
      // Each example's draw depends on (seed, epoch, rank, its position), not on the batching.
      std::vector<torch::Tensor> rows;
      for (auto i : b.indices)
        rows.push_back(inputs::modality_dropout_mask(1, s.mcfg.modalities, tc.modality_dropout,
                                                     data::mix_seed(s.tseed, 0x3D0 + static_cast<uint64_t>(rank), static_cast<uint64_t>(epoch), i)));
      fo.presence = torch::cat(rows).to(opt.device);
    }
    {
      AutocastGuard ac(s.speed.bf16, opt.device);
      r = net->forward(b.inputs, fo);
      loss = evaluation::multitask_loss(r.logits, b.labels, tc.task_weights, s.class_weights);
    }
    const double lv = loss.item<double>();
    if (!std::isfinite(lv))
      throw Error("non-finite training loss (" + std::to_string(lv) + ") at epoch " + std::to_string(epoch) + " step " +
                  std::to_string(e.steps + 1) + "; stopped. The last good state is " +
                  (st.epoch > 0 ? s.f.ckpt + " (epoch " + std::to_string(st.epoch) + ")" : std::string("none (first epoch)")) +
                  "; try a lower lr or disable bf16");
    (micro > 1 ? loss / double(micro) : loss).backward();
    if (++micro_done % size_t(micro) == 0) {
      if (opt.group) opt.group->average_gradients(*net);
      adam.step();
      adam.zero_grad();
      ++e.steps;
    }
    const size_t bs = b.indices.size();
    e.loss_sum += lv * bs;
    e.seen += bs;
    for (size_t t = 0; t < T; ++t) {
      auto y = b.labels[t];
      auto keep = y.ge(0);
      e.correct[t] += r.logits[t].argmax(1).cpu().eq(y).logical_and(keep).sum().item<double>();
      e.counted[t] += keep.sum().item<double>();
    }
    bar->update(e.steps, bs, e.loss_sum / e.seen);
  }
  return e;
}

// Data-parallel: every rank takes rank 0's BatchNorm statistics; the parameters must already
// agree. Returns the spread of the ranks' parameter checksums.
double sync_ranks(ProcessGroup& group, DRIFANet& net, int64_t epoch) {
  group.broadcast_state(*net);
  double sum = 0;
  for (const auto& p : net->parameters()) sum += p.to(torch::kFloat64).sum().item<double>();
  const auto [lo_sum, hi_sum] = group.min_max(sum);
  const double spread = hi_sum - lo_sum;
  if (spread > 1e-6 * std::max(1.0, std::abs(sum)))
    throw Error("the ranks' parameters diverged at epoch " + std::to_string(epoch) + " (checksums " + std::to_string(lo_sum) +
                " .. " + std::to_string(hi_sum) + ")");
  return spread;
}

// The epoch's row of log.json / log.csv.
nlohmann::json log_row(const ModelConfig& mcfg, int64_t epoch, double lr, const EpochStats& e, const evaluation::EvalResult& val,
                       double secs, int world, double spread) {
  namespace k = runs::files;
  const size_t T = static_cast<size_t>(mcfg.tasks());
  nlohmann::json row = nlohmann::json::object();
  row[k::kColEpoch] = epoch;
  row["lr"] = lr;
  row[k::kColTrainLoss] = e.seen ? e.loss_sum / e.seen : 0.0;
  for (size_t t = 0; t < T; ++t) row["train_acc_" + mcfg.task_name(t)] = e.counted[t] ? e.correct[t] / e.counted[t] : 0.0;
  row[k::kColValLoss] = val.loss;
  for (size_t t = 0; t < T; ++t) {
    row[k::kColValAccPrefix + mcfg.task_name(t)] = val.metrics[t].accuracy;
    row["val_f1_" + mcfg.task_name(t)] = val.metrics[t].macro_f1;
  }
  row["seconds"] = secs;
  row["train_samples"] = e.seen * size_t(world);
  if (world > 1) {
    row["ranks"] = world;
    row["rank_param_spread"] = spread;
  }
  return row;
}

// The speed settings of the run (training/tuning.h): as asked for fp32 and bf16; with auto,
// measured on the run's first batch of training data (unaugmented) or read from the cache.
// Ranks measure each for themselves and agree on one (the plain path where they differ).
Tuning choose_speed(const runs::RunConfig& cfg, const RunFiles& f, const TrainOptions& opt, const data::PreparedData& d,
                    data::ImageCache& cache, const ModelConfig& mcfg, const std::vector<torch::Tensor>& class_weights,
                    uint64_t tseed, int batch) {
  const auto& tc = cfg.train;
  Tuning t;
  const Precision precision = parse_precision(tc.precision, "[train] precision");
  if (precision != Precision::Auto) {
    t.chosen.bf16 = precision == Precision::BF16;
    t.source = "as asked";
    return t;
  }
  if (opt.device.is_cuda()) {
    t.source = "auto: fp32 on CUDA, not timed";
    return t;
  }
  const double gmac = summarize(mcfg).gmac() * tc.batch_size;
  if (gmac < kTuneMinGmacPerStep) {
    std::ostringstream o;
    o.precision(2);
    o << "auto: " << gmac << " GMAC per step, below " << kTuneMinGmacPerStep << ": the plain path, not timed";
    t.source = o.str();
    return t;
  }
  auto examples = d.train_examples(tseed, 1, false);
  examples.resize(std::min(examples.size(), size_t(batch)));
  data::LoaderOptions lo;
  lo.batch_size = static_cast<int>(examples.size());
  lo.workers = cfg.data.workers;
  data::BatchLoader loader(examples, cache, lo);
  data::Batch b;
  if (!loader.next(b)) throw Error("the run has no training examples to time the speed settings on");
  TuneOptions to;
  to.device = opt.device;
  to.cache = opt.tuning_cache;
  to.task_weights = tc.task_weights;
  to.class_weights = class_weights;
  f.say("timing the speed settings on one batch (paid once per machine and configuration) ...");
  t = tune_training(mcfg, b, to);
  if (opt.group) {
    // One number per choice, from every setting (to_json names them all), exact in a double (53 bits).
    const double code = static_cast<double>(std::hash<std::string>{}(t.chosen.to_json().dump()) >> 11);
    const auto [lo_code, hi_code] = opt.group->min_max(code);
    if (lo_code != hi_code) {
      t.chosen = SpeedSettings{};
      t.source += "; the ranks chose differently: the plain path";
    }
  }
  return t;
}

}  // namespace

TrainSummary train(const runs::RunConfig& cfg, const std::string& run_dir, const TrainOptions& opt) {
  const RunFiles f(run_dir, opt);
  std::optional<io::FolderLock> lock;  // rank 0 alone writes the folder (below), so it alone locks it
  if (f.lead) lock.emplace(run_dir);
  else fs::create_directories(run_dir);
  data::ImageCache cache(cfg.data.image_options());
  bool resuming = false;
  const data::PreparedData d = open_run(cfg, f, opt, cache, resuming);
  const ModelConfig mcfg = cfg.model_config(d);
  const auto& tc = cfg.train;
  const auto class_weights = training_class_weights(tc, d, mcfg);
  check_fits_in_memory(mcfg, tc.batch_size, true, run_dir + ": training");

  // The split and the evaluation partners follow cfg.seed; everything random in training
  // follows train_seed(), which differs between ensemble members.
  const uint64_t tseed = cfg.train_seed();
  const int micro = tc.micro_batches;
  const bool sharded = f.world > 1 || micro > 1;
  const int shard = tc.batch_size / (f.world * micro);
  if (sharded && (tc.batch_size % (f.world * micro) != 0 || shard < 2))
    throw Error("[train]: batch_size " + std::to_string(tc.batch_size) + " must split into " + std::to_string(f.world * micro) +
                " equal shards of at least 2 samples (" + std::to_string(f.world) + " ranks x " + std::to_string(micro) +
                " micro-batches)");
  // Timed before the seed below: the timing's networks and dropout do not move the run's random sequence.
  const Tuning tuning = choose_speed(cfg, f, opt, d, cache, mcfg, class_weights, tseed, sharded ? shard : tc.batch_size);
  const SpeedScope speed_scope(tuning.chosen);
  torch::manual_seed(data::mix_seed(tseed, 0x1417));
  DRIFANet net(mcfg);
  net->to(opt.device);
  if (tuning.chosen.channels_last) use_channels_last(*net);
  FusedAdam adam(net->parameters(), torch::optim::AdamOptions(tc.lr));
  TrainerState st;
  st.lr = tc.lr;
  nlohmann::json log = nlohmann::json::array();
  if (resuming) {
    st = load_checkpoint(f.ckpt, net, adam);
    set_lr(adam, st.lr);
    if (fs::exists(f.log)) {
      log = runs::files::read_log_json(run_dir);
      // Rows written after the checkpoint (an interrupted epoch) are dropped.
      while (!log.empty() && log.back().at(runs::files::kColEpoch).get<int64_t>() > st.epoch) log.erase(log.size() - 1);
    }
    f.say("resuming after epoch " + std::to_string(st.epoch));
  }

  const bool bf16 = tuning.chosen.bf16;
  f.say(std::string("precision ") + (bf16 ? (opt.device.is_cuda() ? "fp16 autocast" : "bf16") : "fp32") + " (" + tuning.source + "); " +
        (opt.device.is_cuda() ? std::string("device ") + opt.device.str()
                               : isa_summary(cpu_features()) + "; oneDNN kernels " + onednn_isa()));
  if (!tuning.timings.empty()) {
    f.say(tuning.table());
    if (f.lead) io::atomic_write_text(runs::files::path(run_dir, runs::files::kTuning), tuning.to_json().dump(1));
  }
  const auto val_examples = d.eval_examples("val", cfg.seed);
  evaluation::EvalOptions eo;
  eo.batch_size = tc.batch_size;
  eo.workers = cfg.data.workers;
  eo.bf16 = bf16;
  eo.device = opt.device;
  eo.task_weights = tc.task_weights;
  const Step step{cfg, opt, f, mcfg, class_weights, tseed, micro, shard, sharded, tuning.chosen};

  TrainSummary sum;
  for (int64_t epoch = st.epoch + 1; epoch <= tc.epochs; ++epoch) {
    if (patience_spent(st, tc)) break;
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<Progress> bar;  // the epoch's, finished with its validation below
    const auto e = train_epoch(step, net, adam, d, cache, st, epoch, bar);
    const double spread = opt.group ? sync_ranks(*opt.group, net, epoch) : 0.0;
    const auto val = evaluation::evaluate(net, val_examples, cache, eo);
    if (!std::isfinite(val.loss))
      throw Error("non-finite validation loss at epoch " + std::to_string(epoch) + "; stopped. The last good state is " + f.ckpt);
    const auto verdict = judge_epoch(st, tc, epoch, val.loss);
    if (verdict.lr_reduced) {
      set_lr(adam, st.lr);
      f.say("reducing learning rate to " + std::to_string(st.lr));
    }
    if (verdict.best && f.lead) {
      io::Metadata best_metadata{{runs::files::kEpochKey, std::to_string(epoch)}, {runs::files::kValLossKey, std::to_string(val.loss)},
                                 {runs::files::kPairingKey, d.paired ? "paired" : "unpaired"}};
      if (auto v = data::volume_recipes_json(cfg.data); !v.empty()) best_metadata[runs::files::kVolumesKey] = v;
      if (!cfg.tta.empty()) best_metadata[runs::files::kTtaKey] = nlohmann::json(cfg.tta).dump();
      runs::save_model(net, f.best, best_metadata);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto row = log_row(mcfg, epoch, adam.param_groups()[0].options().get_lr(), e, val, secs, f.world, spread);
    log.push_back(row);
    // The checkpoint is written last: a run killed before it resumes from the previous epoch.
    if (f.lead) {
      io::atomic_write_text(f.log, log.dump(1));
      io::atomic_write_text(runs::files::path(run_dir, runs::files::kLogCsv), csv_of(log));
      save_checkpoint(f.ckpt, net, adam, st);
    }
    if (opt.group) opt.group->barrier();  // no rank runs ahead of the checkpoint
    std::ostringstream msg;
    msg << std::fixed << std::setprecision(4) << "train loss " << row[runs::files::kColTrainLoss].get<double>() << "  val loss " << val.loss;
    for (size_t t = 0; t < static_cast<size_t>(mcfg.tasks()); ++t) msg << "  " << mcfg.task_name(t) << " acc " << val.metrics[t].accuracy;
    if (verdict.best) msg << "  *best";
    bar->finish(msg.str());
    ++sum.epochs_run;
    if (opt.on_epoch_end) opt.on_epoch_end(epoch);
  }
  sum.early_stopped = patience_spent(st, tc) && st.epoch < tc.epochs;
  if (sum.early_stopped) f.say("early stopping: no validation improvement for " + std::to_string(tc.early_stop_patience) + " epochs");
  sum.best_epoch = st.best_epoch;
  sum.best_val_loss = st.best_val_loss;
  sum.best_model = f.best;
  if (!f.lead) return sum;
  if (opt.evaluate_test) {
    EvaluateOptions eo;
    eo.device = opt.device;
    eo.bf16 = bf16;
    eo.cache = &cache;
    sum.test_metrics = evaluate_run(run_dir, f.best, "test", run_dir, eo);
  }
  // Last: done.json says the whole run finished, its test metrics included. A run stopped
  // before it (even while evaluating) is resumed from its final checkpoint and evaluated then;
  // an ensemble or cross-validation skips a member only once this is there.
  io::atomic_write_text(runs::files::path(run_dir, runs::files::kDone),
                        nlohmann::json{{"epochs", st.epoch}, {"best_epoch", st.best_epoch}, {"best_val_loss", st.best_val_loss},
                                       {"early_stopped", sum.early_stopped}}.dump(2));
  return sum;
}

namespace {

// metrics.json's "partners": the tasks scored with partners from the bank, K = 1 and K.
nlohmann::json partner_metrics(const runs::RunFolder& run, DRIFANet& net, const std::vector<data::Example>& examples,
                               data::ImageCache& cache, evaluation::EvalOptions eo, const EvaluateOptions& opt) {
  const auto& mc = net->config();
  const auto bank = run.partner_bank(mc);
  if (!bank)
    throw Error(run.dir + ": a paired run: every case has its own image of each modality, so there are no partners to "
                "average over; --missing NAME scores it with a modality absent");
  nlohmann::json rows = nlohmann::json::array();
  std::vector<int64_t> counts = {1};
  if (opt.partners > 1) counts.push_back(opt.partners);
  for (int64_t k : counts) {
    eo.plan = {{}, &*bank, k};
    const auto r = evaluation::evaluate(net, examples, cache, eo);
    auto j = evaluation::metrics_json(r, mc, opt.ci);
    for (size_t t = 0; t < r.partner_information.size(); ++t) {
      const auto keep = r.labels[t].ge(0);
      auto& jt = j["tasks"][mc.task_name(static_cast<int64_t>(t))];
      jt["partner_information"] = r.partner_information[t].index({keep}).mean().item<double>();
      jt["partner_sd"] = r.partner_sd[t].index({keep}).mean().item<double>();
    }
    j["inputs"] = eo.plan.to_json(mc);
    j["partners"] = k;
    rows.push_back(j);
  }
  return {{"bank_size", bank->size()}, {"bank_seed", bank->seed}, {"runs", rows}};
}

// missing.json: one row per pattern of absent modalities, the full inputs first.
nlohmann::json missing_metrics(const runs::RunFolder& run, DRIFANet& net, const std::vector<data::Example>& examples,
                               data::ImageCache& cache, evaluation::EvalOptions eo, const EvaluateOptions& opt) {
  const auto& mc = net->config();
  std::vector<inputs::Absent> patterns;
  if (opt.missing.size() == 1 && opt.missing[0] == "all") {
    patterns = inputs::missing_patterns(mc.modalities);
  } else {
    patterns = {inputs::Absent(static_cast<size_t>(mc.modalities), false), inputs::parse_absent(opt.missing, mc, "--missing")};
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& absent : patterns) {
    eo.plan = {absent, nullptr, 0};
    const auto r = evaluation::evaluate(net, examples, cache, eo);
    auto j = evaluation::metrics_json(r, mc, opt.ci);
    j["pattern"] = inputs::pattern_name(absent, mc);
    j["inputs"] = eo.plan.to_json(mc);
    for (int64_t t = 0; t < mc.tasks(); ++t)
      // An unpaired task is its own modality's: without that image there is nothing to score.
      if (!run.data.paired && absent[static_cast<size_t>(t)])
        j["tasks"][mc.task_name(t)] = {{"scored", false}, {"reason", "its modality (" + mc.modality_name(t) + ") is absent"}};
    rows.push_back(j);
  }
  return {{"paired", run.data.paired}, {"patterns", rows}};
}

}  // namespace

nlohmann::json evaluate_run(const std::string& run_dir, const std::string& model_path, const std::string& part,
                            const std::string& out_dir, const EvaluateOptions& opt) {
  const auto run = runs::RunFolder::open(run_dir);  // first: a mistyped folder is refused, not created by the lock
  const io::FolderLock lock(out_dir);
  const auto& cfg = run.cfg;
  auto loaded = run.load_model_file(model_path);
  auto net = loaded.net;
  const auto& mc = net->config();
  const auto device = opt.device;
  auto* cache = opt.cache;
  std::vector<double> temperatures;
  if (opt.calibrated)
    if (const auto cal = runs::files::read_model_calibration(loaded.metadata, model_path))
      for (int64_t t = 0; t < mc.tasks(); ++t) {
        const auto* m = cal->find(mc.task_name(t), inference::method_for({1, 0, 0}).name());
        temperatures.push_back(m ? m->temperature : 1.0);
      }
  net->to(device);  // the inferer puts it in Eval mode
  std::optional<data::ImageCache> own;
  if (!cache) cache = &own.emplace(cfg.data.image_options());
  const auto examples = run.examples(part);
  evaluation::EvalOptions eo;
  eo.batch_size = cfg.train.batch_size;
  eo.workers = cfg.data.workers;
  eo.bf16 = opt.bf16;
  eo.device = device;
  eo.task_weights = cfg.train.task_weights;
  eo.temperatures = temperatures;
  eo.aggregate = cfg.aggregate;
  auto r = evaluation::evaluate(net, examples, *cache, eo);
  auto j = evaluation::metrics_json(r, mc, opt.ci);
  j["calibrated"] = !temperatures.empty();
  j["part"] = part;
  j["model"] = model_path;
  j["inputs"] = eo.plan.to_json(mc);
  if (opt.partners > 0) j["partners"] = partner_metrics(run, net, examples, *cache, eo, opt);
  nlohmann::json missing;
  if (!opt.missing.empty()) missing = missing_metrics(run, net, examples, *cache, eo, opt);
  io::atomic_write_text(runs::files::path(out_dir, runs::files::kMetrics), j.dump(2));
  runs::files::write_predictions(runs::files::path(out_dir, runs::files::kPredictions), r, examples, mc);
  if (!missing.is_null()) {
    missing["part"] = part;
    missing["model"] = model_path;
    io::atomic_write_text(runs::files::path(out_dir, runs::files::kMissing), missing.dump(2));
    j["missing"] = missing;
  }
  return j;
}

}  // namespace drifa::training
