#pragma once
// `drifa serve`: a Service (service.h) behind HTTP, on Debian's libmicrohttpd. One event loop
// (epoll) reads and writes every connection, so a slow or idle client holds a socket, never a
// thread; predictions run on request threads while the loop answers /healthz and /metrics.
//
//   GET  /            the web page (page.h): an image per modality in, classes, probabilities,
//                     uncertainty, prediction sets and Grad-CAM overlays out
//   POST /v1/predict  multipart/form-data: a file per modality, the field named as the modality;
//                     options as plain fields (passes, seed, partners, gradcam, alpha, score,
//                     calibrated). Answers the JSON of `drifa predict` (overlays as PNG data URIs)
//   GET  /v1/model    modalities, tasks, classes, configuration, calibration, ensemble size
//   GET  /healthz     {"status": "ok"}
//   GET  /metrics     Prometheus text (metrics.h)
//
// Errors are JSON, {"error": MESSAGE, "status": CODE}. Safety: loopback unless a bearer token
// file is given (then every route but / and /healthz asks for it, compared in constant time);
// bodies over max_body_bytes get 413 before they are read; images are checked from their header
// against max_image_pixels; no request names a path on the server. Slow and many clients: a
// request's header and body must arrive within request_deadline_s of its first byte (however
// slowly they trickle); open connections are capped overall and per client address, and a
// connection beyond a cap is answered 503 at once and closed.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "drifa/serve/service.h"

namespace drifa::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0: any free port (bind() returns it)
  std::string token_file;     // required when host is not a loopback address
  int64_t max_body_bytes = 32ll << 20;
  int http_threads = 16;      // requests decoded and waiting on the model at once (not connections)
  int io_timeout_s = 30;      // a connection idle this long is closed
  int request_deadline_s = 60;           // header and body must arrive within this, from the first byte
  int max_connections = 512;             // open connections in all
  int max_connections_per_client = 64;   // open connections from one client address
  bool access_log = false;    // a line per request on stderr (errors are always logged)
  ServiceOptions service;
};
// Refuses out-of-bound options and a non-loopback host without a token file, naming the setting.
void check(const ServerOptions& opt, const std::string& source);
bool is_loopback(const std::string& host);

// The token from a token file: its first line without surrounding white space; refuses a
// missing, empty, oversized file or a token of fewer than 16 characters, naming the file.
std::string read_token_file(const std::string& path);
// Constant-time equality (the time depends on the lengths only).
bool same_token(const std::string& a, const std::string& b);

class Server {
 public:
  Server(Service& service, ServerOptions opt);
  ~Server();
  // Binds the listening socket; throws drifa::Error naming host:port. Returns the bound port.
  int bind();
  // Serves until stop(); requests already accepted are answered before it returns.
  void run();
  // Stops accepting. Thread-safe (not async-signal-safe: see serve()).
  void stop();
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The run-level driver of `drifa serve`: opens the model (a model file, run or ensemble folder;
// partners_from as for predict), binds, calls on_ready with the URL, serves until SIGTERM or
// SIGINT, then stops accepting, answers the requests in flight and returns.
void serve(const std::string& model, const std::string& partners_from, const ServerOptions& opt,
           const std::function<void(const std::string& url, const Service&)>& on_ready);

}  // namespace drifa::serve
