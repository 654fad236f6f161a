"""Cross-language check: a model exported by DRIFA (C++) loads into the PyTorch port with
load_state_dict (strict) and gives the same logits in evaluation mode.

usage: crosscheck.py MODEL.safetensors IO.safetensors
IO holds inputs x0..x{M-1} (an absent modality has no x{m}), the C++ logits logits0..logits{T-1},
and optionally a presence mask [B, M] and the logits with it, masked0..masked{T-1}.
Prints max_abs_diff=<v> over all of them; exits 1 if it exceeds 1e-4.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import torch  # noqa: E402

import drifa_torch  # noqa: E402


def main():
    model_path, io_path = sys.argv[1:3]
    torch.set_num_threads(1)
    net = drifa_torch.load_model(model_path)
    net.set_mode("eval")
    io, _ = drifa_torch.load_safetensors(io_path)
    m = net.cfg["modalities"]
    xs = [io.get(f"x{i}") for i in range(m)]
    worst = 0.0
    runs = [(None, "logits")]
    if "presence" in io:
        runs.append((io["presence"], "masked"))
    for presence, prefix in runs:
        with torch.no_grad():
            logits = net(xs, presence)
        for t, l in enumerate(logits):
            ref = io[f"{prefix}{t}"]
            assert l.shape == ref.shape, (l.shape, ref.shape)
            worst = max(worst, (l - ref).abs().max().item())
    print(f"max_abs_diff={worst:.3e} tasks={len(logits)} modalities={m} params={drifa_torch.count_parameters(net)}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
