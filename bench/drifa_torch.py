"""DRIFA-Net in PyTorch, written from ../shared/DRIFA-SPEC.md.

It is the peer the C++ implementation is measured against (bench/) and the oracle it is
checked against (tests/python/). Parameter names are the spec's canonical names (section 6),
so a DRIFA safetensors export loads with load_state_dict and nothing else.
"""
import json
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv1x1(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=True)


def batchnorm(c, momentum=0.01):
    # The authors' Keras defaults: eps 1e-3, momentum 0.99 (Keras) == 0.01 (PyTorch).
    return nn.BatchNorm2d(c, eps=1e-3, momentum=momentum)


class HIFA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2, self.conv3, self.conv4 = (conv1x1(c, c) for _ in range(4))
        self.fc = nn.Linear(2 * c, c)

    def forward(self, x):
        a1 = torch.sigmoid(self.conv1(x))
        a2 = torch.sigmoid(self.conv2(a1))
        s1 = a1.mean((2, 3)) + a2.amax((2, 3))
        a3 = torch.sigmoid(self.conv3(a1 + a2))
        a4 = torch.sigmoid(self.conv4(a3))
        s2 = a3.mean((2, 3)) + a4.amax((2, 3))
        return torch.sigmoid(self.fc(torch.cat([s1, s2], 1)))[:, :, None, None]


class CLIA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = conv1x1(c, c), conv1x1(c, c)

    def forward(self, x):
        l1 = torch.sigmoid(self.conv1(x)).mean((2, 3), keepdim=True)
        return l1 + torch.sigmoid(self.conv2(l1))


class MFA(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.hifa, self.clia = HIFA(c), CLIA(c)
        self.global_scale = nn.Parameter(torch.ones(1))
        self.local_scale = nn.Parameter(torch.ones(c))
        self.alpha = nn.Parameter(torch.ones(c))

    def forward(self, x):
        att = torch.sigmoid(self.global_scale * self.hifa(x) + self.local_scale.view(1, -1, 1, 1) * self.clia(x))
        return x * att * self.alpha.view(1, -1, 1, 1)


class MIFA(nn.Module):
    def __init__(self, c, modalities):
        super().__init__()
        self.fc = nn.Linear(c, c)
        self.local = nn.ModuleList(conv1x1(c, c) for _ in range(modalities))
        self.global_scale = nn.Parameter(torch.ones(1))
        self.local_scale = nn.Parameter(torch.ones(c))
        self.alpha = nn.ParameterDict({str(m): nn.Parameter(torch.ones(c)) for m in range(modalities)})

    def forward(self, xs, presence=None):
        """xs[m] None: modality m absent (left out of every sum); presence [B, M] 0/1 weighs each
        sample's terms the same way."""
        def w(m):
            return 1.0 if presence is None else presence[:, m:m + 1]
        present = [m for m, x in enumerate(xs) if x is not None]
        p_min = sum(w(m) * xs[m].amin((2, 3)) for m in present)
        p_avg = sum(w(m) * xs[m].mean((2, 3)) for m in present)
        p_max = sum(w(m) * xs[m].amax((2, 3)) for m in present)
        g = (torch.sigmoid(self.fc(p_min)) + torch.sigmoid(self.fc(p_avg)) + torch.sigmoid(self.fc(p_max)))[:, :, None, None]
        l = 0
        for m in present:
            q = torch.sigmoid(self.local[m](xs[m]))
            l = l + (w(m) * (q.amin((2, 3)) + q.mean((2, 3)) + q.amax((2, 3))))[:, :, None, None]
        att = torch.sigmoid(self.global_scale * g + self.local_scale.view(1, -1, 1, 1) * l)
        return [None if x is None else x * att * self.alpha[str(m)].view(1, -1, 1, 1) for m, x in enumerate(xs)]


class Shortcut(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv, self.bn = conv1x1(c_in, c_out, stride), batchnorm(c_out)

    def forward(self, x):
        return self.bn(self.conv(x))


class RRA(nn.Module):
    def __init__(self, c_in, c_out, stride, with_mfa):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=True)
        self.mfa1 = MFA(c_out) if with_mfa else None
        self.bn1 = batchnorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=True)
        self.mfa2 = MFA(c_out) if with_mfa else None
        self.bn2 = batchnorm(c_out)
        self.shortcut = Shortcut(c_in, c_out, stride) if (stride != 1 or c_in != c_out) else None

    def forward(self, x):
        y = self.conv1(x)
        if self.mfa1 is not None:
            y = self.mfa1(y)
        y = F.relu(self.bn1(y))
        y = self.conv2(y)
        if self.mfa2 is not None:
            y = self.mfa2(y)
        y = self.bn2(y)
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class Stem(nn.Module):
    def __init__(self, c_in, w, with_mfa):
        super().__init__()
        self.conv = nn.Conv2d(c_in, w, 7, stride=2, padding=3, bias=True)
        self.mfa = MFA(w) if with_mfa else None
        self.bn = batchnorm(w)

    def forward(self, x):
        y = self.conv(x)
        if self.mfa is not None:
            y = self.mfa(y)
        return F.max_pool2d(F.relu(self.bn(y)), 3, 2, 1)


