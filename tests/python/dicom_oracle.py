"""pydicom as the oracle for DRIFA's DICOM decoding.

  dicom_oracle.py prepare DIR          writes DIR/MR_small_mono1.dcm (MONOCHROME1 copy of MR_small)
  dicom_oracle.py check DIR F1 F2 ...  compares DIR/decoded.safetensors (C++) with pydicom

The rule both sides implement: modality value = stored * RescaleSlope + RescaleIntercept;
window [c - w/2, c + w/2] from the first Window Center/Width, else the image's min..max;
y = clip((v - lo) / (hi - lo), 0, 1); MONOCHROME1 -> 1 - y.
"""
import os
import sys
import warnings

import numpy as np
import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import drifa_torch  # noqa: E402

warnings.simplefilter("ignore")


def first(v):
    if v is None:
        return None
    try:
        return float(v[0])
    except TypeError:
        return float(v)


def expected(path):
    d = pydicom.dcmread(path)
    v = d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1) or 1) + float(getattr(d, "RescaleIntercept", 0) or 0)
    c, w = first(getattr(d, "WindowCenter", None)), first(getattr(d, "WindowWidth", None))
    if c is not None and w is not None and w > 0:
        lo, hi = c - w / 2, c + w / 2
    else:
        lo, hi = v.min(), v.max()
    y = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    if d.PhotometricInterpretation == "MONOCHROME1":
        y = 1 - y
    return y


def main():
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "prepare":
        d = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        d.PhotometricInterpretation = "MONOCHROME1"
        d.save_as(os.path.join(out, "MR_small_mono1.dcm"))
        return 0
    got, _ = drifa_torch.load_safetensors(os.path.join(out, "decoded.safetensors"))
    worst = 0.0
    for f in sys.argv[3:]:
        e = expected(f)
        g = got[os.path.basename(f)].numpy()
        assert g.shape == e.shape, (f, g.shape, e.shape)
        diff = float(np.abs(g - e).max())
        print(f"{os.path.basename(f)} max_abs_diff={diff:.2e} mean={e.mean():.4f}")
        worst = max(worst, diff)
    print(f"worst={worst:.3e}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
