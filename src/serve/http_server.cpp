#include "drifa/serve/http_server.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <set>

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

std::string error_body(int status, const std::string& message) {
  return nlohmann::json{{"error", message}, {"status", status}}.dump();
}

// One TCP connection (MHD's socket context). Guarded by Impl::conn_mu: the deadline watchdog
// reads it from its own thread.
struct Conn {
  int fd = -1;
  std::string address;  // the client's address, without the port
  // Receiving a request (its header or body), since `since`: the deadline applies. False
  // while a request is computed or answered.
  bool receiving = true;
  Clock::time_point since;
  bool cut = false;      // shut down by the deadline watchdog
  bool refused = false;  // beyond a connection cap: answered 503 and closed at once
};

// One HTTP request (MHD's per-request context), touched by the event loop only, except result
// fields the request thread fills before it resumes the connection.
struct Req {
  std::string route, method;
  Clock::time_point start = Clock::now();
  int status = 0;  // the answer's status, once queued
  MHD_PostProcessor* post = nullptr;
  PredictRequest predict;
  bool part_is_file = false;
  uint64_t body_bytes = 0;
  int refusal_status = 0;  // a refusal found while the body arrived, answered once it has
  std::string refusal;
  bool dispatched = false;
  std::atomic<bool> done{false};
  int result_status = 0;
  std::string result_body;
};

