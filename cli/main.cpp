// drifa: the command-line tool. A thin layer over libdrifa: every subcommand calls the library.
#include <filesystem>
#include <iostream>
#include <new>

#include <c10/util/Exception.h>

#include "commands.h"
#include "drifa/error.h"

int main(int argc, char** argv) {
  CLI::App app{"DRIFA: multimodal fusion learning with dual attention (DRIFA-Net) for medical images"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags (--threads, --quiet, --device) may follow the subcommand
  drifa::cli::GlobalFlags g;
  g.argv.assign(argv, argv + argc);
  drifa::cli::add_global_flags(app, g);
  drifa::cli::register_info(app, g);
  drifa::cli::register_init(app, g);
  drifa::cli::register_synth(app, g);
  drifa::cli::register_check(app, g);
  drifa::cli::register_train(app, g);
  drifa::cli::register_evaluate(app, g);
  drifa::cli::register_ensemble(app, g);
  drifa::cli::register_cv(app, g);
  drifa::cli::register_calibrate(app, g);
  drifa::cli::register_uq(app, g);
  drifa::cli::register_predict(app, g);
  drifa::cli::register_gradcam(app, g);
  drifa::cli::register_tsne(app, g);
  drifa::cli::register_report(app, g);
  drifa::cli::register_serve(app, g);
  drifa::cli::register_volume(app, g);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0 || dynamic_cast<const CLI::CallForHelp*>(&e) || dynamic_cast<const CLI::CallForAllHelp*>(&e))
      return app.exit(e);  // --help
    // Flag errors read like every other refusal: "drifa: error: command line: --passes: found -5, allowed ..."
    std::cerr << "drifa: error: command line: " << e.what() << "\nRun with --help for more information.\n";
    return e.get_exit_code();
  } catch (const drifa::Error& e) {
    std::cerr << "drifa: error: " << e.what() << "\n";
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "drifa: error: " << e.path1().string() << ": " << e.code().message() << "\n";  // e.g. "File exists"
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "drifa: error: out of memory (an input or setting asked for more memory than this machine has)\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "drifa: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "drifa: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