class Stage(nn.Module):
    def __init__(self, c_in, c_out, stride, with_mfa, post_mfa):
        super().__init__()
        self.rra = RRA(c_in, c_out, stride, with_mfa)
        self.mfa = MFA(c_out) if post_mfa else None


class Branch(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w = cfg["widths"]
        with_mfa = cfg["attention"] in ("mfa", "drifa")
        self.stem = Stem(cfg["in_channels"], w[0], with_mfa)
        n = len(w)
        self.stages = nn.ModuleList(
            Stage(w[0] if i == 0 else w[i - 1], w[i], 2 if (i > 0 and w[i] != w[i - 1]) else 1,
                  with_mfa, with_mfa and i < n - 1)
            for i in range(n))


DEFAULT_CONFIG = dict(modalities=2, classes=[5, 7], in_channels=3, image_size=128,
                      widths=[64, 64, 128, 128, 256, 256, 512, 512], dropout=0.25, attention="drifa",
                      bn_momentum=0.01)


class DRIFANet(nn.Module):
    """mode: 'train' (dropout on, BN batch stats), 'eval' (deterministic), 'mc' (dropout on, BN running stats)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = {**DEFAULT_CONFIG, **cfg}
        self.cfg = cfg
        m, w = cfg["modalities"], cfg["widths"]
        self.branches = nn.ModuleList(Branch(cfg) for _ in range(m))
        with_mifa = cfg["attention"] in ("mifa", "drifa")
        self.fusions = nn.ModuleList(MIFA(c, m) for c in w) if with_mifa else nn.ModuleList()
        self.heads = nn.ModuleList(nn.Linear(m * w[-1], k) for k in cfg["classes"])
        self.mc = False
        for mod in self.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.momentum = cfg["bn_momentum"]
        self.reset_parameters()

    def reset_parameters(self):
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)

    def set_mode(self, mode):
        self.train(mode == "train")
        self.mc = mode == "mc"

    def forward(self, xs, presence=None):
        """xs[m] None: modality m absent for the batch (its branch skipped, MIFA over the present
        ones, zeros to the head); presence [B, M] 0/1: the same per sample (DRIFA's drifa_net.h)."""
        p, n = self.cfg["dropout"], len(self.cfg["widths"])
        drop = (self.training or self.mc) and p > 0
        h = [None if x is None else b.stem(x) for b, x in zip(self.branches, xs)]
        for i in range(n):
            for m, b in enumerate(self.branches):
                if h[m] is None:
                    continue
                st = b.stages[i]
                h[m] = st.rra(h[m])
                if drop and i < n - 2:
                    h[m] = F.dropout(h[m], p, True)
                if st.mfa is not None:
                    h[m] = st.mfa(h[m])
            if len(self.fusions):
                h = self.fusions[i](h, presence)
        ref = next(x for x in h if x is not None)
        cat = torch.cat([torch.zeros_like(ref) if x is None else x if presence is None else x * presence[:, m].view(-1, 1, 1, 1)
                         for m, x in enumerate(h)], 1)
        f = (F.dropout(cat, p, True) if drop else cat).mean((2, 3))
        return [head(f) for head in self.heads]


_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
           "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
           "U8": torch.uint8, "BOOL": torch.bool}


def load_safetensors(path):
    """Minimal safetensors reader (Debian has no python3-safetensors): returns (tensors, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(body[b:end])
        t = torch.frombuffer(buf, dtype=_DTYPES[e["dtype"]]) if end > b else torch.empty(0, dtype=_DTYPES[e["dtype"]])
        tensors[name] = t.reshape(e["shape"]).clone()
    return tensors, meta


def load_model(path):
    """Builds the model from the file's drifa.config metadata and loads its state strictly."""
    tensors, meta = load_safetensors(path)
    cfg = json.loads(meta["drifa.config"])
    net = DRIFANet({k: cfg[k] for k in DEFAULT_CONFIG if k in cfg})
    net.load_state_dict(tensors, strict=True)
    return net


def count_parameters(net):
    return sum(p.numel() for p in net.parameters())


if __name__ == "__main__":
    for cfg in (dict(), dict(modalities=4, classes=[4, 2, 3, 2]), dict(widths=[8, 8, 16, 16, 32, 32, 64, 64])):
        print(cfg, count_parameters(DRIFANet(cfg)))