// Threads that decode a request's images and wait for its batch (Service::predict blocks), so
// the event loop never does. Bounded: a request that finds `max_waiting` others waiting gets 503.
class RequestThreads {
 public:
  RequestThreads(int threads, size_t max_waiting) : max_waiting_(max_waiting) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  ~RequestThreads() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  bool has_room() {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_.size() < max_waiting_;
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  void work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing left to do
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  size_t max_waiting_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

std::string address_of(const sockaddr* a) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (!a) return buf;
  if (a->sa_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, buf, sizeof buf);
  if (a->sa_family == AF_INET6) ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, buf, sizeof buf);
  return buf;
}

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
  settings::check_integer(source, "port", opt.port, settings::limits::kPort);
  settings::check_integer(source, "max_body", opt.max_body_bytes, settings::limits::kMaxBody);
  settings::check_integer(source, "http_threads", opt.http_threads, settings::limits::kHttpThreads);
  settings::check_integer(source, "io_timeout", opt.io_timeout_s, settings::limits::kTimeoutSeconds);
  settings::check_integer(source, "request_deadline", opt.request_deadline_s, settings::limits::kTimeoutSeconds);
  settings::check_integer(source, "max_connections", opt.max_connections, settings::limits::kConnections);
  settings::check_integer(source, "max_connections_per_client", opt.max_connections_per_client,
                          {1, std::max<int64_t>(1, opt.max_connections)});
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
  MHD_Daemon* daemon = nullptr;
  int port = -1;
  std::mutex log_mu;

  // Connections, for the caps and the deadline watchdog.
  std::mutex conn_mu;
  std::set<Conn*> conns;
  std::map<std::string, int> per_client;
  std::thread watchdog;
  std::condition_variable watchdog_cv;
  bool watchdog_stop = false;

  std::unique_ptr<RequestThreads> workers;
  std::atomic<int> requests_open{0};  // requests received, not yet answered and logged

  // run() waits here for stop().
  std::mutex run_mu;
  std::condition_variable run_cv;
  bool stop_requested = false;

  Impl(Service& s, ServerOptions o) : service(s), opt(std::move(o)) {
    check(opt, "serve options");
    if (!opt.token_file.empty()) token = read_token_file(opt.token_file);
  }

  ~Impl() { shut_down(); }

  void shut_down() {
    // The request threads finish what they hold first: they resume their connections through
    // the daemon, which must still be there.
    workers.reset();
    if (daemon) {
      MHD_stop_daemon(daemon);
      daemon = nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(conn_mu);
      watchdog_stop = true;
    }
    watchdog_cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
  }

  bool authorised(MHD_Connection* c, const std::string& route) const {
    if (token.empty() || route == "/" || route == "/healthz") return true;
    const char* h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const std::string prefix = "Bearer ";
    return h && std::string(h).compare(0, prefix.size(), prefix) == 0 && same_token(std::string(h).substr(prefix.size()), token);
  }

  void log(const std::string& address, const Req& r, double seconds, const std::string& body) {
    if (!opt.access_log && r.status < 400) return;
    std::lock_guard<std::mutex> lock(log_mu);
    std::cerr << "drifa serve: " << address << " " << r.method << " " << r.route << " " << r.status << " "
              << static_cast<int64_t>(seconds * 1000) << " ms";
    if (r.status >= 400) {
      const auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_string()) std::cerr << ": " << j["error"].get<std::string>();
    }
    std::cerr << "\n";
  }

  // Queues an answer: JSON unless content_type says otherwise.
  MHD_Result answer(MHD_Connection* c, Req* r, int status, const std::string& body,
                    const char* content_type = "application/json") {
    MHD_Response* res = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
    if (!res) return MHD_NO;
    MHD_add_response_header(res, "Content-Type", content_type);
    if (status == 503) MHD_add_response_header(res, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(res, "WWW-Authenticate", "Bearer");
    if (r->route == "/")
      MHD_add_response_header(res, "Content-Security-Policy",
                              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'");
    const auto ok = MHD_queue_response(c, static_cast<unsigned>(status), res);
    set_receiving(c, false);  // answered: no deadline while the answer is written
    MHD_destroy_response(res);
    r->status = status;
    if (r->route != "/" && status >= 400) r->result_body = body;  // for the log line
    return ok;
  }
  MHD_Result refuse(MHD_Connection* c, Req* r, int status, const std::string& message) {
    return answer(c, r, status, error_body(status, message));
  }

  Conn* conn_of(MHD_Connection* c) {
    const auto* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? static_cast<Conn*>(info->socket_context) : nullptr;
  }
  void set_receiving(MHD_Connection* c, bool receiving) {
    if (Conn* k = conn_of(c)) {
      std::lock_guard<std::mutex> lock(conn_mu);
      k->receiving = receiving;
      k->since = Clock::now();
    }
  }

  // ---- the request handler (event loop) ------------------------------------------------------

  MHD_Result begin(MHD_Connection* c, Req* r) {
    if (!authorised(c, r->route))
      return refuse(c, r, 401,
                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization")
                        ? "wrong bearer token"
                        : "this server needs a bearer token: Authorization: Bearer TOKEN");
    const bool get = r->method == "GET";
    if (r->route == "other")
      return refuse(c, r, 404, "no such route; the routes: GET /, /healthz, /metrics, /v1/model; POST /v1/predict");
    if ((r->route == "/v1/predict") == get) return refuse(c, r, 405, "method not allowed on " + r->route);
    if (r->route == "/") return answer(c, r, 200, web_page(), "text/html; charset=utf-8");
    if (r->route == "/healthz") return answer(c, r, 200, nlohmann::json{{"status", "ok"}}.dump());
    if (r->route == "/metrics") return answer(c, r, 200, service.metrics().render(), "text/plain; version=0.0.4; charset=utf-8");
    if (r->route == "/v1/model") {
      auto j = service.model_info();
      j["limits"]["max_body_bytes"] = opt.max_body_bytes;
      j["limits"]["request_deadline_s"] = opt.request_deadline_s;
      j["limits"]["max_connections"] = opt.max_connections;
      j["limits"]["max_connections_per_client"] = opt.max_connections_per_client;
      j["auth"] = !token.empty();
      return answer(c, r, 200, j.dump());
    }
    // POST /v1/predict: refused before the body is read where the header already tells.
    const char* type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!type || std::string(type).rfind("multipart/form-data", 0) != 0)
      return refuse(c, r, 400, "request: send multipart/form-data with one file per modality, each in a field named as the modality");
    if (const char* len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length")) {
      errno = 0;
      char* end = nullptr;
      const unsigned long long n = std::strtoull(len, &end, 10);
      if (errno == 0 && end != len && n > static_cast<unsigned long long>(opt.max_body_bytes))
        return refuse(c, r, 413, "request body larger than " + std::to_string(opt.max_body_bytes) + " bytes (--max-body)");
    }
    r->post = MHD_create_post_processor(c, 64 * 1024, &Impl::on_part, r);
    if (!r->post) return refuse(c, r, 400, "request: malformed multipart/form-data header (no boundary?)");
    return MHD_YES;
  }

  void body(Req* r, const char* data, size_t size) {
    if (r->refusal_status) return;  // discard the rest of a refused body
    r->body_bytes += size;
    if (r->body_bytes > static_cast<uint64_t>(opt.max_body_bytes)) {
      r->refusal_status = 413;
      r->refusal = "request body larger than " + std::to_string(opt.max_body_bytes) + " bytes (--max-body)";
    } else if (MHD_post_process(r->post, data, size) != MHD_YES) {
      r->refusal_status = 400;
      r->refusal = "request: malformed multipart/form-data body";
    }
  }

  static MHD_Result on_part(void* cls, MHD_ValueKind, const char* key, const char* filename, const char*, const char*,
                            const char* data, uint64_t off, size_t size) {
    auto* r = static_cast<Req*>(cls);
    const std::string bytes(data ? data : "", data ? size : 0);
    if (off == 0) {  // a new part
      r->part_is_file = filename && *filename;
      if (r->part_is_file) r->predict.files.push_back({key ? key : "", filename, bytes});
      else r->predict.fields.emplace_back(key ? key : "", bytes);
    } else if (r->part_is_file && !r->predict.files.empty()) {
      r->predict.files.back().bytes += bytes;
    } else if (!r->predict.fields.empty()) {
      r->predict.fields.back().second += bytes;
    }
    return MHD_YES;
  }

  // The whole request is in: answer a refusal, or hand the prediction to a request thread and
  // suspend the connection until it is done (the event loop goes on serving the others).
  MHD_Result complete(MHD_Connection* c, Req* r) {
    set_receiving(c, false);
    if (r->refusal_status) return refuse(c, r, r->refusal_status, r->refusal);
    if (r->dispatched) {
      if (!r->done) return MHD_YES;
      return answer(c, r, r->result_status, r->result_body);
    }
    if (!workers->has_room())
      return refuse(c, r, 503, "server busy: " + std::to_string(opt.service.batch.queue) + " requests already wait (--queue)");
    r->dispatched = true;
    MHD_suspend_connection(c);
    workers->submit([this, c, r] {
      try {
        r->result_body = service.predict(r->predict).dump();
        r->result_status = 200;
      } catch (const RequestError& e) {
        r->result_status = e.status();
        r->result_body = error_body(e.status(), e.what());
      } catch (const std::exception& e) {
        r->result_status = 500;
        r->result_body = error_body(500, std::string("internal error: ") + e.what());
      }
      r->done = true;
      MHD_resume_connection(c);
    });
    return MHD_YES;
  }

  static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                               const char* upload, size_t* upload_size, void** con_cls) {
    auto& self = *static_cast<Impl*>(cls);
    auto* r = static_cast<Req*>(*con_cls);
    if (!r) {
      r = new Req;
      *con_cls = r;
      ++self.requests_open;
      r->route = route_of(url ? url : "");
      r->method = method ? method : "";
      return self.begin(c, r);
    }
    if (r->status) {  // answered at the header; the body, if any, is discarded
      *upload_size = 0;
      return MHD_YES;
    }
    if (*upload_size > 0) {
      self.body(r, upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    return self.complete(c, r);
  }

  static void on_completed(void* cls, MHD_Connection* c, void** con_cls, MHD_RequestTerminationCode) {
    auto& self = *static_cast<Impl*>(cls);
    auto* r = static_cast<Req*>(*con_cls);
    if (!r) return;
    *con_cls = nullptr;
    if (r->post) MHD_destroy_post_processor(r->post);
    const double s = std::chrono::duration<double>(Clock::now() - r->start).count();
    if (r->status) {
      self.service.metrics().request(r->route, r->status, s);
      const Conn* k = self.conn_of(c);
      self.log(k ? k->address : "?", *r, s, r->result_body);
    }
    delete r;
    --self.requests_open;
    self.set_receiving(c, true);  // the connection's next request: its deadline counts from now
  }

  // ---- connections: caps and the deadline --------------------------------------------------

  static void on_connection(void* cls, MHD_Connection* c, void** socket_context, MHD_ConnectionNotificationCode code) {
    auto& self = *static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      auto* k = new Conn;
      *socket_context = k;
      if (const auto* fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)) k->fd = fd->connect_fd;
      if (const auto* a = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) k->address = address_of(a->client_addr);
      k->since = Clock::now();
      std::string why;
      {
        // A refused connection holds no slot: it is not counted, so one whose close the event loop
        // has not seen yet cannot make the next client's connection look over the cap (the test
        // found a held connection refused that way, and then the 21st let in).
        std::lock_guard<std::mutex> lock(self.conn_mu);
        const auto it = self.per_client.find(k->address);
        const int from_client = (it == self.per_client.end() ? 0 : it->second) + 1;
        if (static_cast<int>(self.conns.size()) + 1 > self.opt.max_connections)
          why = "too many open connections (" + std::to_string(self.opt.max_connections) + ", --max-connections)";
        else if (from_client > self.opt.max_connections_per_client)
          why = "too many open connections from " + k->address + " (" + std::to_string(self.opt.max_connections_per_client) +
                ", --max-connections-per-client)";
        k->refused = !why.empty();
        if (!k->refused) {
          self.conns.insert(k);
          self.per_client[k->address] = from_client;
        }
      }
      if (k->refused) self.refuse_connection(*k, why);
      return;
    }
    auto* k = static_cast<Conn*>(*socket_context);
    if (!k) return;
    {
      // MHD reports the close before it closes the socket; under this lock the watchdog never
      // shuts down a descriptor that has been closed and reused.
      std::lock_guard<std::mutex> lock(self.conn_mu);
      if (!k->refused) {
        self.conns.erase(k);
        if (--self.per_client[k->address] <= 0) self.per_client.erase(k->address);
      }
    }
    delete k;
    *socket_context = nullptr;
  }

  // Beyond a cap: a 503 written straight to the new socket (a few hundred bytes, which the
  // socket buffer takes at once), then both directions shut; the event loop sees the end of
  // the stream and closes it. No request is read, so a client that never sends one costs nothing.
  void refuse_connection(Conn& k, const std::string& why) {
    const std::string body = error_body(503, why);
    const std::string msg = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                            "Connection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    const auto n = ::send(k.fd, msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n;
    ::shutdown(k.fd, SHUT_RDWR);
    service.metrics().request("other", 503, 0.0);
    std::lock_guard<std::mutex> lock(log_mu);
    std::cerr << "drifa serve: " << k.address << " connection refused with 503: " << why << "\n";
  }

  // Closes connections whose request has not arrived within the deadline, however steadily its
  // bytes trickle in (MHD's own timeout restarts on every byte).
  void watch_deadlines() {
    const auto deadline = std::chrono::seconds(opt.request_deadline_s);
    std::unique_lock<std::mutex> lock(conn_mu);
    while (!watchdog_stop) {
      watchdog_cv.wait_for(lock, std::chrono::milliseconds(100));
      const auto now = Clock::now();
      for (Conn* k : conns) {
        if (!k->receiving || k->cut || k->refused || now - k->since < deadline) continue;
        ::shutdown(k->fd, SHUT_RDWR);
        k->cut = true;
        service.metrics().request("other", 408, std::chrono::duration<double>(now - k->since).count());
        if (opt.access_log) {
          std::lock_guard<std::mutex> l(log_mu);
          std::cerr << "drifa serve: " << k->address << " closed: no complete request within " << opt.request_deadline_s
                    << " s (--request-deadline)\n";
        }
      }
    }
  }

  void start() {
    // One descriptor per connection: allow the caps, within the hard limit.
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      const rlim_t want = static_cast<rlim_t>(opt.max_connections) + 256;
      if (rl.rlim_cur < want) {
        rl.rlim_cur = std::min(want, rl.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &rl);
      }
    }
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (::getaddrinfo(opt.host.c_str(), std::to_string(opt.port).c_str(), &hints, &found) != 0 || !found)
      throw Error("serve: cannot listen on " + opt.host + ":" + std::to_string(opt.port) + " (not an address of this machine)");
    const addrinfo* pick = found;  // IPv4 where a name has both ("localhost"), as clients try it first
    for (const addrinfo* a = found; a; a = a->ai_next)
      if (a->ai_family == AF_INET) {
        pick = a;
        break;
      }
    sockaddr_storage addr{};
    std::memcpy(&addr, pick->ai_addr, pick->ai_addrlen);
    const bool v6 = pick->ai_family == AF_INET6;
    ::freeaddrinfo(found);
    workers = std::make_unique<RequestThreads>(opt.http_threads, static_cast<size_t>(opt.service.batch.queue));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6) flags |= MHD_USE_IPv6;
    daemon = MHD_start_daemon(
        flags, static_cast<uint16_t>(opt.port), nullptr, nullptr, &Impl::on_request, this,
        MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
        MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(opt.io_timeout_s),
        // Room above the cap, so a connection beyond it is still accepted and told 503.
        MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(opt.max_connections + 64),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(64 * 1024),
        MHD_OPTION_NOTIFY_COMPLETED, &Impl::on_completed, this,
        MHD_OPTION_NOTIFY_CONNECTION, &Impl::on_connection, this,
        MHD_OPTION_END);
    if (!daemon) {
      workers.reset();
      throw Error("serve: cannot listen on " + opt.host + ":" + std::to_string(opt.port) +
                  " (address in use, not an address of this machine, or a privileged port)");
    }
    const auto* info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    port = info ? info->port : opt.port;
    watchdog = std::thread([this] { watch_deadlines(); });
  }

  // Stops accepting, lets the requests already received be answered (at most the service's
  // timeout and then some), then stops the loop.
  void drain() {
    if (!daemon) return;
    const MHD_socket listener = MHD_quiesce_daemon(daemon);
    const auto until = Clock::now() + std::chrono::duration<double>(opt.service.timeout_s + 5);
    while (requests_open > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    shut_down();
    if (listener != MHD_INVALID_SOCKET) ::close(listener);
  }
};

Server::Server(Service& service, ServerOptions opt) : impl_(std::make_unique<Impl>(service, std::move(opt))) {}
Server::~Server() = default;

int Server::bind() {
  if (impl_->port <= 0) impl_->start();
  return impl_->port;
}

void Server::run() {
  if (impl_->port <= 0) bind();
  {
    std::unique_lock<std::mutex> lock(impl_->run_mu);
    impl_->run_cv.wait(lock, [this] { return impl_->stop_requested; });
  }
  impl_->drain();
}

void Server::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->run_mu);
    impl_->stop_requested = true;
  }
  impl_->run_cv.notify_all();
}

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
