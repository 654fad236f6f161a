#include "drifa/serve/http_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "drifa/io/atomic_file.h"
#include "drifa/io/settings.h"
#include "drifa/serve/page.h"

namespace drifa::serve {

namespace {

using Clock = std::chrono::steady_clock;

const char* const kRoutes[] = {"/", "/healthz", "/metrics", "/v1/model", "/v1/predict"};

// The route a request is counted under: one of ours, or "other" (the raw path is the client's and
// would make the metrics' label set unbounded).
std::string route_of(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

void answer_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

void answer_error(httplib::Response& res, int status, const std::string& message) {
  answer_json(res, status, {{"error", message}, {"status", status}});
  if (status == 503) res.set_header("Retry-After", "1");
  if (status == 401) res.set_header("WWW-Authenticate", "Bearer");
}

// When the request started, for the latency of the request this thread is answering (httplib
// answers a request on one thread from routing to logging).
thread_local Clock::time_point t_request_start{};

}  // namespace

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string read_token_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path + ": token file not found (or not a regular file)");
  if (fs::file_size(path, ec) > 4096) throw Error(path + ": token file larger than 4096 bytes");
  std::string text = io::read_file(path, "token file");
  text = text.substr(0, text.find('\n'));
  const auto first = text.find_first_not_of(" \t\r"), last = text.find_last_not_of(" \t\r");
  const std::string token = first == std::string::npos ? "" : text.substr(first, last - first + 1);
  if (token.size() < 16) throw Error(path + ": token of " + std::to_string(token.size()) + " characters, allowed at least 16");
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e) throw Error(path + ": the token has a character that is not printable ASCII");
  return token;
}

bool same_token(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < n; ++i)
    diff = diff | (static_cast<unsigned char>(i < a.size() ? a[i] : 0) ^ static_cast<unsigned char>(i < b.size() ? b[i] : 0));
  return diff == 0;
}

void check(const ServerOptions& opt, const std::string& source) {
  settings::check_integer(source, "port", opt.port, {0, 65535});
  settings::check_integer(source, "max_body", opt.max_body_bytes, {1024, settings::limits::kMaxFileBytes});
  settings::check_integer(source, "http_threads", opt.http_threads, {1, 1024});
  settings::check_integer(source, "io_timeout", opt.io_timeout_s, settings::limits::kTimeoutSeconds);
  if (opt.host.empty()) throw Error(source + ": host: empty");
  if (!is_loopback(opt.host) && opt.token_file.empty())
    throw Error(source + ": host: found " + opt.host + ", allowed a loopback address (127.0.0.1, ::1, localhost) unless a "
                "token file is given (--token-file): a model served beyond this machine needs a bearer token");
  check(opt.service, source);
}

struct Server::Impl {
  Service& service;
  ServerOptions opt;
  std::string token;
  httplib::Server http;
  int port = -1;
  std::mutex log_mu;

  Impl(Service& s, ServerOptions o) : service(s), opt(std::move(o)) {
    check(opt, "serve options");
    if (!opt.token_file.empty()) token = read_token_file(opt.token_file);
    const int threads = opt.http_threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_payload_max_length(static_cast<size_t>(opt.max_body_bytes));
    http.set_read_timeout(opt.io_timeout_s, 0);
    http.set_write_timeout(opt.io_timeout_s, 0);
    // httplib writes a response's headers and body separately: with Nagle's algorithm the body
    // waits for the client's delayed ACK (40 ms on Linux) on every request.
    http.set_tcp_nodelay(true);
    // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port
    // and share its connections; a taken port must be an error instead.
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    routes();
  }

  bool authorised(const httplib::Request& req) const {
    if (token.empty() || req.path == "/" || req.path == "/healthz") return true;
    const std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return h.compare(0, prefix.size(), prefix) == 0 && same_token(h.substr(prefix.size()), token);
  }

