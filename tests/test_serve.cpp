// drifa serve: the batcher, the service's answers against drifa predict, malformed uploads,
// limits, the token, draining on SIGTERM, the Prometheus text, and the web page in Chromium.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <httplib.h>
#include <opencv2/imgcodecs.hpp>

#include "drifa/io/base64.h"
#include "drifa/serve/batcher.h"
#include "drifa/serve/http_server.h"
#include "drifa/serve/metrics.h"
#include "test_helpers.h"

namespace fs = std::filesystem;
using namespace drifa;
using drifa::test::run;
using drifa::test::TempDir;

namespace {

// `drifa serve ARGS --port 0` as a child process: the URL from its "listening on" line, its
// stderr in a file, SIGTERM to stop it.
class ServeProcess {
 public:
  ServeProcess(const std::string& args, const std::string& log) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      const std::string cmd = "exec " + test::cli() + " serve " + args + " --port 0 --threads 2 2>" + log;
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
    char line[4096];
    while (std::fgets(line, sizeof line, out_)) {
      const std::string l(line);
      stdout_ += l;
      const auto at = l.find("listening on http://127.0.0.1:");
      if (at != std::string::npos) {
        port_ = std::stoi(l.substr(at + std::string("listening on http://127.0.0.1:").size()));
        break;
      }
    }
    if (port_ <= 0) ADD_FAILURE() << "drifa serve did not start: " << stdout_ << test::read_bytes(log);
  }
  ~ServeProcess() {
    if (pid_ > 0 && !stopped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_) std::fclose(out_);
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  httplib::Client client(double timeout_s = 120) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(static_cast<time_t>(timeout_s), 0);
    return c;
  }
  // SIGTERM, then the exit status (-1: killed by a signal or still running after 60 s).
  int terminate() {
    ::kill(pid_, SIGTERM);
    return wait();
  }
  int wait() {
    for (int i = 0; i < 600; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        stopped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
  }
  std::string rest_of_stdout() {
    std::string s;
    char line[4096];
    while (std::fgets(line, sizeof line, out_)) s += line;
    return s;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int port_ = -1;
  bool stopped_ = false;
  std::string stdout_;
};

httplib::MultipartFormDataItems form(const std::vector<std::pair<std::string, std::string>>& files,
                                     const std::vector<std::pair<std::string, std::string>>& fields = {}) {
  httplib::MultipartFormDataItems items;
  for (const auto& [name, path] : files)
    items.push_back({name, test::read_bytes(path), fs::path(path).filename().string(), "application/octet-stream"});
  for (const auto& [k, v] : fields) items.push_back({k, v, "", ""});
  return items;
}

// A POST on its own thread: (status, body), or (-1, "no answer").
std::future<std::pair<int, std::string>> post_async(const ServeProcess& server, httplib::MultipartFormDataItems items) {
  return std::async(std::launch::async, [&server, items = std::move(items)] {
    auto res = server.client().Post("/v1/predict", items);
    return res ? std::make_pair(res->status, res->body) : std::make_pair(-1, std::string("no answer"));
  });
}

std::vector<std::string> images_of(const std::string& dir, size_t n = 1) {
  std::vector<std::string> all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all.push_back(e.path().string());
  std::sort(all.begin(), all.end());
  // Spread over the classes' folders.
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(all.at(i * all.size() / n));
  return out;
}

// A raw TCP connection to the server from `from`, any 127.x.y.z address (the whole 127/8 is this
// machine), so that tests can be several clients; -1 when it cannot connect.
int connect_from(const std::string& from, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &a.sin_addr);
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &s.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// What arrives on fd within timeout_s; closed tells whether the server closed it by then.
std::string read_for(int fd, double timeout_s, bool& closed) {
  std::string got;
  closed = false;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
    char buf[4096];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// A client that has sent part of a request header and waits (slowloris).
int slow_client(const std::string& from, int port) {
  const int fd = connect_from(from, port);
  const std::string partial = "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-da";
  if (fd >= 0 && ::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(partial.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Every task's probabilities, uncertainty and set equal (to tol) in two predict answers of one case.
void expect_same_case(const nlohmann::json& got, const nlohmann::json& want, double tol, const std::string& what) {
  ASSERT_EQ(got["tasks"].size(), want["tasks"].size()) << what;
  for (const auto& [task, w] : want["tasks"].items()) {
    ASSERT_TRUE(got["tasks"].contains(task)) << what << " " << task;
    const auto& g = got["tasks"].at(task);
    if (w.contains("predicted")) {  // a task not predicted (its modality not given): the same reason
      EXPECT_EQ(g, w) << what << " " << task;
      continue;
    }
    EXPECT_EQ(g.at("class"), w.at("class")) << what << " " << task;
    for (const auto& [cls, p] : w["probabilities"].items())
      EXPECT_NEAR(g.at("probabilities").at(cls).get<double>(), p.get<double>(), tol) << what << " " << task << " " << cls;
    for (const char* k : {"predictive_entropy", "expected_entropy", "mutual_information", "spread"})
      EXPECT_NEAR(g.at(k).get<double>(), w.at(k).get<double>(), tol) << what << " " << task << " " << k;
    EXPECT_EQ(g["prediction_set"].is_null(), w["prediction_set"].is_null()) << what;
    if (!w["prediction_set"].is_null()) EXPECT_EQ(g["prediction_set"]["classes"], w["prediction_set"]["classes"]) << what;
    EXPECT_EQ(g["method"], w["method"]) << what;
  }
}

// A trained, calibrated tiny run shared by the tests (two unpaired modalities, 32 px).
class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto cfg = test::make_run_config(*dir_, "epochs = 2\n");
    auto r = run(test::cli() + " train -q -c " + cfg + " -o " + (*dir_ / "run") + " --threads 2");
    ASSERT_EQ(r.status, 0) << r.output;
    r = run(test::cli() + " calibrate " + (*dir_ / "run") + " -T 4 --threads 2");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string run_dir() { return *dir_ / "run"; }
  static std::string data(const std::string& sub) { return *dir_ / ("data/" + sub); }
  static TempDir* dir_;
};
TempDir* Serve::dir_ = nullptr;

}  // namespace

TEST(ServeParts, BatcherGroupsByKeyUpToMaxBatchAndDrainsOnStop) {
  struct Job : serve::Batcher::Job {
    int n = 0;
  };
  std::mutex mu;
  std::vector<std::vector<int>> batches;
  std::promise<void> first_started, release;
  auto released = release.get_future().share();
  std::atomic<bool> first{true};
  serve::Batcher b({3, 50, 6}, [&](std::vector<serve::Batcher::JobPtr>& batch) {
    if (first.exchange(false)) {  // hold the worker so that the queue fills up behind it
      first_started.set_value();
      released.wait();
    }
    std::vector<int> ns;
    for (auto& j : batch) ns.push_back(static_cast<Job*>(j.get())->n);
    std::lock_guard<std::mutex> lock(mu);
    batches.push_back(ns);
  });
  auto job = [](int n, const std::string& key) {
    auto j = std::make_shared<Job>();
    j->n = n;
    j->key = key;
    return j;
  };
  ASSERT_TRUE(b.submit(job(0, "a")));
  first_started.get_future().wait();
  // Six wait: a a b a a b (the queue's limit); the seventh is refused.
  const char* keys[] = {"a", "a", "b", "a", "a", "b"};
  for (int i = 1; i <= 6; ++i) ASSERT_TRUE(b.submit(job(i, keys[i - 1])));
  EXPECT_EQ(b.waiting(), 6);
  EXPECT_FALSE(b.submit(job(7, "a")));
  release.set_value();
  b.stop();  // runs everything queued
  EXPECT_FALSE(b.submit(job(8, "a")));
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[0], std::vector<int>({0}));
  EXPECT_EQ(batches[1], std::vector<int>({1, 2, 4}));  // the oldest, then its key's, up to 3
  EXPECT_EQ(batches[2], std::vector<int>({3, 6}));
  EXPECT_EQ(batches[3], std::vector<int>({5}));
}

TEST(ServeParts, TokensAndHostsAndBase64) {
  EXPECT_TRUE(serve::same_token("abcdefghijklmnop", "abcdefghijklmnop"));
  EXPECT_FALSE(serve::same_token("abcdefghijklmnop", "abcdefghijklmnoq"));
  EXPECT_FALSE(serve::same_token("abcdefghijklmnop", "abcdefghijklmno"));
  EXPECT_FALSE(serve::same_token("", "a"));
  EXPECT_TRUE(serve::is_loopback("127.0.0.1"));
  EXPECT_TRUE(serve::is_loopback("::1"));
  EXPECT_FALSE(serve::is_loopback("0.0.0.0"));
  EXPECT_FALSE(serve::is_loopback("10.1.2.3"));
  TempDir dir;
  test::write_bytes(dir / "t", "  0123456789abcdefXYZ \nsecond line\n");
  EXPECT_EQ(serve::read_token_file(dir / "t"), "0123456789abcdefXYZ");
  test::write_bytes(dir / "short", "abc\n");
  EXPECT_NE(test::error_message<Error>([&] { serve::read_token_file(dir / "short"); }).find("allowed at least 16"), std::string::npos);
  test::write_bytes(dir / "empty", "");
  EXPECT_NE(test::error_message<Error>([&] { serve::read_token_file(dir / "empty"); }).find("token of 0 characters"), std::string::npos);
  EXPECT_NE(test::error_message<Error>([&] { serve::read_token_file(dir / "none"); }).find("not found"), std::string::npos);
  // RFC 4648's test vectors
  const std::pair<const char*, const char*> v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [in, out] : v) EXPECT_EQ(io::base64(in), out);
}

TEST(ServeParts, MetricsRenderCountsAndCumulativeBuckets) {
  serve::Metrics m;
  m.request("/v1/predict", 200, 0.003);
  m.request("/v1/predict", 200, 0.2);
  m.request("/v1/predict", 400, 0.001);
  m.batch(3, 0.02);
  m.queue_depth(2);
  const auto t = m.render();
  EXPECT_NE(t.find("drifa_requests_total{route=\"/v1/predict\",code=\"200\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_request_errors_total{route=\"/v1/predict\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.005\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.25\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_request_duration_seconds_count{route=\"/v1/predict\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_batch_size_bucket{le=\"2\"} 0\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_batch_size_bucket{le=\"4\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_batch_size_sum 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("drifa_queue_depth 2\n"), std::string::npos) << t;
}

TEST_F(Serve, ConcurrentRequestsEqualDrifaPredict) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"), 4), mri = images_of(data("mri/test"), 4);
  // drifa predict: the four pairs deterministically (one CSV), and two pairs with MC passes alone
  std::string csv = "derm,mri\n";
  for (size_t i = 0; i < 4; ++i) csv += derm[i] + "," + mri[i] + "\n";
  test::write_bytes(tmp / "cases.csv", csv);
  auto r = run(test::cli() + " predict " + run_dir() + " -T 0 --cases " + (tmp / "cases.csv") + " -o " + (tmp / "det.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto det = test::read_json(tmp / "det.json");
  std::vector<nlohmann::json> mc;
  for (size_t i = 0; i < 2; ++i) {
    const auto out = tmp / ("mc" + std::to_string(i) + ".json");
    r = run(test::cli() + " predict " + run_dir() + " -T 6 --seed 7 -i " + derm[i] + " " + mri[i] + " -o " + out);
    ASSERT_EQ(r.status, 0) << r.output;
    mc.push_back(test::read_json(out));
  }
  // the one-image case: mri marginalised over the run's partner bank
  r = run(test::cli() + " predict " + run_dir() + " -T 0 -i derm=" + derm[3] + " -o " + (tmp / "one.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto one = test::read_json(tmp / "one.json");

  ServeProcess server(run_dir() + " --max-batch 4 --max-wait-ms 200", tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  // 8 clients at once, 20 requests: deterministic, Monte Carlo and one-image cases mixed
  struct Req {
    size_t pair;
    int kind;  // 0 deterministic, 1 MC, 2 derm alone
  };
  std::vector<Req> reqs;
  for (size_t i = 0; i < 20; ++i) reqs.push_back({i % 4, static_cast<int>(i % 5 == 4 ? 2 : (i % 3 == 2 ? 1 : 0))});
  std::vector<nlohmann::json> answers(reqs.size());
  std::vector<int> status(reqs.size(), 0);
  std::atomic<size_t> next{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c)
    clients.emplace_back([&] {
      auto cl = server.client();
      for (size_t i; (i = next++) < reqs.size();) {
        const auto& q = reqs[i];
        const size_t p = q.kind == 1 ? q.pair % 2 : q.pair;
        httplib::MultipartFormDataItems items;
        if (q.kind == 2) items = form({{"derm", derm[3]}}, {{"passes", "0"}});
        else if (q.kind == 1) items = form({{"derm", derm[p]}, {"mri", mri[p]}}, {{"passes", "6"}, {"seed", "7"}});
        else items = form({{"derm", derm[p]}, {"mri", mri[p]}}, {{"passes", "0"}});
        auto res = cl.Post("/v1/predict", items);
        if (!res) continue;
        status[i] = res->status;
        answers[i] = nlohmann::json::parse(res->body);
      }
    });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_EQ(status[i], 200) << answers[i].dump();
    const auto& q = reqs[i];
    const auto& got = answers[i]["cases"][0];
    const std::string what = "request " + std::to_string(i);
    if (q.kind == 2) {
      expect_same_case(got, one["cases"][0], 1e-6, what);
      EXPECT_EQ(got["inputs"]["marginalised"], nlohmann::json::array({"mri"}));
    } else if (q.kind == 1) {
      expect_same_case(got, mc[q.pair % 2]["cases"][0], 1e-6, what);
      EXPECT_EQ(answers[i]["passes"], 6);
    } else {
      // drifa predict's case c is the c-th row of the CSV; deterministic answers do not depend on it
      expect_same_case(got, det["cases"][q.pair], 1e-6, what);
    }
    EXPECT_EQ(answers[i]["pairing"], "unpaired");
    EXPECT_TRUE(answers[i]["calibrated"].get<bool>());
  }
  // Requests shared batches: fewer batches than requests, every request in one.
  auto res = server.client().Get("/metrics");
  ASSERT_TRUE(res);
  const auto& m = res->body;
  const auto value = [&](const std::string& series) {
    const auto at = m.find(series + " ");
    EXPECT_NE(at, std::string::npos) << series << "\n" << m;
    return at == std::string::npos ? -1.0 : std::stod(m.substr(at + series.size() + 1));
  };
  EXPECT_EQ(value("drifa_batch_size_sum"), 20.0);
  EXPECT_LT(value("drifa_batch_size_count"), 20.0);
  EXPECT_EQ(value("drifa_requests_total{route=\"/v1/predict\",code=\"200\"}"), 20.0);
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(Serve, MalformedUploadsGetClearErrorsAndTheServerKeepsServing) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  test::write_bytes(tmp / "token", "s3cret-token-0123456789\n");
  ServeProcess server(run_dir() + " --token-file " + (tmp / "token") + " --max-body 300000 --max-image-pixels 5000",
                      tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  auto cl = server.client();
  const httplib::Headers auth = {{"Authorization", "Bearer s3cret-token-0123456789"}};
  const auto good = form({{"derm", derm}, {"mri", mri}}, {{"passes", "0"}});
  const auto expect_error = [&](const httplib::Result& res, int code, const std::string& needle, const std::string& what) {
    ASSERT_TRUE(res) << what;
    EXPECT_EQ(res->status, code) << what << ": " << res->body;
    const auto j = nlohmann::json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << what << ": not JSON: " << res->body;
    EXPECT_EQ(j["status"], code) << what;
    EXPECT_NE(j["error"].get<std::string>().find(needle), std::string::npos) << what << ": " << j["error"];
  };
  // the token
  expect_error(cl.Post("/v1/predict", good), 401, "needs a bearer token", "no token");
  expect_error(cl.Post("/v1/predict", {{"Authorization", "Bearer s3cret-token-0123456788"}}, good), 401, "wrong bearer token", "wrong token");
  expect_error(cl.Get("/metrics"), 401, "bearer token", "metrics without token");
  auto res = cl.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = cl.Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("<title>DRIFA-Net</title>"), std::string::npos);
  // wrong shape of request
  expect_error(cl.Post("/v1/predict", auth, "{}", "application/json"), 400, "multipart/form-data", "JSON body");
  expect_error(cl.Post("/v1/predict", auth, form({}, {{"passes", "0"}})), 400, "no image", "no files");
  expect_error(cl.Post("/v1/predict", auth, form({{"xray", derm}})), 400, "'xray': not a modality of the model (derm, mri)", "unknown field");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}, {"derm", derm}})), 400, "two files for derm", "two files");
  // bad images, named by field and file name
  test::write_bytes(tmp / "text.png", "this is not an image at all");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", tmp / "text.png"}, {"mri", mri}})), 400, "derm=text.png", "corrupt");
  const auto png = test::read_bytes(derm);
  test::write_bytes(tmp / "cut.png", png.substr(0, png.size() / 2));
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}, {"mri", tmp / "cut.png"}})), 400, "mri=cut.png", "truncated");
  cv::imwrite(tmp / "big.png", cv::Mat(100, 80, CV_8UC3, cv::Scalar(10, 20, 30)));
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", tmp / "big.png"}, {"mri", mri}})), 400, "derm=big.png", "too many pixels");
  test::write_bytes(tmp / "huge.png", std::string(400000, 'x'));
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", tmp / "huge.png"}, {"mri", mri}})), 413, "larger than 300000 bytes", "body");
  // bad options
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}}, {{"passes", "-1"}})), 400, "passes: found -1", "passes");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}}, {{"passes", "1000000"}})), 400, "passes: found 1000000", "passes");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}}, {{"alpha", "2"}})), 400, "alpha: found 2", "alpha");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}}, {{"gradcam", "maybe"}})), 400, "gradcam", "gradcam");
  expect_error(cl.Post("/v1/predict", auth, form({{"derm", derm}}, {{"path", "/etc/passwd"}})), 400, "path: unknown key", "path");
  expect_error(cl.Get("/v1/nothing", auth), 404, "no such route", "404");
  // still serving
  res = cl.Post("/v1/predict", auth, good);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(nlohmann::json::parse(res->body)["cases"][0]["tasks"].size(), 2u);
  res = cl.Get("/v1/model", auth);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const auto model = nlohmann::json::parse(res->body);
  EXPECT_EQ(model["modalities"], nlohmann::json::array({"derm", "mri"}));
  EXPECT_EQ(model["tasks"][0]["classes"].size(), 3u);
  EXPECT_EQ(model["models"], 1);
  EXPECT_TRUE(model["auth"].get<bool>());
  EXPECT_FALSE(model["calibration"].is_null());
  EXPECT_EQ(server.terminate(), 0);
  const auto log = test::read_bytes(tmp / "serve.log");
  EXPECT_NE(log.find("400"), std::string::npos) << log;  // errors are logged

  // A bare unpaired model file has no partner bank: a case must give every modality.
  ServeProcess bare(run_dir() + "/best.safetensors", tmp / "bare.log");
  ASSERT_GT(bare.port(), 0);
  expect_error(bare.client().Post("/v1/predict", form({{"derm", derm}})), 400, "--partners-from", "one image, no bank");
  res = bare.client().Post("/v1/predict", form({{"derm", derm}, {"mri", mri}}, {{"passes", "0"}}));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(bare.terminate(), 0);
}

