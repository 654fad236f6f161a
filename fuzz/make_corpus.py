#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (committed; rerun to refresh).

    /usr/bin/python3 fuzz/make_corpus.py --drifa build/drifa

Images are encoded by hand (PNG with zlib, BMP, TIFF, DICOM with pydicom) except JPEG, which a
three-line OpenCV program writes (c++ and libopencv-dev, as the project builds with). Run-folder
files come from a tiny real run that the given drifa binary trains (about a minute on 2 cores).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors -------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def tiny_config():
    return {"modalities": 2, "classes": [2, 3], "in_channels": 3, "image_size": 32, "widths": [8, 8, 16, 16],
            "dropout": 0.1, "bn_momentum": 0.1, "attention": "drifa", "modality_names": ["a", "b"],
            "task_names": ["a", "b"], "class_names": [["x", "y"], ["p", "q", "r"]]}


def make_safetensors():
    f32 = np.arange(6, dtype=np.float32).tobytes()
    out("fuzz_safetensors", "two_tensors_config", safetensors(
        {"w": ("F32", [2, 3], f32), "b": ("F32", [3], np.ones(3, np.float32).tobytes())},
        {"format": "pt", "drifa.config": json.dumps(tiny_config())}))
    out("fuzz_safetensors", "no_metadata", safetensors({"x": ("F32", [1], b"\0\0\x80?")}))
    out("fuzz_safetensors", "dtypes", safetensors({
        "f64": ("F64", [2], np.ones(2, np.float64).tobytes()), "f16": ("F16", [2], np.ones(2, np.float16).tobytes()),
        "bf16": ("BF16", [2], b"\x80\x3f\x80\x3f"), "i8": ("I8", [3], b"\1\2\3"), "i64": ("I64", [1], b"\7" + b"\0" * 7),
        "u8": ("U8", [2, 2], b"\1\2\3\4"), "bool": ("BOOL", [1], b"\1"), "empty": ("F32", [0], b"")}))
    out("fuzz_safetensors", "empty_header", safetensors({}))


# ---- images --------------------------------------------------------------------------------
def png(pixels, colour_type, bit_depth=8):
    h, w = pixels.shape[:2]
    raw = b"".join(b"\0" + pixels[r].tobytes() for r in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def bmp(rgb):
    h, w = rgb.shape[:2]
    stride = (w * 3 + 3) // 4 * 4
    rows = b"".join(rgb[r, :, ::-1].tobytes() + b"\0" * (stride - w * 3) for r in range(h - 1, -1, -1))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + info + rows


def tiff(pixels, bits, sample_format=1):
    h, w = pixels.shape[:2]
    spp = 1 if pixels.ndim == 2 else pixels.shape[2]
    data = pixels.tobytes()
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, bits), (259, 3, 1, 1), (262, 3, 1, 1 if spp == 1 else 2),
               (273, 4, 1, 8), (277, 3, 1, spp), (278, 4, 1, h), (279, 4, 1, len(data)), (339, 3, 1, sample_format)]
    ifd_at = 8 + len(data) + (len(data) % 2)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + data + b"\0" * (len(data) % 2) + ifd


def jpegs():
    src = r'''#include <opencv2/imgcodecs.hpp>
int main(int, char** argv) {
  cv::Mat c(16, 16, CV_8UC3), g(8, 8, CV_8UC1);
  cv::randu(c, 0, 255); cv::randu(g, 0, 255);
  cv::imwrite(std::string(argv[1]) + "/rgb.jpg", c);
  cv::imwrite(std::string(argv[1]) + "/grey.jpg", g);
  cv::imwrite(std::string(argv[1]) + "/progressive.jpg", c, {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
}'''
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "j.cpp"), "w") as f:
            f.write(src)
        flags = subprocess.check_output(["pkg-config", "--cflags", "--libs", "opencv4"], text=True).split()
        subprocess.check_call(["c++", "-o", os.path.join(d, "j"), os.path.join(d, "j.cpp")] + flags)
        subprocess.check_call([os.path.join(d, "j"), d])
        return {n: open(os.path.join(d, n), "rb").read() for n in ("rgb.jpg", "grey.jpg", "progressive.jpg")}


