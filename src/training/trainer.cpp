#include "drifa/training/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <iostream>
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
#include "drifa/runs/model_file.h"
#include "drifa/model/summary.h"
#include "drifa/optim/fused_adam.h"
#include "drifa/runtime/autocast.h"
#include "drifa/runtime/precision.h"
#include "drifa/runtime/progress.h"
#include "drifa/training/checkpoint.h"
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

TrainSummary train(const runs::RunConfig& cfg, const std::string& run_dir, const TrainOptions& opt) {
  const int lock_rank = opt.group ? opt.group->rank() : 0;
  std::optional<io::FolderLock> lock;  // rank 0 alone writes the folder (below), so it alone locks it
  if (lock_rank == 0) lock.emplace(run_dir);
  else fs::create_directories(run_dir);
  const std::string ckpt = runs::files::path(run_dir, runs::files::kCheckpoint);
  const std::string best = runs::files::path(run_dir, runs::files::kBestModel);
  const std::string cfg_path = runs::files::path(run_dir, runs::files::kConfig);
  const std::string split_path = runs::files::path(run_dir, runs::files::kSplit);
  const std::string log_path = runs::files::path(run_dir, runs::files::kLogJson);
  const int world = opt.group ? opt.group->size() : 1, rank = opt.group ? opt.group->rank() : 0;
  const bool lead = rank == 0;  // rank 0 alone writes the run folder and prints
  const bool quiet = opt.quiet || !lead;
  auto say = [&](const std::string& s) {
    if (!quiet) std::cerr << s << "\n";
  };

  // Same seed -> same split, pairing, augmentation, initialisation and dropout masks.
  data::PreparedData d;
  // --resume on a run stopped before its first checkpoint starts it again: there is nothing to
  // lose, and one command then continues a run wherever it was interrupted.
  const bool resuming = opt.resume && fs::exists(ckpt);
  if (opt.resume && fs::exists(cfg_path))
    if (const auto saved = io::read_json(cfg_path), now = cfg.to_json(); saved != now)
      throw Error(run_dir + ": the configuration differs from the one this run was started with (" +
                  first_difference(now, saved) + ")");
  if (resuming) {
    d = data::PreparedData::from_json(io::read_json(split_path), split_path);
  } else if (opt.resume) {
    say(run_dir + ": no checkpoint yet; starting the run from its beginning");
    d = opt.data ? *opt.data : data::prepare_data(cfg.data, cfg.seed);
  } else {
    if (fs::exists(ckpt))
      throw Error(run_dir + ": already holds a training run; use --resume to continue it or choose another --out");
    d = opt.data ? *opt.data : data::prepare_data(cfg.data, cfg.seed);
  }
  data::ImageCache cache(cfg.data.image_options());
  {
    std::vector<std::string> warnings;
    say("checking " + std::to_string(d.all_paths().size()) + " images ...");
    data::verify_prepared(d, cache, cfg.data, warnings);
    if (lead)
      for (const auto& w : warnings) std::cerr << "warning: " << w << "\n";
    const auto counts = data::group_counts(d);
    for (size_t m = 0; m < counts.size(); ++m) {
      const auto& gc = counts[m];
      if (m >= d.grouped.size() || !d.grouped[m]) {
        say("groups (" + gc.modality + "): none named, each image its own group (splits and intervals by image)");
        continue;
      }
      say("groups (" + gc.modality + "): " + std::to_string(gc.train_groups) + " train, " + std::to_string(gc.val_groups) +
          " val, " + std::to_string(gc.test_groups) + " test; " + std::to_string(gc.mixed) +
          " mixing labels (placed by their majority label)");
      if (gc.spanning > 0)
        throw Error(run_dir + ": " + gc.modality + ": " + std::to_string(gc.spanning) + " groups in two parts (group '" +
                    gc.example + "'); the split leaks");
    }
  }
  if (!resuming && lead) {
    io::atomic_write_text(cfg_path, cfg.to_json().dump(2));
    io::atomic_write_text(split_path, d.to_json().dump());
  }
  // Unpaired: the partners that stand in for a case's missing modalities at prediction time.
  const auto bank_path = runs::files::path(run_dir, runs::files::kPartners);
  if (lead && !d.paired && !fs::exists(bank_path))
    inputs::save_partner_bank(bank_path, inputs::build_partner_bank(d, cache, inputs::kBankSize, data::mix_seed(cfg.seed, 0xBA)));
  const ModelConfig mcfg = cfg.model_config(d);
  const auto& tc = cfg.train;
  const auto class_weights = training_class_weights(tc, d, mcfg);
  check_fits_in_memory(mcfg, tc.batch_size, true, run_dir + ": training");

  // The split and the evaluation partners follow cfg.seed; everything random in training
  // follows train_seed(), which differs between ensemble members.
  const uint64_t tseed = cfg.train_seed();
  torch::manual_seed(data::mix_seed(tseed, 0x1417));
  DRIFANet net(mcfg);
  net->to(opt.device);
  FusedAdam adam(net->parameters(), torch::optim::AdamOptions(tc.lr));
  const int micro = tc.micro_batches;
  const bool sharded = world > 1 || micro > 1;
  const int shard = tc.batch_size / (world * micro);
  if (sharded && (tc.batch_size % (world * micro) != 0 || shard < 2))
    throw Error("[train]: batch_size " + std::to_string(tc.batch_size) + " must split into " + std::to_string(world * micro) +
                " equal shards of at least 2 samples (" + std::to_string(world) + " ranks x " + std::to_string(micro) +
                " micro-batches)");
  TrainerState st;
  st.lr = tc.lr;
  nlohmann::json log = nlohmann::json::array();
  if (resuming) {
    st = load_checkpoint(ckpt, net, adam);
    set_lr(adam, st.lr);
    if (fs::exists(log_path)) {
      log = runs::files::read_log_json(run_dir);
      // Rows written after the checkpoint (an interrupted epoch) are dropped.
      while (!log.empty() && log.back().at("epoch").get<int64_t>() > st.epoch) log.erase(log.size() - 1);
    }
    say("resuming after epoch " + std::to_string(st.epoch));
  }

  // The precision chosen for this machine and model (auto: bf16 where the CPU computes it natively
  // and the model is large enough to gain).
  const Precision precision = parse_precision(tc.precision, "[train] precision");
  const double gmac = summarize(mcfg).gmac();
  const bool bf16 = use_bf16(precision, cpu_features(), opt.device, gmac);
  say("precision " + precision_choice(precision, cpu_features(), opt.device, gmac) + "; " +
      (opt.device.is_cuda() ? std::string("device ") + opt.device.str()
                             : isa_summary(cpu_features()) + "; oneDNN kernels " + onednn_isa()));
  const auto val_examples = d.eval_examples("val", cfg.seed);
  evaluation::EvalOptions eo;
  eo.batch_size = tc.batch_size;
  eo.workers = cfg.data.workers;
  eo.bf16 = bf16;
  eo.device = opt.device;
  eo.task_weights = tc.task_weights;
  const size_t T = static_cast<size_t>(mcfg.tasks());

  TrainSummary sum;
  for (int64_t epoch = st.epoch + 1; epoch <= tc.epochs; ++epoch) {
    if (st.early_wait >= tc.early_stop_patience) break;
    const auto t0 = std::chrono::steady_clock::now();
    // Ranks draw their own dropout masks; one process keeps the plain seed.
    torch::manual_seed(world > 1 ? data::mix_seed(tseed, 0xD20, static_cast<uint64_t>(epoch), static_cast<uint64_t>(rank))
                                 : data::mix_seed(tseed, 0xD20, static_cast<uint64_t>(epoch)));
    auto examples = d.train_examples(tseed, epoch, tc.sampling == "balanced");
    if (tc.steps_per_epoch > 0 && examples.size() > size_t(tc.steps_per_epoch) * tc.batch_size)
      examples.resize(size_t(tc.steps_per_epoch) * tc.batch_size);
    data::LoaderOptions lo;
    if (sharded) {
      // Global batch s is cut into world * micro shards; shard j = m * world + rank is this
      // rank's micro-batch m. A last incomplete global batch is left out so shards stay equal.
      std::vector<data::Example> mine;
      const size_t steps = examples.size() / size_t(tc.batch_size);
      for (size_t st = 0; st < steps; ++st)
        for (int m = 0; m < micro; ++m) {
          const size_t first = st * size_t(tc.batch_size) + size_t(m * world + rank) * size_t(shard);
          mine.insert(mine.end(), examples.begin() + long(first), examples.begin() + long(first + size_t(shard)));
        }
      if (mine.empty()) throw Error("the epoch has fewer than batch_size = " + std::to_string(tc.batch_size) + " training pairs");
      examples = std::move(mine);
      lo.batch_size = shard;
    } else {
      // BatchNorm cannot train on a batch of one: drop a last batch of size 1.
      lo.batch_size = std::min<int>(tc.batch_size, static_cast<int>(examples.size()));
      lo.drop_last = examples.size() % lo.batch_size == 1;
    }
    lo.workers = cfg.data.workers;
    lo.augment = cfg.augment.enabled();
    lo.aug = cfg.augment;
    lo.seed = tseed;
    lo.epoch = epoch;
    data::BatchLoader loader(examples, cache, lo);
    net->set_mode(Mode::Train);
    Progress bar("epoch " + std::to_string(epoch) + "/" + std::to_string(tc.epochs), loader.batches() / size_t(micro), quiet);
    double loss_sum = 0;
    size_t seen = 0, step = 0, micro_done = 0;
    std::vector<double> correct(T, 0), counted(T, 0);
    data::Batch b;
    while (loader.next(b)) {
      for (auto& x : b.inputs) x = x.to(opt.device);
      torch::Tensor loss;
      ForwardResult r;
      ForwardOptions fo;
      if (tc.modality_dropout > 0) {
        // Each example's draw depends on (seed, epoch, rank, its position), not on the batching.
        std::vector<torch::Tensor> rows;
        for (auto i : b.indices)
          rows.push_back(inputs::modality_dropout_mask(1, mcfg.modalities, tc.modality_dropout,
                                                       data::mix_seed(tseed, 0x3D0 + static_cast<uint64_t>(rank), static_cast<uint64_t>(epoch), i)));
        fo.presence = torch::cat(rows).to(opt.device);
      }
      {
        AutocastGuard ac(bf16, opt.device);
        r = net->forward(b.inputs, fo);
        loss = evaluation::multitask_loss(r.logits, b.labels, tc.task_weights, class_weights);
      }
      const double lv = loss.item<double>();
      if (!std::isfinite(lv))
        throw Error("non-finite training loss (" + std::to_string(lv) + ") at epoch " + std::to_string(epoch) + " step " +
                    std::to_string(step + 1) + "; stopped. The last good state is " +
                    (st.epoch > 0 ? ckpt + " (epoch " + std::to_string(st.epoch) + ")" : std::string("none (first epoch)")) +
                    "; try a lower lr or disable bf16");
      (micro > 1 ? loss / double(micro) : loss).backward();
      if (++micro_done % size_t(micro) == 0) {
        if (opt.group) opt.group->average_gradients(*net);
        adam.step();
        adam.zero_grad();
        ++step;
      }
      const size_t bs = b.indices.size();
      loss_sum += lv * bs;
      seen += bs;
      for (size_t t = 0; t < T; ++t) {
        auto y = b.labels[t];
        auto keep = y.ge(0);
        correct[t] += r.logits[t].argmax(1).cpu().eq(y).logical_and(keep).sum().item<double>();
        counted[t] += keep.sum().item<double>();
      }
      bar.update(step, bs, loss_sum / seen);
    }
    double spread = 0;
    if (opt.group) {
      // Every rank now holds rank 0's BN statistics; the parameters must already agree.
      opt.group->broadcast_state(*net);
      double sum = 0;
      for (const auto& p : net->parameters()) sum += p.to(torch::kFloat64).sum().item<double>();
      const auto [lo_sum, hi_sum] = opt.group->min_max(sum);
      spread = hi_sum - lo_sum;
      if (spread > 1e-6 * std::max(1.0, std::abs(sum)))
        throw Error("the ranks' parameters diverged at epoch " + std::to_string(epoch) + " (checksums " +
                    std::to_string(lo_sum) + " .. " + std::to_string(hi_sum) + ")");
    }
    const auto val = evaluation::evaluate(net, val_examples, cache, eo);
    if (!std::isfinite(val.loss))
      throw Error("non-finite validation loss at epoch " + std::to_string(epoch) + "; stopped. The last good state is " + ckpt);

    // Keras semantics: ReduceLROnPlateau and EarlyStopping count epochs without an improvement
    // of at least 1e-4 and act when the count reaches their patience.
    const bool improved = val.loss < st.plateau_best - 1e-4;
    if (improved) {
      st.plateau_best = val.loss;
      st.plateau_wait = 0;
      st.early_wait = 0;
    } else {
      ++st.plateau_wait;
      ++st.early_wait;
      if (st.plateau_wait >= tc.plateau_patience && st.lr > tc.min_lr) {
        st.lr = std::max(st.lr * tc.plateau_factor, tc.min_lr);
        set_lr(adam, st.lr);
        st.plateau_wait = 0;
        say("reducing learning rate to " + std::to_string(st.lr));
      }
    }
    const bool is_best = val.loss < st.best_val_loss;
    if (is_best) {
      io::Metadata best_metadata{{"drifa.epoch", std::to_string(epoch)}, {"drifa.val_loss", std::to_string(val.loss)},
                                 {runs::kPairingKey, d.paired ? "paired" : "unpaired"}};
      if (auto v = data::volume_recipes_json(cfg.data); !v.empty()) best_metadata[runs::kVolumesKey] = v;
      st.best_val_loss = val.loss;
      st.best_epoch = epoch;
      if (lead)
        runs::save_model(net, best, best_metadata);
    }
    st.epoch = epoch;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json row = nlohmann::json::object();
    row["epoch"] = epoch;
    row["lr"] = adam.param_groups()[0].options().get_lr();
    row["train_loss"] = seen ? loss_sum / seen : 0.0;
    for (size_t t = 0; t < T; ++t) row["train_acc_" + mcfg.task_name(t)] = counted[t] ? correct[t] / counted[t] : 0.0;
    row["val_loss"] = val.loss;
    for (size_t t = 0; t < T; ++t) {
      row["val_acc_" + mcfg.task_name(t)] = val.metrics[t].accuracy;
      row["val_f1_" + mcfg.task_name(t)] = val.metrics[t].macro_f1;
    }
    row["seconds"] = secs;
    row["train_samples"] = seen * size_t(world);
    if (world > 1) {
      row["ranks"] = world;
      row["rank_param_spread"] = spread;
    }
    log.push_back(row);
    // The checkpoint is written last: a run killed before it resumes from the previous epoch.
    if (lead) {
      io::atomic_write_text(log_path, log.dump(1));
      io::atomic_write_text(runs::files::path(run_dir, runs::files::kLogCsv), csv_of(log));
      save_checkpoint(ckpt, net, adam, st);
    }
    if (opt.group) opt.group->barrier();  // no rank runs ahead of the checkpoint
    std::ostringstream msg;
    msg << std::fixed << std::setprecision(4) << "train loss " << row["train_loss"].get<double>() << "  val loss " << val.loss;
    for (size_t t = 0; t < T; ++t) msg << "  " << mcfg.task_name(t) << " acc " << val.metrics[t].accuracy;
    if (is_best) msg << "  *best";
    bar.finish(msg.str());
    ++sum.epochs_run;
    if (opt.on_epoch_end) opt.on_epoch_end(epoch);
  }
  sum.early_stopped = st.early_wait >= tc.early_stop_patience && st.epoch < tc.epochs;
  if (sum.early_stopped) say("early stopping: no validation improvement for " + std::to_string(tc.early_stop_patience) + " epochs");
  sum.best_epoch = st.best_epoch;
  sum.best_val_loss = st.best_val_loss;
  sum.best_model = best;
  if (!lead) return sum;
  if (opt.evaluate_test) {
    EvaluateOptions eo;
    eo.device = opt.device;
    eo.bf16 = bf16;
    eo.cache = &cache;
    sum.test_metrics = evaluate_run(run_dir, best, "test", run_dir, eo);
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
  evaluation::write_predictions(runs::files::path(out_dir, runs::files::kPredictions), r, examples, mc);
  if (!missing.is_null()) {
    missing["part"] = part;
    missing["model"] = model_path;
    io::atomic_write_text(runs::files::path(out_dir, runs::files::kMissing), missing.dump(2));
    j["missing"] = missing;
  }
  return j;
}

}  // namespace drifa::training
