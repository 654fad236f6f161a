#pragma once
// One validator for every setting, wherever it comes from: a TOML run config, a model file's
// metadata, a run folder's config.json or a command-line flag. Each value is read through a
// Table, which checks its type (no wrap-around, no truncation of 1.5 to 1, finite floats), its
// range, and refuses keys nobody asked for. Every message has the form
//   SOURCE: KEY: found VALUE, allowed WHAT
// (SOURCE is the file, or "command line"). The bounds themselves are named once, in `limits`
// below; the README's settings table lists them.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace drifa::settings {

struct IntRange {
  int64_t lo, hi;
};
struct RealRange {
  double lo, hi;
  bool lo_open = false, hi_open = false;  // (lo, ..] or [.., hi)
};
std::string describe(const IntRange& r);   // "an integer from 1 to 100000"
std::string describe(const RealRange& r);  // "a finite number in (0, 1)"
bool contains(const IntRange& r, int64_t v);
bool contains(const RealRange& r, double v);

// Every bound a setting, flag or run file is held to.
namespace limits {
inline constexpr IntRange kModalities{2, 64};
inline constexpr IntRange kTasks{1, 64};
inline constexpr IntRange kClasses{2, 10000};        // per task
inline constexpr IntRange kInChannels{1, 5};  // 5: a volume's 2.5D stack of five slices
inline constexpr IntRange kImageSize{16, 2048};      // the network's input side
inline constexpr IntRange kStages{2, 64};
inline constexpr IntRange kWidth{1, 4096};           // channels of one stage
inline constexpr RealRange kDropout{0.0, 1.0, false, true};
inline constexpr RealRange kBnMomentum{0.0, 1.0, true, false};
inline constexpr IntRange kEpochs{1, 100000};
inline constexpr IntRange kBatchSize{2, 65536};
// No practical upper bound: a huge rate diverges, which the trainer reports as a non-finite loss.
inline constexpr RealRange kLearningRate{0.0, 1e30, true, false};
inline constexpr RealRange kTaskWeight{0.0, 1e6};
inline constexpr RealRange kPlateauFactor{0.0, 1.0, true, true};
inline constexpr IntRange kPatience{1, 100000};
inline constexpr RealRange kMinLr{0.0, 1e30};
inline constexpr IntRange kStepsPerEpoch{0, 1000000000};
inline constexpr IntRange kMicroBatches{1, 65536};
inline constexpr RealRange kFraction{0.0, 1.0, true, true};
inline constexpr IntRange kMinSide{1, 4096};
inline constexpr IntRange kWorkers{0, 1024};          // further capped at a multiple of the cores
inline constexpr IntRange kImagePixels{1, 1ll << 30};  // data.max_image_pixels
inline constexpr int64_t kDefaultImagePixels = 64ll << 20;  // 8192 x 8192
inline constexpr IntRange kVolumeVoxels{1, 1ll << 32};  // data.max_volume_voxels
inline constexpr int64_t kDefaultVolumeVoxels = 256ll << 20;  // 1 GiB as float voxels
inline constexpr RealRange kPercentile{0.0, 100.0};
inline constexpr RealRange kSpacingMm{0.0, 100.0};            // in_plane_spacing (0 = the slice's finer spacing)
inline constexpr IntRange kSliceStep{1, 100000};               // every, central
inline constexpr RealRange kWindow{-1e9, 1e9};
inline constexpr RealRange kWindowWidth{0.0, 1e9, true, false};
inline constexpr RealRange kRotation{0.0, 180.0};
inline constexpr RealRange kTranslate{0.0, 4096.0};
inline constexpr RealRange kBrightness{0.0, 10.0, true, false};
inline constexpr IntRange kSeed{0, INT64_MAX};
inline constexpr IntRange kMember{0, 100000};
inline constexpr IntRange kEnsembleMembers{1, 1000};
inline constexpr IntRange kPasses{0, 10000};           // Monte Carlo passes (0 = deterministic)
inline constexpr IntRange kViews{0, 8};                // test-time augmentation views (0 = off; the square has 8 symmetries)
inline constexpr IntRange kTsneIterations{250, 100000};
inline constexpr RealRange kPerplexity{1.0, 1000.0};
inline constexpr IntRange kCount{0, 100000};           // overlays, cases shown
inline constexpr IntRange kNproc{0, 256};
inline constexpr IntRange kTimeoutSeconds{1, 86400};
inline constexpr IntRange kConnections{1, 100000};     // serve: open connections
// drifa serve (the CLI flags, ServiceOptions and ServerOptions take them from here)
inline constexpr IntRange kPort{0, 65535};                // 0: any free port
inline constexpr IntRange kMaxBatch{1, 1024};             // cases per forward batch
inline constexpr IntRange kMaxWaitMs{0, 10000};           // a request's wait for others to share its batch
inline constexpr IntRange kQueue{1, 100000};              // requests waiting before 503
inline constexpr RealRange kRequestTimeout{0.0, 86400.0, true, false};  // seconds, (0, 86400]
inline constexpr IntRange kHttpThreads{1, 1024};
inline constexpr IntRange kSynthPerClass{1, 10000};
inline constexpr RealRange kAlpha{0.0, 1.0, true, true};       // conformal miscoverage
inline constexpr RealRange kModalityDropout{0.0, 0.95};         // [train] modality_dropout
inline constexpr IntRange kPartners{1, 32};                     // partners averaged (inputs::kBankSize)
inline constexpr RealRange kTemperature{0.05, 20.0};          // calibration::kMin/kMaxTemperature
inline constexpr IntRange kResamples{0, 1000000};             // bootstrap resamples (0 = no intervals)
inline constexpr IntRange kFolds{2, 100};                     // cross-validation folds
inline constexpr IntRange kCalibrationScores{1, 100000000};   // conformal scores stored per method
inline constexpr IntRange kSynthSize{16, 1024};
inline constexpr int kThreadsPerCore = 4;             // --threads is capped at this multiple of the cores
inline constexpr int64_t kMaxFileBytes = 2ll << 30;   // any single input file
inline constexpr IntRange kMaxBody{1024, kMaxFileBytes};  // serve: request body bytes
inline constexpr int64_t kMaxNameLength = 200;        // modality, task and class names
}  // namespace limits