def make_images():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    grey = rng.integers(0, 255, (8, 8), dtype=np.uint8)
    out("fuzz_image", "rgb.png", png(rgb, 2))
    out("fuzz_image", "grey.png", png(grey, 0))
    out("fuzz_image", "grey16.png", png(rng.integers(0, 65535, (8, 8), dtype=np.uint16).byteswap(), 0, 16))
    out("fuzz_image", "rgba.png", png(rng.integers(0, 255, (8, 8, 4), dtype=np.uint8), 6))
    out("fuzz_image", "rgb.bmp", bmp(rgb))
    out("fuzz_image", "grey.tiff", tiff(grey, 8))
    out("fuzz_image", "grey16.tiff", tiff(rng.integers(0, 65535, (8, 8), dtype=np.uint16), 16))
    out("fuzz_image", "float.tiff", tiff(rng.random((8, 8), dtype=np.float32), 32, 3))
    for name, data in jpegs().items():
        out("fuzz_image", name, data)


def make_dicoms():
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, generate_uid

    def write(name, pixels, photometric="MONOCHROME2", signed=False, syntax=ExplicitVRLittleEndian, extra=None):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
        meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
        meta.TransferSyntaxUID = syntax
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 1 if pixels.ndim == 2 else 3
        ds.PhotometricInterpretation = photometric
        if pixels.ndim == 3:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        for k, v in (extra or {}).items():
            setattr(ds, k, v)
        ds.PixelData = pixels.tobytes() if syntax != ExplicitVRBigEndian else pixels.byteswap().tobytes()
        ds.is_little_endian = syntax != ExplicitVRBigEndian
        ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
        path = os.path.join(HERE, "corpus", "fuzz_dicom", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        ds.save_as(path, write_like_original=False)

    rng = np.random.default_rng(1)
    write("mono2_u16.dcm", rng.integers(0, 4000, (8, 8), dtype=np.uint16))
    write("mono1_u8.dcm", rng.integers(0, 255, (8, 8), dtype=np.uint8), photometric="MONOCHROME1")
    write("ct_s16_rescale_window.dcm", rng.integers(-1000, 1000, (8, 8), dtype=np.int16), signed=True,
          extra={"RescaleSlope": "1", "RescaleIntercept": "-1024", "WindowCenter": "40", "WindowWidth": "400"})
    write("rgb_u8.dcm", rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), photometric="RGB")
    write("implicit_u16.dcm", rng.integers(0, 4000, (8, 8), dtype=np.uint16), syntax=ImplicitVRLittleEndian)
    write("bigendian_u16.dcm", rng.integers(0, 4000, (8, 8), dtype=np.uint16), syntax=ExplicitVRBigEndian)