TEST_F(Serve, FullQueueAndTimeoutAnswer503) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  // The worker holds the first request up to 3 s for company with its seed; a second with
  // another seed fills the one-place queue; a third is refused at once. Each waits 2 s at most.
  ServeProcess server(run_dir() + " --max-batch 2 --max-wait-ms 3000 --queue 1 --timeout 2", tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  const auto send = [&](const std::string& seed) {
    return post_async(server, form({{"derm", derm}, {"mri", mri}}, {{"passes", "2"}, {"seed", seed}}));
  };
  auto a = send("1");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto b = send("2");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto c = send("3").get();
  EXPECT_EQ(c.first, 503) << c.second;
  EXPECT_NE(c.second.find("busy"), std::string::npos) << c.second;
  const auto ra = a.get();
  EXPECT_EQ(ra.first, 503) << ra.second;
  EXPECT_NE(ra.second.find("no answer within 2 s"), std::string::npos) << ra.second;
  const auto rb = b.get();
  EXPECT_EQ(rb.first, 503) << rb.second;
  auto res = server.client().Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(Serve, SigtermFinishesRequestsInFlightThenExits) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  ServeProcess server(run_dir() + " --max-batch 8 --max-wait-ms 3000", tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  // In flight: held by the batcher up to 3 s for company when SIGTERM comes at 0.5 s.
  auto pending = post_async(server, form({{"derm", derm}, {"mri", mri}}, {{"passes", "3"}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(server.pid(), SIGTERM);
  const auto r = pending.get();
  EXPECT_EQ(r.first, 200) << r.second;
  EXPECT_EQ(nlohmann::json::parse(r.second)["passes"], 3);
  EXPECT_EQ(server.wait(), 0);
  EXPECT_NE(server.rest_of_stdout().find("stopped"), std::string::npos);
  auto after = server.client(2).Get("/healthz");
  EXPECT_FALSE(after) << "still answering after SIGTERM";
}

TEST_F(Serve, MetricsParseAsPrometheusText) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  ServeProcess server(run_dir(), tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  auto cl = server.client();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cl.Post("/v1/predict", form({{"derm", derm}, {"mri", mri}}, {{"passes", "2"}}))->status, 200);
  ASSERT_EQ(cl.Post("/v1/predict", form({{"derm", derm}}, {{"passes", "x"}}))->status, 400);
  ASSERT_EQ(cl.Get("/healthz")->status, 200);
  auto res = cl.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  test::write_bytes(tmp / "metrics.txt", res->body);
  // The reference parser (Debian's python3-prometheus-client) reads it; its samples as JSON.
  const std::string py =
      "import json,sys\nfrom prometheus_client.parser import text_string_to_metric_families as f\n"
      "out={}\nfor fam in f(open(sys.argv[1]).read()):\n"
      "  for s in fam.samples:\n    out[s.name+json.dumps(s.labels,sort_keys=True)]=[fam.type,s.value]\n"
      "print(json.dumps(out))\n";
  test::write_bytes(tmp / "parse.py", py);
  auto r = run(std::string(DRIFA_PYTHON) + " " + (tmp / "parse.py") + " " + (tmp / "metrics.txt"));
  ASSERT_EQ(r.status, 0) << r.output << "\n" << res->body;
  const auto s = nlohmann::json::parse(r.output);
  const auto at = [&](const std::string& key) {
    EXPECT_TRUE(s.contains(key)) << key << "\n" << r.output;
    return s.contains(key) ? s[key] : nlohmann::json::array({"", -1});
  };
  EXPECT_EQ(at(R"(drifa_requests_total{"code": "200", "route": "/v1/predict"})"), nlohmann::json::array({"counter", 3.0}));
  EXPECT_EQ(at(R"(drifa_requests_total{"code": "400", "route": "/v1/predict"})"), nlohmann::json::array({"counter", 1.0}));
  EXPECT_EQ(at(R"(drifa_request_errors_total{"route": "/v1/predict"})"), nlohmann::json::array({"counter", 1.0}));
  EXPECT_EQ(at(R"(drifa_request_duration_seconds_count{"route": "/v1/predict"})"), nlohmann::json::array({"histogram", 4.0}));
  EXPECT_EQ(at(R"(drifa_batch_size_count{})"), nlohmann::json::array({"histogram", 3.0}));
  EXPECT_EQ(at(R"(drifa_batch_size_bucket{"le": "1"})"), nlohmann::json::array({"histogram", 3.0}));
  EXPECT_EQ(at(R"(drifa_queue_depth{})"), nlohmann::json::array({"gauge", 0.0}));
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(Serve, RefusesUnsafeOrImpossibleSettings) {
  TempDir tmp;
  auto r = run(test::cli() + " serve " + run_dir() + " --host 0.0.0.0 --port 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("needs a bearer token"), std::string::npos) << r.output;
  test::write_bytes(tmp / "short", "abc\n");
  r = run(test::cli() + " serve " + run_dir() + " --host 0.0.0.0 --port 0 --token-file " + (tmp / "short"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("allowed at least 16"), std::string::npos) << r.output;
  r = run(test::cli() + " serve " + run_dir() + " --port 70000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--port: found 70000"), std::string::npos) << r.output;
  r = run(test::cli() + " serve " + run_dir() + " -T 50 --max-passes 10 --port 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("passes: found 50"), std::string::npos) << r.output;
  r = run(test::cli() + " serve " + (tmp / "missing") + " --port 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("missing"), std::string::npos) << r.output;
  // a port already taken
  ServeProcess first(run_dir(), tmp / "first.log");
  ASSERT_GT(first.port(), 0);
  r = run(test::cli() + " serve " + run_dir() + " --port " + std::to_string(first.port()));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port())), std::string::npos) << r.output;
  EXPECT_EQ(first.terminate(), 0);
}

// The web page, driven by headless Chromium as a person would: choose the images, press
// Predict, read the classes, probabilities, set and overlays shown.
TEST_F(Serve, WebPageInChromiumShowsWhatTheApiAnswers) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  ServeProcess server(run_dir(), tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/";
  auto r = run("timeout 180 " + std::string(DRIFA_PYTHON) + " " + DRIFA_SOURCE_DIR + "/tests/python/serve_browser.py " + url + " " +
               (tmp / "page.png") + " derm=" + derm + " mri=" + mri);
  ASSERT_EQ(r.status, 0) << r.output << test::read_bytes(tmp / "serve.log");
  const auto shown = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  // The page asks with the model's defaults (30 passes, the calibration's alpha, Grad-CAM on).
  auto res = server.client().Post("/v1/predict", form({{"derm", derm}, {"mri", mri}}, {{"passes", "30"}, {"gradcam", "true"}}));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const auto api = nlohmann::json::parse(res->body)["cases"][0]["tasks"];
  ASSERT_EQ(shown["tasks"].size(), 2u) << shown.dump();
  for (const auto& [task, t] : api.items()) {
    const auto& s = shown["tasks"][task];
    EXPECT_EQ(s["class"], t["class"]) << task;
    for (const auto& [cls, p] : t["probabilities"].items()) EXPECT_NEAR(s["probabilities"][cls].get<double>(), p.get<double>(), 1e-12);
    EXPECT_EQ(s["prediction_set"], t["prediction_set"]["classes"]) << task;
    for (const char* mod : {"derm", "mri"}) {
      const auto& o = s["overlays"][mod];
      EXPECT_EQ(o["src"], t["gradcam"][mod]) << task << " " << mod;  // the overlay the API made, shown
      EXPECT_EQ(o["width"], 32) << task << " " << mod;                 // decoded: the image's own size
      EXPECT_GT(o["shown_width"].get<int>(), 100);
    }
  }
  EXPECT_NE(shown["model"].get<std::string>().find("2 modalities (derm, mri)"), std::string::npos) << shown["model"];
  const auto shot = cv::imread(tmp / "page.png");
  EXPECT_GT(shot.cols, 600);
  EXPECT_GT(shot.rows, 400);
  if (const char* keep = std::getenv("DRIFA_KEEP_SCREENSHOT")) fs::copy_file(tmp / "page.png", keep, fs::copy_options::overwrite_existing);
  EXPECT_EQ(server.terminate(), 0);
}

// 500 clients that sent part of a header and wait hold sockets in the event loop, not threads:
// /healthz, /metrics and a prediction are answered as before. (cpp-httplib, before: 200 such
// clients made /healthz time out for minutes.)
TEST_F(Serve, FiveHundredSlowClientsDoNotDelayOthers) {
  TempDir tmp;
  const auto derm = images_of(data("derm/test"))[0], mri = images_of(data("mri/test"))[0];
  ServeProcess server(run_dir() + " --max-connections 2000 --max-connections-per-client 2000 --request-deadline 300 --io-timeout 300",
                      tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  auto cl = server.client(30);
  auto t = std::chrono::steady_clock::now();
  ASSERT_EQ(cl.Post("/v1/predict", form({{"derm", derm}, {"mri", mri}}, {{"passes", "4"}}))->status, 200);
  const double usual = seconds_since(t);
  std::vector<int> slow;
  for (int i = 0; i < 500; ++i) {
    const int fd = slow_client("127.0.0.2", server.port());
    ASSERT_GE(fd, 0) << "slow client " << i;
    slow.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // all accepted and read
  t = std::chrono::steady_clock::now();
  auto res = server.client(5).Get("/healthz");
  const double healthz = seconds_since(t);
  ASSERT_TRUE(res) << "no /healthz answer with 500 slow clients";
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(healthz, 1.0);
  res = server.client(5).Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  t = std::chrono::steady_clock::now();
  res = server.client(30).Post("/v1/predict", form({{"derm", derm}, {"mri", mri}}, {{"passes", "4"}}));
  const double predict = seconds_since(t);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_LT(predict, std::max(1.0, 3 * usual)) << "usual " << usual << " s";
  std::cout << "500 slow clients: /healthz in " << healthz * 1000 << " ms; a prediction in " << predict * 1000
            << " ms (alone: " << usual * 1000 << " ms)\n";
  // Still open: nothing cut them (deadline 300 s).
  bool closed = false;
  read_for(slow[0], 0.05, closed);
  EXPECT_FALSE(closed);
  for (int fd : slow) ::close(fd);
  EXPECT_EQ(server.terminate(), 0);
}

// Beyond the per-client and overall caps a connection is answered 503 at once and closed; a
// request that has not arrived within the deadline is cut, however steadily its bytes trickle.
TEST_F(Serve, ConnectionCapsAnswer503AndTheDeadlineCutsTricklingClients) {
  TempDir tmp;
  ServeProcess server(run_dir() + " --max-connections 20 --max-connections-per-client 8 --request-deadline 3 --io-timeout 60",
                      tmp / "serve.log");
  ASSERT_GT(server.port(), 0);
  const int port = server.port();
  std::vector<int> held;
  for (int i = 0; i < 8; ++i) held.push_back(slow_client("127.0.0.3", port));
  bool closed = false;
  // The ninth from the same address: 503 at once, then closed.
  const int ninth = slow_client("127.0.0.3", port);
  ASSERT_GE(ninth, 0);
  auto got = read_for(ninth, 2.0, closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  EXPECT_NE(got.find("too many open connections from 127.0.0.3 (8, --max-connections-per-client)"), std::string::npos) << got;
  EXPECT_TRUE(closed);
  ::close(ninth);
  // Up to 20 in all from other addresses; the 21st is refused whoever it is.
  for (int i = 0; i < 8; ++i) held.push_back(slow_client("127.0.0.4", port));
  for (int i = 0; i < 4; ++i) held.push_back(slow_client("127.0.0.5", port));
  for (int fd : held) ASSERT_GE(fd, 0);
  // The server counts a connection when its event loop accepts it, which may lag on a loaded
  // machine: wait for the 20 to be counted. (The flake this test had was the server's: the refused
  // ninth kept a slot until its close was seen, so a held one was refused and the 21st let in.)
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const int extra = connect_from("127.0.0.6", port);
  got = read_for(extra, 2.0, closed);
  EXPECT_NE(got.find("too many open connections (20, --max-connections)"), std::string::npos)
      << got << "\nthe server's log:\n" << test::read_bytes(tmp / "serve.log");
  EXPECT_TRUE(closed);
  ::close(extra);
  // The deadline (3 s) cuts the 20 that never finished their header.
  const auto start = std::chrono::steady_clock::now();
  read_for(held[0], 10.0, closed);
  EXPECT_TRUE(closed) << "a slow client outlived the deadline";
  EXPECT_LT(seconds_since(start), 5.0);
  for (int fd : held) {
    read_for(fd, 2.0, closed);
    EXPECT_TRUE(closed);
    ::close(fd);
  }
  // Room again: a normal client is served. The server frees a slot when it sees the close, which
  // may lag our close() by a moment on a loaded machine: a 503 until then is counted below.
  int early_503 = 0;
  auto res = server.client(5).Get("/healthz");
  for (int i = 0; i < 40 && res && res->status == 503; ++i) {
    ++early_503;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    res = server.client(5).Get("/healthz");
  }
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  // A client that sends one header byte every 200 ms (each byte restarts an idle timeout) is cut
  // at the deadline too.
  const int trickle = connect_from("127.0.0.7", port);
  ASSERT_GE(trickle, 0);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string header = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + std::string(200, 'a');
  size_t sent = 0;
  closed = false;
  while (!closed && sent < header.size() && seconds_since(t0) < 15) {
    if (::send(trickle, header.data() + sent, 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    ++sent;
    read_for(trickle, 0.2, closed);
  }
  const double lived = seconds_since(t0);
  EXPECT_TRUE(closed) << "sent " << sent << " bytes over " << lived << " s";
  EXPECT_GT(lived, 2.5);
  EXPECT_LT(lived, 6.0);
  ::close(trickle);
  res = server.client(5).Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("drifa_requests_total{route=\"other\",code=\"503\"} " + std::to_string(2 + early_503)), std::string::npos)
      << "the two refused connections (and " << early_503 << " early retries) are counted\n" << res->body;
  EXPECT_NE(res->body.find("drifa_requests_total{route=\"other\",code=\"408\"} 21"), std::string::npos)
      << "the 20 slow and the trickling connection cut at the deadline are counted\n" << res->body;
  EXPECT_EQ(server.terminate(), 0);
}
