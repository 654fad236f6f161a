#!/usr/bin/python3
"""Independent readers for the volume geometry tests (tests/test_volume.cpp): nibabel for NIfTI,
pydicom (+ nibabel's orientation code) for DICOM series. Each command writes OUT.raw (float32,
canonical LPS+ voxels, i fastest) and OUT.json (size, spacing, the file's axis codes and, for a
series, the files in slice order).

  volume_oracle.py nifti IN.nii[.gz] OUT
  volume_oracle.py reorient IN.nii.gz CODES OUT.nii.gz   (nibabel writes IN in another orientation,
                                                           int16 with scl_slope 0.5, scl_inter 10)
  volume_oracle.py write-series IN.nii.gz DIR            (a DICOM series of a crop of IN, see below)
  volume_oracle.py series DIR OUT
  volume_oracle.py make-dataset IN.nii.gz DIR PER_CLASS SEED [SIDE DEPTH]
      real-volume classes from one brain template: NIfTI crops (SIDE x SIDE x DEPTH voxels, with
      intensity jitter and noise) from its upper third ("superior") or lower third ("inferior"),
      in DIR/{superior,inferior}/vNNN.nii.gz, each written in a random orientation
"""
import json
import os
import random
import sys

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt


def write(out, ras, affine, extra):
    """ras: the array in nibabel's closest canonical (RAS+) orientation."""
    lps = ras[::-1, ::-1, :]  # LPS+: flip the first two axes
    np.asfortranarray(lps.astype(np.float32)).T.tofile(out + ".raw")  # i fastest
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    order = ornt.io_orientation(affine)
    spacing = [0.0, 0.0, 0.0]
    for axis, (canon, _) in enumerate(order):
        spacing[int(canon)] = float(zooms[axis])
    info = {"size": list(lps.shape), "spacing": spacing, "orientation": "".join(nib.aff2axcodes(affine))}
    info.update(extra)
    with open(out + ".json", "w") as f:
        json.dump(info, f)


def nifti(path, out):
    img = nib.load(path)
    canon = nib.as_closest_canonical(img)
    write(out, np.asarray(canon.get_fdata(dtype=np.float64)), img.affine, {})


def reorient(path, codes, out):
    img = nib.load(path)
    data = np.asarray(img.get_fdata())
    target = ornt.axcodes2ornt(tuple(codes))
    transform = ornt.ornt_transform(ornt.io_orientation(img.affine), target)
    moved = ornt.apply_orientation(data, transform)
    affine = img.affine @ ornt.inv_ornt_aff(transform, data.shape)
    stored = np.round((moved - 10) / 0.5).astype(np.int16)
    new = nib.Nifti1Image(stored, affine)
    new.header.set_slope_inter(0.5, 10)
    new.header.set_qform(affine, code=1)
    new.header.set_sform(affine, code=1)
    nib.save(new, out)


