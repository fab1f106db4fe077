"""Dragonfly's EMC input: sparse photon files and detector files (the hand-off of single hits to 3-D
reconstruction by expand-maximise-compress).

Photons file (HDF5, the format Dragonfly's ``emcfile`` reads): ``num_pix`` (int32, the detector's pixels),
and per frame the variable-length int32 datasets ``place_ones`` (pixels with one photon), ``place_multi``
(pixels with more) and ``count_multi`` (their counts); ``ones`` and ``multi`` give their lengths. Pixels
are numbered as the module-stacked frame ``(modules, ss, fs)`` raveled.

Detector file (HDF5, Dragonfly's ``Detector``): per pixel ``qx``, ``qy``, ``qz`` in voxels,
``q = R_E (r̂ - ẑ)`` with the Ewald radius ``R_E = ewald_rad`` in voxels; ``corr`` the solid angle times
polarisation (``ΔΩ P``, the relative intensity of a pixel); ``mask`` (0 good, 2 bad: never used);
``detd``, the detector distance in pixels; ``ewald_rad``. With ``ewald_rad = detd`` (the default) a voxel
spans one pixel at the beam.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spizoo.core import masks
from spizoo.sim.geometry import Geometry

GOOD, BAD = 0, 2  # Dragonfly's mask values


def write_detector(
    path: str | Path, geometry: Geometry, *, mask: np.ndarray | None = None, ewald_rad: float | None = None,
    polarization: str = "x",
) -> Path:  # fmt: skip
    """Writes ``geometry`` (placed at its distance and beam position) as a Dragonfly detector file.

    Args:
        mask: CXI mask bits of the frames (default: the layout's own); unusable pixels are Dragonfly-bad.
        ewald_rad: the Ewald sphere's radius in voxels (default: the distance in pixels).
        polarization: as :meth:`Geometry.polarization`.
    """
    detd = geometry.distance_m / geometry.pixel_size_m
    ewald_rad = float(detd if ewald_rad is None else ewald_rad)
    if not ewald_rad > 0:
        raise ValueError(f"ewald_rad must be > 0, got {ewald_rad}")
    r = geometry.pixel_positions_m().reshape(-1, 3)
    rhat = r / np.linalg.norm(r, axis=-1, keepdims=True)
    q = ewald_rad * (rhat - [0.0, 0.0, 1.0])
    corr = (geometry.solid_angle_sr() * geometry.polarization(polarization)).reshape(-1)
    bits = geometry.mask() if mask is None else np.asarray(mask)
    if bits.shape != geometry.shape:
        raise ValueError(f"mask of shape {bits.shape} does not match the {geometry.name} geometry {geometry.shape}")
    flags = np.where((bits.reshape(-1) & masks.UNUSABLE) != 0, BAD, GOOD).astype(np.uint8)
    return _atomic(path, {"qx": q[:, 0], "qy": q[:, 1], "qz": q[:, 2], "corr": corr, "mask": flags,
                          "detd": np.float64(detd), "ewald_rad": np.float64(ewald_rad)})  # fmt: skip


def _atomic(path: str | Path, datasets: dict) -> Path:
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with h5py.File(partial, "w") as f:
        for name, value in datasets.items():
            f[name] = value
    os.replace(partial, path)
    return path


class PhotonsWriter:
    """Appends frames of whole photon counts to a new Dragonfly photons file; the file appears at ``path``
    only when the writer closes without error (``PATH.partial`` until then).

    Args:
        path: the photons file (must not exist).
        num_pix: pixels per frame (the detector file's).
    """

    def __init__(self, path: str | Path, num_pix: int):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; EMC files are never overwritten, choose another --out")
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.num_pix = int(num_pix)
        self._ones, self._multi, self._counts = [], [], []

    def append(self, frame: np.ndarray) -> None:
        """One frame of photon counts (any shape with ``num_pix`` pixels; non-integer counts are rounded,
        negative ones dropped)."""
        counts = np.rint(np.asarray(frame, dtype=np.float64).reshape(-1)).astype(np.int64)
        if counts.size != self.num_pix:
            raise ValueError(f"{self.path}: a frame of {counts.size} pixels for a detector of {self.num_pix}")
        multi = np.flatnonzero(counts > 1)
        self._ones.append(np.flatnonzero(counts == 1).astype(np.int32))
        self._multi.append(multi.astype(np.int32))
        self._counts.append(counts[multi].astype(np.int32))

    def close(self) -> Path:
        vlen = h5py.vlen_dtype(np.int32)
        with h5py.File(self.partial, "w") as f:
            f["num_pix"] = np.array([self.num_pix], np.int32)
            sparse = {"place_ones": self._ones, "place_multi": self._multi, "count_multi": self._counts}
            for name, values in sparse.items():
                ds = f.create_dataset(name, (len(values),), dtype=vlen)
                for i, v in enumerate(values):
                    ds[i] = v
            f["ones"] = np.array([len(v) for v in self._ones], np.int32)
            f["multi"] = np.array([len(v) for v in self._multi], np.int32)
        os.replace(self.partial, self.path)
        return self.path

    def __enter__(self) -> PhotonsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.partial.unlink(missing_ok=True)


def read_photons(path: str | Path) -> np.ndarray:
    """The dense frames (n, num_pix) int32 of a Dragonfly photons file."""
    with h5py.File(path, "r") as f:
        num_pix = int(np.prod(f["num_pix"][()]))
        ones, multi, counts = f["place_ones"][()], f["place_multi"][()], f["count_multi"][()]
    out = np.zeros((len(ones), num_pix), np.int32)
    for i, (o, m, c) in enumerate(zip(ones, multi, counts, strict=True)):
        out[i, o] += 1
        out[i, m] += c
    return out