  void log(const httplib::Request& req, const httplib::Response& res, double seconds) {
    if (!opt.access_log && res.status < 400) return;
    std::lock_guard<std::mutex> lock(log_mu);
    std::cerr << "drifa serve: " << req.remote_addr << " " << req.method << " " << route_of(req.path) << " " << res.status
              << " " << static_cast<int64_t>(seconds * 1000) << " ms";
    if (res.status >= 400) {
      const auto j = nlohmann::json::parse(res.body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_string()) std::cerr << ": " << j["error"].get<std::string>();
    }
    std::cerr << "\n";
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data())
      throw RequestError(400, "request: send multipart/form-data with one file per modality, each in a field named as the modality");
    PredictRequest pr;
    for (const auto& [name, part] : req.files) {
      if (part.filename.empty()) pr.fields.emplace_back(name, part.content);
      else pr.files.push_back({name, part.filename, part.content});
    }
    answer_json(res, 200, service.predict(pr));
  }

  void routes() {
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      if (authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
      answer_error(res, 401, req.has_header("Authorization") ? "wrong bearer token" : "this server needs a bearer token: Authorization: Bearer TOKEN");
      return httplib::Server::HandlerResponse::Handled;
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'");
      res.set_content(web_page(), "text/html; charset=utf-8");
    });
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { answer_json(res, 200, {{"status", "ok"}}); });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(service.metrics().render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/model", [this](const httplib::Request&, httplib::Response& res) {
      auto j = service.model_info();
      j["limits"]["max_body_bytes"] = opt.max_body_bytes;
      j["auth"] = !token.empty();
      answer_json(res, 200, j);
    });
    http.Post("/v1/predict", [this](const httplib::Request& req, httplib::Response& res) { predict(req, res); });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const RequestError& e) {
        answer_error(res, e.status(), e.what());
      } catch (const std::exception& e) {
        answer_error(res, 500, std::string("internal error: ") + e.what());
      } catch (...) {
        answer_error(res, 500, "internal error");
      }
    });
    // Answers httplib gives by itself (404, 405, 413, 400 for a malformed request) get a JSON body.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
      std::string message;
      switch (res.status) {
        case 404: message = "no such route; the routes: GET /, /healthz, /metrics, /v1/model; POST /v1/predict"; break;
        case 405: message = "method not allowed on " + route_of(req.path); break;
        case 413: message = "request body larger than " + std::to_string(opt.max_body_bytes) + " bytes (--max-body)"; break;
        case 414: message = "request line too long"; break;
        default: message = "malformed request"; break;
      }
      answer_error(res, res.status, message);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // Requests refused before routing (413 on the declared length) have no start time: 0 s.
      const double s = t_request_start == Clock::time_point{} ? 0.0
                                                               : std::chrono::duration<double>(Clock::now() - t_request_start).count();
      t_request_start = Clock::time_point{};
      service.metrics().request(route_of(req.path), res.status, s);
      log(req, res, s);
    });
  }
};

Server::Server(Service& service, ServerOptions opt) : impl_(std::make_unique<Impl>(service, std::move(opt))) {}
Server::~Server() = default;

int Server::bind() {
  auto& i = *impl_;
  i.port = i.opt.port == 0 ? i.http.bind_to_any_port(i.opt.host) : (i.http.bind_to_port(i.opt.host, i.opt.port) ? i.opt.port : -1);
  if (i.port <= 0)
    throw Error("serve: cannot listen on " + i.opt.host + ":" + std::to_string(i.opt.port) +
                " (address in use, not an address of this machine, or a privileged port)");
  return i.port;
}

void Server::run() {
  if (impl_->port <= 0) bind();
  impl_->http.listen_after_bind();
}

void Server::stop() { impl_->http.stop(); }

std::string Server::url() const {
  const auto& h = impl_->opt.host;
  return "http://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(impl_->port) + "/";
}

namespace {

// SIGTERM and SIGINT write a byte here; a watcher thread reads it and stops the server (what
// stop() does is not async-signal-safe, a write() is).
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const char c = 's';
  const auto n = ::write(g_signal_pipe[1], &c, 1);
  (void)n;
}

// For its lifetime, SIGTERM and SIGINT stop the server; the previous handlers come back after.
class StopOnSignals {
 public:
  explicit StopOnSignals(Server& server) {
    if (::pipe(g_signal_pipe) != 0) throw Error("serve: cannot create the signal pipe");
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, &old_term_);
    ::sigaction(SIGINT, &sa, &old_int_);
    watcher_ = std::thread([this, &server] {
      char c = 0;
      while (::read(g_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
      }
      // A signal that comes before the server listens: stop again until run() has returned.
      while (!done_) {
        server.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  ~StopOnSignals() {
    done_ = true;
    on_stop_signal(0);  // wakes the watcher when no signal came
    watcher_.join();
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::close(g_signal_pipe[0]);
    ::close(g_signal_pipe[1]);
    g_signal_pipe[0] = g_signal_pipe[1] = -1;
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct sigaction old_term_ {}, old_int_ {};
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

}  // namespace

void serve(const std::string& model, const std::string& partners_from, const ServerOptions& opt,
           const std::function<void(const std::string&, const Service&)>& on_ready) {
  check(opt, "command line");
  Service service(uncertainty::open_predictor(model, opt.service.device, partners_from), opt.service);
  Server server(service, opt);
  server.bind();
  {
    StopOnSignals signals(server);
    if (on_ready) on_ready(server.url(), service);
    server.run();  // returns once stopped and every accepted request is answered
  }
  service.stop();
}

}  // namespace drifa::serve
