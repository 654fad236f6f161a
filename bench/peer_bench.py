"""The PyTorch peer: the same network (drifa_torch.py, written from the spec) timed in Python,
eager mode, on the same threads. One JSON line per run, like drifa_bench.

  peer_bench.py --preset paper|four --what train|infer --setting authors|optimised [--threads N]

authors:   float32, default (NCHW) layout, torch.no_grad() for inference: how the authors'
           notebooks, ported to PyTorch, would run.
optimised: the settings DRIFA uses: for inference channels-last memory and inference_mode (bf16
           autocast with --bf16); for training float32 NCHW, as DRIFA trains. run_bench.py also gives
           this process DRIFA's allocator settings (MALLOC_* variables).
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drifa_torch as dt  # noqa: E402

PRESETS = {
    "paper": dict(modalities=2, classes=[5, 7]),
    "four": dict(modalities=4, classes=[4, 2, 3, 2]),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper", choices=PRESETS)
    ap.add_argument("--what", default="train", choices=["train", "infer"])
    ap.add_argument("--setting", default="authors", choices=["authors", "optimised"])
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    threads = a.threads or len(__import__("os").sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = dt.DRIFANet(PRESETS[a.preset])
    cfg = net.cfg
    net = net.to(dev)
    xs = [torch.rand(a.batch, 3, cfg["image_size"], cfg["image_size"], device=dev) for _ in range(cfg["modalities"])]
    ys = [torch.randint(k, (a.batch,), device=dev) for k in cfg["classes"]]
    opt_ = a.setting == "optimised"
    if opt_ and a.what == "infer":
        net = net.to(memory_format=torch.channels_last)
        xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
    adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16 if dev.type == "cpu" else torch.float16, enabled=a.bf16)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def once():
        if a.what == "train":
            net.set_mode("train")
            adam.zero_grad()
            with autocast:
                logits = net(xs)
            loss = sum(torch.nn.functional.cross_entropy(l.float(), y) for l, y in zip(logits, ys)) / len(ys)
            loss.backward()
            adam.step()
        else:
            net.set_mode("eval")
            with (torch.inference_mode() if opt_ else torch.no_grad()), autocast:
                net(xs)

    for _ in range(a.warmup):
        once()
    sync()
    secs = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        once()
        sync()
        secs.append(time.perf_counter() - t0)
    secs.sort()
    print(json.dumps(dict(side="pytorch", preset=a.preset, what=a.what, setting=a.setting, bf16=a.bf16, batch=a.batch,
                          threads=torch.get_num_threads(), device=a.device, median_s=secs[len(secs) // 2], min_s=secs[0], steps=a.steps,
                          torch=torch.__version__,
                          peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)), flush=True)


if __name__ == "__main__":
    main()