// A JSON object being read as settings.
class Table {
 public:
  // source: the file (or "command line"); prefix: where the table sits ("train", "data.modality[1]").
  // Throws drifa::Error when j is not an object.
  Table(const nlohmann::json& j, std::string source, std::string prefix = "");

  bool has(const char* key) const;
  // Fails "missing" for the first of these keys that is absent (run files, where nothing is optional).
  void require(std::initializer_list<const char*> keys) const;
  // A number in r, or null (a value that was not a number when it was written, e.g. ROC-AUC of one class).
  std::optional<double> real_or_null(const char* key, RealRange r);
  int64_t integer(const char* key, int64_t def, IntRange r);
  double real(const char* key, double def, RealRange r);
  bool boolean(const char* key, bool def);
  // allow_empty = false refuses ""; names (no_control) refuse control characters and NUL bytes.
  std::string string(const char* key, const std::string& def, bool allow_empty = true);
  std::string choice(const char* key, const std::string& def, std::initializer_list<const char*> options);
  std::vector<int64_t> integers(const char* key, std::vector<int64_t> def, IntRange each, IntRange count);
  std::vector<double> reals(const char* key, std::vector<double> def, RealRange each, IntRange count);
  // Names: non-empty, no control characters, at most limits::kMaxNameLength bytes; unique when asked.
  std::vector<std::string> names(const char* key, std::vector<std::string> def, IntRange count, bool unique);
  std::vector<std::vector<std::string>> name_lists(const char* key, IntRange count, IntRange each_count);
  Table table(const char* key);                                   // a sub-table (must be present)
  std::vector<Table> tables(const char* key, IntRange count);     // an array of tables
  const nlohmann::json& raw(const char* key);                     // declared, not checked
  void allow(const char* key);                                    // declared; read elsewhere

  // Refuses every key no reader declared: "SOURCE: PREFIX.KEY: unknown key; allowed: ...".
  void finish() const;
  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  std::string key_path(const std::string& key) const;
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json* find(const char* key);
  const nlohmann::json* j_;
  std::string source_, prefix_;
  std::vector<std::string> known_;
};

// The same checks for one value that comes from elsewhere (a flag, a field set in code).
// name is the key or flag ("--passes"); messages as above.
int64_t check_integer(const std::string& source, const std::string& name, int64_t v, IntRange r);
double check_real(const std::string& source, const std::string& name, double v, RealRange r);
void check_name(const std::string& source, const std::string& name, const std::string& v);

// A JSON value as a message shows it: short, NaN and infinities spelled out.
std::string show(const nlohmann::json& v);

// Parses JSON text from a file, refusing duplicate keys in any object (the later would
// silently win). Throws drifa::Error "SOURCE: malformed JSON: ..." / "duplicate key".
nlohmann::json parse_json(const std::string& text, const std::string& source);

}  // namespace drifa::settings