def write_series(path, folder):
    """A sagittal acquisition (rows along A->P... tilted) of a crop of IN: shuffled file names,
    InstanceNumbers that disagree with positions, and a rescale slope/intercept that varies per slice."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    img = nib.as_closest_canonical(nib.load(path))
    ras = np.asarray(img.get_fdata())
    c = [s // 2 for s in ras.shape]
    crop = ras[c[0] - 10:c[0] + 10, c[1] - 24:c[1] + 24, c[2] - 20:c[2] + 20]  # 20 x 48 x 40 (R, A, S)
    # The series: slices across x (sagittal). In LPS: row direction (along a row) = posterior -> anterior
    # is (0, -1, 0); column direction (down the image) = superior -> inferior is (0, 0, -1); normal =
    # row x col = (1, 0, 0) (toward the patient's left).
    row, col = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    normal = np.cross(row, col)
    spacing = (0.9, 1.1, 1.7)  # (along rows, along columns, between slices) in mm
    nx, ny, nz = crop.shape
    os.makedirs(folder, exist_ok=True)
    order = list(range(nx))
    random.Random(7).shuffle(order)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    for rank, s in enumerate(order):
        # Slice s lies at LPS x = s * spacing[2] (toward the left as s grows); its RAS index is nx-1-s.
        plane = crop[nx - 1 - s, :, :]  # [A (y up), S (z up)] in RAS
        # pixel (r, c): r along col direction (superior->inferior), c along row direction (posterior->anterior)
        pixels = plane[:, ::-1].T  # rows: S high -> low; columns: A low -> high (posterior first)
        slope, intercept = 0.25 + 0.05 * s, -20.0 + 3 * s
        stored = np.round((pixels - intercept) / slope).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = os.path.join(folder, "im%03d.dcm" % rank)
        ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "MR"
        ds.PatientID = "P0042"
        ds.PatientName = "Oracle^Test"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.InstanceNumber = nx - rank  # disagrees with the positions on purpose
        ds.ImagePositionPatient = [float(v) for v in (-40.0, 12.0, 30.0) + s * spacing[2] * normal]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([row, col])]
        ds.PixelSpacing = [spacing[1], spacing[0]]  # (between rows, between columns)
        ds.SliceThickness = 5.0  # wrong on purpose: spacing comes from the positions
        ds.Rows, ds.Columns = stored.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = "%.4f" % slope, "%.4f" % intercept
        ds.PixelData = stored.tobytes()
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(name, write_like_original=False)


def series(folder, out):
    import pydicom

    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
    iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    files = sorted(os.listdir(folder))
    pos = [float(np.dot(np.array(s.ImagePositionPatient, dtype=float), normal)) for s in slices]
    order = np.argsort(pos, kind="stable")
    vol = np.stack([slices[i].pixel_array.astype(np.float64) * float(slices[i].RescaleSlope) + float(slices[i].RescaleIntercept)
                    for i in order], axis=-1)  # [rows, cols, slices]
    vol = vol.transpose(1, 0, 2)  # [cols (along row dir), rows (along col dir), slices]
    ps = [float(v) for v in slices[0].PixelSpacing]
    gap = (pos[order[-1]] - pos[order[0]]) / (len(order) - 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row * ps[1], col * ps[0], normal * gap
    lps[:3, 3] = np.array(slices[order[0]].ImagePositionPatient, dtype=float)
    ras_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    transform = ornt.ornt_transform(ornt.io_orientation(ras_affine), ornt.axcodes2ornt(("R", "A", "S")))
    ras = ornt.apply_orientation(vol, transform)
    write(out, ras, ras_affine, {"files": [os.path.join(folder, files[i]) for i in order]})


def make_dataset(path, folder, per_class, seed, side=40, depth=10):
    rng = np.random.default_rng(seed)
    img = nib.as_closest_canonical(nib.load(path))
    ras = np.asarray(img.get_fdata(), dtype=np.float64)
    mask = ras > 0
    zs = np.where(mask.any(axis=(0, 1)))[0]
    lo, hi = zs.min(), zs.max()
    third = (hi - lo) // 3
    ys = np.where(mask.any(axis=(0, 2)))[0]
    xs = np.where(mask.any(axis=(1, 2)))[0]
    codes = ["RAS", "LPS", "LAS", "PIR", "ASL", "RSP"]
    n = 0
    for cls, (z0, z1) in (("superior", (hi - third, hi - depth)), ("inferior", (lo + depth, lo + third))):
        os.makedirs(os.path.join(folder, cls), exist_ok=True)
        for i in range(per_class):
            x = int(rng.integers(xs.min(), max(xs.min() + 1, xs.max() - side)))
            y = int(rng.integers(ys.min(), max(ys.min() + 1, ys.max() - side)))
            z = int(rng.integers(z0, max(z0 + 1, z1)))
            crop = ras[x:x + side, y:y + side, z:z + depth] * rng.uniform(0.8, 1.2)
            crop = crop + rng.normal(0, 0.03 * max(1.0, crop.max()), crop.shape)
            affine = img.affine.copy()
            affine[:3, 3] = (img.affine @ np.array([x, y, z, 1.0]))[:3]
            target = ornt.axcodes2ornt(tuple(codes[n % len(codes)]))
            transform = ornt.ornt_transform(ornt.io_orientation(affine), target)
            moved = ornt.apply_orientation(crop, transform)
            new_affine = affine @ ornt.inv_ornt_aff(transform, crop.shape)
            nib.save(nib.Nifti1Image(moved.astype(np.float32), new_affine), os.path.join(folder, cls, "v%03d.nii.gz" % n))
            n += 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "nifti":
        nifti(sys.argv[2], sys.argv[3])
    elif cmd == "reorient":
        reorient(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "write-series":
        write_series(sys.argv[2], sys.argv[3])
    elif cmd == "make-dataset":
        make_dataset(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), *[int(a) for a in sys.argv[6:8]])
    elif cmd == "series":
        series(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)