# ---- settings and run files ----------------------------------------------------------------
def make_settings(drifa):
    for f in sorted(os.listdir(os.path.join(ROOT, "examples"))):
        if f.endswith(".toml"):
            out("fuzz_settings_toml", f, open(os.path.join(ROOT, "examples", f), "rb").read())
    train = {"epochs": 12, "batch_size": 16, "lr": 0.001, "task_weights": [0.5, 0.5], "plateau_factor": 0.2,
             "plateau_patience": 5, "min_lr": 1e-5, "early_stop_patience": 10, "bf16": False, "steps_per_epoch": 0}
    state = {"epoch": 3, "best_val_loss": 0.5, "best_epoch": 2, "lr": 0.001, "plateau_best": 0.5, "plateau_wait": 1, "early_wait": 1}
    augment = {"rotation": 20, "translate": 5, "brightness": [0.8, 1.2], "hflip": True, "vflip": False}
    for i, doc in enumerate([tiny_config(), train, state, None, augment]):
        if doc is not None:
            out("fuzz_settings_json", "select%d.json" % i, bytes([i]) + json.dumps(doc).encode())

    with tempfile.TemporaryDirectory() as d:
        run = lambda *a: subprocess.check_call([drifa] + list(a) + ["-q"])
        run("synth", "-o", d + "/data", "--size", "32", "--train-per-class", "6", "--test-per-class", "3")
        toml = open(d + "/data/demo.toml").read()
        out("fuzz_settings_toml", "demo.toml", toml)
        cfg = d + "/run.toml"
        with open(cfg, "w") as f:
            f.write("seed = 3\n[model]\nwidths = \"tiny\"\ndropout = 0.1\nbn_momentum = 0.1\n[data]\nimage_size = 32\n"
                    "[[data.modality]]\nname = \"derm\"\ntrain = \"data/derm/train\"\ntest = \"data/derm/test\"\n"
                    "[[data.modality]]\nname = \"mri\"\ntrain = \"data/mri/train\"\ntest = \"data/mri/test\"\n"
                    "[augment]\nrotation = 10\nbrightness = [0.9, 1.1]\n[train]\nbatch_size = 8\nepochs = 2\n")
        out("fuzz_settings_toml", "tiny_run.toml", open(cfg, "rb").read())
        r = d + "/run"
        run("train", "-c", cfg, "-o", r)
        run("calibrate", "-T", "2", r)
        run("uq", "-T", "2", r)
        run("gradcam", "-n", "2", r)
        run("tsne", "--iterations", "250", r)
        config = open(r + "/config.json", "rb").read()
        out("fuzz_settings_json", "select3_run_config.json", b"\3" + config)
        files = ["split.json", "metrics.json", "uq/uq.json", "gradcam/gradcam.json", "tsne/tsne.json",
                 None, "done.json", "log.json", "log.csv", "uq/samples.csv"]
        for i, name in enumerate(files):
            if name:
                out("fuzz_run_files", "%d_%s" % (i, name.replace("/", "_")), bytes([i]) + open(os.path.join(r, name), "rb").read())
        out("fuzz_run_files", "5_ensemble.json", b"\5" + json.dumps({"config": json.loads(config), "members": ["member-0"]}).encode())
        out("fuzz_run_files", "10_calibration.json", b"\x0a" + open(os.path.join(r, "calibration.json"), "rb").read())
        run("evaluate", r, "--partners", "2", "--missing", "all", "--resamples", "20", "--out", d + "/eval")
        out("fuzz_run_files", "1_metrics_partners.json", b"\1" + open(d + "/eval/metrics.json", "rb").read())
        out("fuzz_run_files", "13_missing.json", b"\x0d" + open(d + "/eval/missing.json", "rb").read())
        run("cv", "-c", cfg, "-o", d + "/cv", "-k", "2", "--epochs", "1", "--resamples", "20")
        out("fuzz_run_files", "11_cv.json", b"\x0b" + open(d + "/cv/cv.json", "rb").read())
        out("fuzz_run_files", "12_cv_metrics.json", b"\x0c" + open(d + "/cv/cv_metrics.json", "rb").read())
        for name in ("log.csv", "uq/samples.csv", "predictions.csv"):
            out("fuzz_csv", name.replace("/", "_"), open(os.path.join(r, name), "rb").read())
    out("fuzz_csv", "quoted.csv", b'path,label\n"a, b.png",x\n"say ""hi"".png",y\r\n\xef\xbb\xbf\n')
    out("fuzz_csv", "bom.csv", b"\xef\xbb\xbfimage_id,dx\nISIC_1,mel\nISIC_2,nv\n")


