"""A bounded soak of `drifa serve` on loopback: a steady request rate for N minutes while slow
clients come and go, with the server's resident memory sampled throughout.

  python3 bench/serve_soak.py [--minutes 10] [--rate 5] [--slow 50] [--threads 2] [--build build] [--model M]

The model is the demo's (freshly initialised unless --model gives one; the time does not depend
on the weights). Every second, --rate requests (a derm and an mri image, deterministic) are sent
on keep-alive connections and each answer is checked (HTTP 200, one case); every 10 s, --slow
connections from 127.0.0.9 send half a header and wait, and the server's deadline
(--request-deadline 5) cuts them. Every 15 s the server's RSS (VmRSS) is printed. The soak
passes when no request failed and the RSS of the last minute is within 10% of the RSS after the
first two minutes (warm-up: caches, the allocator's pools). Loopback only; it stops by itself.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import demo_model, multipart  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slow_burst(port, n, hold_s):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.9", 0))
        s.connect(("127.0.0.1", port))
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-da")
        socks.append(s)
    time.sleep(hold_s)
    for s in socks:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=5, help="requests per second")
    ap.add_argument("--slow", type=int, default=50, help="slow connections every 10 s")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--model")
    a = ap.parse_args()
    if not (0 < a.minutes <= 120 and 0 < a.rate <= 200 and 0 <= a.slow <= 1000):
        sys.exit("--minutes 0..120, --rate 0..200, --slow 0..1000")
    drifa = str(Path(a.build) / "drifa")
    cpu = next((l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; server --threads {a.threads}; {a.rate} requests/s for {a.minutes} min, "
          f"{a.slow} slow connections every 10 s", flush=True)
    with tempfile.TemporaryDirectory(prefix="drifa-soak-") as tmp:
        model, derm, mri = demo_model(drifa, tmp, a.model)
        server = subprocess.Popen([drifa, "serve", model, "--port", "0", "--threads", str(a.threads), "--request-deadline", "5",
                                   "--max-connections-per-client", str(max(64, a.slow + 8))],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = server.stdout.readline()
        if "listening on" not in line:
            server.kill()
            sys.exit("drifa serve did not start: " + line)
        port = int(line.split("listening on http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/model")
        names = json.loads(conn.getresponse().read())["modalities"]
        bodies = [multipart([(names[0], d), (names[1], m)], [("passes", "0")]) for d, m in zip(derm, mri)]
        lat, errors, lock = [], [], threading.Lock()
        stop = time.time() + a.minutes * 60
        samples = []

        def sender(k, workers):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            period = workers / a.rate
            nxt = time.time() + k * period / workers
            i = 0
            while time.time() < stop:
                time.sleep(max(0.0, nxt - time.time()))
                nxt += period
                body, ctype = bodies[i % len(bodies)]
                i += 1
                t0 = time.perf_counter()
                try:
                    c.request("POST", "/v1/predict", body=body, headers={"Content-Type": ctype})
                    r = c.getresponse()
                    data = r.read()
                    ok = r.status == 200 and len(json.loads(data)["cases"]) == 1
                except Exception as e:  # noqa: BLE001 - a failed request is the finding
                    ok, data = False, repr(e).encode()
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                with lock:
                    lat.append(time.perf_counter() - t0)
                    if not ok:
                        errors.append(data[:200])

        def slow_loop():
            while time.time() < stop - 10:
                slow_burst(port, a.slow, 7)  # held past the 5 s deadline, then closed
                time.sleep(3)

        workers = max(1, min(8, int(a.rate)))
        threads = [threading.Thread(target=sender, args=(k, workers)) for k in range(workers)]
        if a.slow:
            threads.append(threading.Thread(target=slow_loop))
        for t in threads:
            t.start()
        t0 = time.time()
        print(f"{'minute':>6} {'RSS MB':>8} {'requests':>9} {'errors':>6}", flush=True)
        while time.time() < stop:
            time.sleep(min(15, max(0.1, stop - time.time())))
            with lock:
                n, e = len(lat), len(errors)
            samples.append(((time.time() - t0) / 60, rss_mb(server.pid)))
            print(f"{samples[-1][0]:6.2f} {samples[-1][1]:8.1f} {n:9d} {e:6d}", flush=True)
        for t in threads:
            t.join()
        server.terminate()
        server.wait(timeout=60)
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    warm = [r for m, r in samples if m >= min(2.0, a.minutes / 2)]
    first, last = warm[0], sum(r for m, r in samples if m >= samples[-1][0] - 1) / max(1, len([1 for m, _ in samples if m >= samples[-1][0] - 1]))
    growth = last / first
    print(f"\n{len(lat)} requests, {len(errors)} failed; p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms")
    print("RSS series (MB): " + " ".join(f"{r:.0f}" for _, r in samples))
    print(f"RSS after warm-up {first:.1f} MB, last minute {last:.1f} MB: {growth:.3f}x")
    if errors:
        sys.exit(f"{len(errors)} requests failed; the first: {errors[0]!r}")
    if growth > 1.10:
        sys.exit(f"RSS grew {growth:.3f}x after warm-up (bound 1.10x)")


if __name__ == "__main__":
    main()
