"""A bounded load test of `drifa serve` on loopback: dynamic batching against batch size 1.

  python3 bench/serve_load.py [--clients 8] [--requests 200] [--threads 2] [--build build] [--model M]

Makes the demo's model (demo widths 16..128, 64 px, two modalities; freshly initialised unless
--model gives a trained one: the time does not depend on the weights) and a few demo images,
then for each setting starts `drifa serve` on 127.0.0.1 with an ephemeral port and sends
--clients concurrent keep-alive clients x --requests requests each (a derm and an mri image per
request), and prints requests/s and the p50 / p99 latency. Settings: deterministic requests
(passes 0) and Monte Carlo requests (--passes, default 10), each with dynamic batching
(--max-batch 8 --max-wait-ms 5) and with --max-batch 1. The clients run in this process (Python
threads) on the same cores as the server: say so next to the numbers. Every request's answer is
checked (HTTP 200, one case); the loop is bounded in count and time and stops by itself.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def multipart(files, fields):
    boundary = "drifa-load-boundary"
    parts = []
    for name, path in files:
        data = Path(path).read_bytes()
        parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{Path(path).name}"\r\n'
                      'Content-Type: application/octet-stream\r\n\r\n').encode() + data + b"\r\n")
    for k, v in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(drifa, model, args, threads):
    p = subprocess.Popen([drifa, "serve", model, "--port", "0", "--threads", str(threads), "--queue", "1024", *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "listening on" not in line:
        p.kill()
        sys.exit(f"drifa serve did not start: {line}{p.stderr.read()}")
    port = int(line.split("listening on http://127.0.0.1:")[1].split("/")[0])
    return p, port


def load(port, bodies, clients, requests, deadline_s=600):
    lat, errors = [], []
    lock = threading.Lock()
    end = time.time() + deadline_s

    def client(c):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        for i in range(requests):
            if time.time() > end:
                break
            body, ctype = bodies[(c + i) % len(bodies)]
            t0 = time.perf_counter()
            conn.request("POST", "/v1/predict", body=body, headers={"Content-Type": ctype})
            r = conn.getresponse()
            data = r.read()
            mine.append(time.perf_counter() - t0)
            if r.status != 200 or len(json.loads(data)["cases"]) != 1:
                with lock:
                    errors.append(f"{r.status}: {data[:200]!r}")
        conn.close()
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return {"requests": len(lat), "wall_s": wall, "rps": len(lat) / wall, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "errors": len(errors), "first_error": errors[0] if errors else None}


def demo_model(drifa, tmp, model=None):
    """(model, derm images, mri images) in tmp: the demo's test images, and the demo's model
    freshly initialised unless model names one (the time does not depend on the weights)."""
    subprocess.run([drifa, "synth", "-q", "-o", f"{tmp}/data", "--train-per-class", "2", "--test-per-class", "3"], check=True)
    if not model:
        model = f"{tmp}/model.safetensors"
        subprocess.run([drifa, "init", "-q", "--config", f"{tmp}/data/demo.toml", "--classes", "3,3", "--modalities", "2",
                        "--image-size", "64", "-o", model], check=True, capture_output=True)
    derm = sorted(str(p) for p in Path(f"{tmp}/data/derm/test").rglob("*.png"))
    mri = sorted(str(p) for p in Path(f"{tmp}/data/mri/test").rglob("*.png"))
    return model, derm, mri


def model_modalities(drifa, model, threads):
    server, port = start_server(drifa, model, [], threads)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/v1/model")
        return json.loads(conn.getresponse().read())["modalities"]
    finally:
        server.terminate()
        server.wait(timeout=60)


def batch_stats(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    vals = {l.split(" ")[0]: float(l.split(" ")[1]) for l in text.splitlines() if l.startswith("drifa_batch_size_")}
    return vals.get("drifa_batch_size_sum", 0) / max(1, vals.get("drifa_batch_size_count", 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="per client")
    ap.add_argument("--passes", type=int, default=10, help="Monte Carlo passes of the MC rows")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--model", help="a model file, run or ensemble folder (default: the demo's model, initialised)")
    a = ap.parse_args()
    drifa = str(Path(a.build) / "drifa")
    cpu = next((l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = set(next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), []))
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    print(f"machine: {cpu}, {os.cpu_count()} cores; ISA: {' '.join(isa) or 'no avx2'}; server --threads {a.threads}; "
          f"{a.clients} clients x {a.requests} requests (Python threads on the same cores)")
    with tempfile.TemporaryDirectory(prefix="drifa-load-") as tmp:
        model, derm, mri = demo_model(drifa, tmp, a.model)
        names = model_modalities(drifa, model, a.threads)
        rows = []
        for passes in (0, a.passes):
            bodies = [multipart([(names[0], d), (names[1], m)], [("passes", str(passes))]) for d, m in zip(derm, mri)]
            for name, args in (("dynamic (max-batch 8, wait 5 ms)", ["--max-batch", "8", "--max-wait-ms", "5"]),
                               ("batch size 1", ["--max-batch", "1", "--max-wait-ms", "0"])):
                server, port = start_server(drifa, model, args, a.threads)
                try:
                    load(port, bodies, a.clients, 3)  # warm-up
                    r = load(port, bodies, a.clients, a.requests)
                    r["mean_batch"] = batch_stats(port)
                finally:
                    server.terminate()
                    server.wait(timeout=60)
                r.update(passes=passes, setting=name)
                rows.append(r)
                print(json.dumps(r), flush=True)
        print(f"\n{'passes':>6} {'setting':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10} {'errors':>6}")
        for r in rows:
            print(f"{r['passes']:>6} {r['setting']:34} {r['rps']:8.1f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                  f"{r['mean_batch']:10.2f} {r['errors']:>6}")
        for passes in (0, a.passes):
            dyn, one = [r for r in rows if r["passes"] == passes]
            print(f"passes {passes}: dynamic batching {dyn['rps'] / one['rps']:.2f}x the requests/s of batch size 1")
        if any(r["errors"] for r in rows):
            sys.exit("some requests failed: " + next(r["first_error"] for r in rows if r["errors"]))


if __name__ == "__main__":
    main()