# ---- drifa serve requests (fuzz_serve_request's format: parts split by "\n--\n") -------------
def make_serve_requests():
    rng = np.random.default_rng(5)
    rgb = png(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), 2)
    grey = png(rng.integers(0, 255, (20, 12), dtype=np.uint8), 0)
    f = lambda field, name, data: b"f" + field.encode() + b"\n" + name.encode() + b"\n" + data
    v = lambda name, value: b"v" + name.encode() + b"\n" + value.encode()
    sep = b"\n--\n"
    out("fuzz_serve_request", "both", sep.join([f("a", "x.png", rgb), f("b", "y.png", grey), v("passes", "0")]))
    out("fuzz_serve_request", "one_mc", sep.join([f("b", "y.png", grey), v("passes", "2"), v("seed", "7")]))
    out("fuzz_serve_request", "gradcam", sep.join([f("a", "dir/x.png", rgb), f("b", "y.png", rgb), v("gradcam", "true")]))
    out("fuzz_serve_request", "bad_options", sep.join([f("a", "x.png", rgb), v("passes", "-3"), v("alpha", "0.1"), v("path", "/etc")]))
    out("fuzz_serve_request", "unknown_field", sep.join([f("c", "x.png", rgb), f("a", "x.png", b"")]))
    out("fuzz_serve_request", "truncated", sep.join([f("a", "x.png", rgb[: len(rgb) // 2]), f("b", "x.dcm", b"DICM")]))


def make_volumes():
    """NIfTI files (int16 with a slope, float32 gzip, NIfTI-2) and a three-slice DICOM series (its files
    joined by DRIFA-FILE, fuzz_dicom_series' format), from nibabel and tests/python/volume_oracle.py."""
    import subprocess
    import tempfile

    import nibabel as nib
    import numpy as np
    import pydicom

    a = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4)
    aff = np.diag([1.5, 1.0, 2.0, 1.0])
    aff[:3, 3] = [-5, 3, 7]
    d = os.path.join(HERE, "corpus", "fuzz_nifti")
    os.makedirs(d, exist_ok=True)
    im = nib.Nifti1Image(a, aff)
    im.header.set_slope_inter(0.5, 10)
    nib.save(im, os.path.join(d, "small_int16.nii"))
    nib.save(nib.Nifti1Image(a.astype(np.float32)[:, ::-1, :], aff), os.path.join(d, "small_f32.nii.gz"))
    nib.save(nib.Nifti2Image(a.astype(np.uint8), aff), os.path.join(d, "small_v2.nii"))
    tmp = tempfile.mkdtemp()
    subprocess.check_call(["/usr/bin/python3", os.path.join(ROOT, "tests", "python", "volume_oracle.py"), "write-series",
                           "/usr/share/mricron/templates/JHU-WhiteMatter-labels-2mm.nii.gz", os.path.join(tmp, "s")])
    slices = [pydicom.dcmread(os.path.join(tmp, "s", f)) for f in sorted(os.listdir(os.path.join(tmp, "s")))]
    slices.sort(key=lambda x: float(x.ImagePositionPatient[0]))
    parts = []
    for x in slices[:3]:
        arr = x.pixel_array[:8, :8].copy()
        x.Rows, x.Columns = 8, 8
        x.PixelData = arr.tobytes()
        p = os.path.join(tmp, "t.dcm")
        x.save_as(p)
        with open(p, "rb") as f:
            parts.append(f.read())
    shutil.rmtree(tmp)
    out("fuzz_dicom_series", "three_slices", b"DRIFA-FILE".join(parts))
    out("fuzz_dicom_series", "reversed", b"DRIFA-FILE".join(parts[::-1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drifa", default=os.path.join(ROOT, "build", "drifa"))
    ap.add_argument("--only", choices=["serve"], help="write only this target's seeds (the others stay as committed)")
    a = ap.parse_args()
    if a.only == "serve":
        shutil.rmtree(os.path.join(HERE, "corpus", "fuzz_serve_request"), ignore_errors=True)
        make_serve_requests()
        return 0
    shutil.rmtree(os.path.join(HERE, "corpus"), ignore_errors=True)
    make_safetensors()
    make_images()
    make_dicoms()
    make_settings(os.path.abspath(a.drifa))
    make_serve_requests()
    make_volumes()
    n = sum(len(fs) for _, _, fs in os.walk(os.path.join(HERE, "corpus")))
    print("wrote %d seed files under fuzz/corpus" % n)


if __name__ == "__main__":
    sys.exit(main())
