// drifa serve
#include <iostream>

#include "commands.h"
#include "drifa/runtime/threads.h"
#include "drifa/serve/http_server.h"

namespace drifa::cli {

void register_serve(CLI::App& app, GlobalFlags& g) {
  struct Opts {
    std::string model, partners_from;
    serve::ServerOptions server;
  };
  auto o = std::make_shared<Opts>();
  auto& s = o->server;
  auto* cmd = app.add_subcommand("serve", "the model behind an HTTP service and a web page (JSON API, batched, bounded)");
  cmd->add_option("model", o->model, "a model file (.safetensors), a training run folder or an ensemble folder")->required();
  cmd->add_option("--host", s.host, "address to listen on (default 127.0.0.1; any other needs --token-file)");
  cmd->add_option("--port", s.port, "port (0: any free port)")->check(bounded(settings::limits::kPort));
  cmd->add_option("--token-file", s.token_file, "file whose first line is the bearer token every request but / and /healthz must send");
  cmd->add_option("--partners-from", o->partners_from, "the run folder whose partner bank a bare unpaired model file uses");
  cmd->add_option("--max-batch", s.service.batch.max_batch, "cases per forward batch")->check(bounded(settings::limits::kMaxBatch));
  cmd->add_option("--max-wait-ms", s.service.batch.max_wait_ms, "how long a request waits for others to share its batch")
      ->check(bounded(settings::limits::kMaxWaitMs));
  cmd->add_option("--queue", s.service.batch.queue, "requests waiting before the server answers 503")
      ->check(bounded(settings::limits::kQueue));
  cmd->add_option("--timeout", s.service.timeout_s, "seconds a request may take before it is answered 503")
      ->check(bounded(settings::limits::kRequestTimeout));
  cmd->add_option("-T,--passes", s.service.passes, "Monte Carlo passes when a request does not say (0 = deterministic)")
      ->check(bounded(settings::limits::kPasses));
  cmd->add_option("--tta", s.service.views, "test-time augmentation views when a request does not say (0: off; a request's tta field)")
      ->check(bounded(settings::limits::kViews));
  cmd->add_option("--max-passes", s.service.max_passes, "the most Monte Carlo passes a request may ask for")
      ->check(bounded(settings::limits::kPasses));
  cmd->add_option("--seed", s.service.seed, "Monte Carlo seed when a request does not say");
  cmd->add_option("--partners", s.service.partners, "unpaired models: partners averaged over for each modality not given")
      ->check(bounded(settings::limits::kPartners));
  cmd->add_option("--max-body", s.max_body_bytes, "largest request body in bytes (413 above)")
      ->check(bounded(settings::limits::kMaxBody));
  cmd->add_option("--max-image-pixels", s.service.max_image_pixels, "largest uploaded image in pixels (400 above)")
      ->check(bounded(settings::limits::kImagePixels));
  cmd->add_option("--http-threads", s.http_threads, "requests decoded and waiting on the model at once (connections need no thread)")
      ->check(bounded(settings::limits::kHttpThreads));
  cmd->add_option("--io-timeout", s.io_timeout_s, "seconds a connection may stay idle before it is closed")
      ->check(bounded(settings::limits::kTimeoutSeconds));
  cmd->add_option("--request-deadline", s.request_deadline_s,
                  "seconds a request's header and body may take to arrive, however slowly they trickle")
      ->check(bounded(settings::limits::kTimeoutSeconds));
  cmd->add_option("--max-connections", s.max_connections, "open connections in all (503 beyond)")
      ->check(bounded(settings::limits::kConnections));
  cmd->add_option("--max-connections-per-client", s.max_connections_per_client,
                  "open connections from one client address (503 beyond)")
      ->check(bounded(settings::limits::kConnections));
  cmd->add_flag("--access-log", s.access_log, "a line per request on stderr (errors are always logged)");
  cmd->callback([o, &g] {
    apply_global_flags(g);
    o->server.service.device = pick_device(g.device);
    serve::serve(o->model, o->partners_from, o->server, [&g](const std::string& url, const serve::Service& service) {
      const auto info = service.model_info();
      std::cout << "drifa serve: listening on " << url << " (" << info["models"].get<int64_t>() << " model(s), "
                << info["modalities"].size() << " modalities, " << info["pairing"].get<std::string>()
                << (info["calibration"].is_null() ? ", not calibrated" : ", calibrated") << ")" << std::endl;
      if (!g.quiet) std::cout << "drifa serve: open " << url << " in a browser; SIGTERM or Ctrl-C stops it" << std::endl;
    });
    if (!g.quiet) std::cout << "drifa serve: stopped" << std::endl;
  });
}

}  // namespace drifa::cli
