"""CXI files (Coherent X-ray Imaging format, cxidb.org) written frame by frame.

Layout written (CXI 1.5; SI units):

    /cxi_version                                     150
    /entry_1/instrument_1/detector_1/data            (N, ny, nx) float32 photons, axes "experiment_identifier:y:x";
                                                     module-stacked (N, modules, ss, fs), axes
                                                     "experiment_identifier:module_identifier:y:x"
    /entry_1/instrument_1/detector_1/mask            (N, ...) uint32 CXI pixel-mask bits (0 = good)
    /entry_1/instrument_1/detector_1/distance        (N,) m
    /entry_1/instrument_1/detector_1/x_pixel_size    (N,) m   (and y_pixel_size)
    /entry_1/instrument_1/detector_1/corner_position (N, 3) m: corner of pixel (0, 0) from the interaction point
                                                     (flat frames only: module-stacked frames have their
                                                     detector geometry in a CrystFEL file beside)
    /entry_1/instrument_1/source_1/energy            (N,) J   (and wavelength, m)
    /entry_1/data_1/data                             soft link to the detector data
    /entry_1/<group>/<name>                          (N, ...) per-frame extras (labels, simulation parameters)

Frames are appended as they come and written in blocks of ``block`` frames (memory stays one block), into
``PATH.partial``, which is renamed to
``PATH`` only when the writer closes without error; a failed or interrupted run leaves no ``PATH``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from spizoo.data.frames import FrameFile
from spizoo.sim.constants import HC_EV_NM

CXI_VERSION = 150
EV_TO_J = 1.602176634e-19
DETECTOR = "entry_1/instrument_1/detector_1"
SOURCE = "entry_1/instrument_1/source_1"


class CXIWriter:
    """Appends frames and their per-frame metadata to a new CXI file.

    Args:
        path: output file; must not exist unless ``overwrite``.
        frame_shape: (ny, nx) of every frame, or (modules, ss, fs) for module-stacked frames.
        extras_group: group under ``/entry_1`` that holds the per-frame extras.
        overwrite: replace an existing ``path``.
        block: frames buffered per HDF5 write (h5py's per-call cost dominates single-frame writes).

    Use as a context manager; the file appears at ``path`` only after a clean exit.
    """

    def __init__(
        self,
        path: str | Path,
        frame_shape: tuple[int, ...],
        *,
        extras_group: str = "spizoo",
        overwrite: bool = False,
        block: int = 64,
    ):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.frame_shape = tuple(int(n) for n in frame_shape)
        if len(self.frame_shape) not in (2, 3):
            raise ValueError(f"frames must be (ny, nx) or (modules, ss, fs), got shape {self.frame_shape}")
        self._extras_group = f"entry_1/{extras_group}"
        self._file = h5py.File(self.partial, "w")
        self._n = 0  # frames written to the file
        self._block = block
        self._pending: dict[str, list[np.ndarray]] = {}
        f = self._file
        f.create_dataset("cxi_version", data=CXI_VERSION)
        shape = self.frame_shape
        data = f.create_dataset(
            f"{DETECTOR}/data", (0, *shape), np.float32, maxshape=(None, *shape), chunks=(1, *shape)
        )
        modules = "module_identifier:" if len(shape) == 3 else ""
        data.attrs["axes"] = f"experiment_identifier:{modules}y:x"
        data.attrs["units"] = "photons"
        f.create_dataset(
            f"{DETECTOR}/mask", (0, *shape), np.uint32, maxshape=(None, *shape), chunks=(1, *shape), compression="lzf"
        )
        f.create_group("entry_1/data_1")["data"] = h5py.SoftLink(f"/{DETECTOR}/data")

    def _append(self, name: str, value) -> None:
        value = np.asarray(value)
        pending = self._pending.setdefault(name, [])
        if pending and pending[0].shape != value.shape:
            raise ValueError(f"{self.path}: /{name} has frames of shape {pending[0].shape}, got {value.shape}")
        pending.append(value)

    def _flush(self) -> None:
        count = len(self._pending.get(f"{DETECTOR}/data", []))
        for name, values in self._pending.items():
            if len(values) != count:
                raise ValueError(f"{self.path}: /{name} was given for {len(values)} of {count} frames")
            block = np.stack(values)
            if block.dtype.kind == "U":
                block = block.astype(h5py.string_dtype())
            if name not in self._file:
                self._file.create_dataset(
                    name, (self._n, *block.shape[1:]), block.dtype, maxshape=(None, *block.shape[1:])
                )
            ds = self._file[name]
            if ds.shape[1:] != block.shape[1:]:
                raise ValueError(f"{self.path}: /{name} has frames of shape {ds.shape[1:]}, got {block.shape[1:]}")
            ds.resize(self._n + count, axis=0)
            ds[self._n :] = block
        self._n += count
        self._pending = {}

    def append(
        self,
        image: np.ndarray,
        *,
        mask: np.ndarray,
        distance_m: float,
        pixel_size_m: float,
        center_px: tuple[float, float] | None,
        photon_energy_eV: float,
        extras: dict | None = None,
    ) -> None:
        """Appends one frame with its detector geometry and extras (written under ``/entry_1/<group>``);
        ``center_px`` (the beam's pixel on a flat frame) is ``None`` for module-stacked frames."""
        if image.shape != self.frame_shape:
            raise ValueError(f"{self.path}: frames are {self.frame_shape}, got an image of shape {image.shape}")
        self._append(f"{DETECTOR}/data", image.astype(np.float32, copy=False))
        self._append(f"{DETECTOR}/mask", mask.astype(np.uint32, copy=False))
        self._append(f"{DETECTOR}/distance", float(distance_m))
        self._append(f"{DETECTOR}/x_pixel_size", float(pixel_size_m))
        self._append(f"{DETECTOR}/y_pixel_size", float(pixel_size_m))
        if center_px is not None:
            cy, cx = center_px
            self._append(
                f"{DETECTOR}/corner_position",
                [-(cx + 0.5) * pixel_size_m, -(cy + 0.5) * pixel_size_m, distance_m],
            )
        self._append(f"{SOURCE}/energy", photon_energy_eV * EV_TO_J)
        self._append(f"{SOURCE}/wavelength", HC_EV_NM / photon_energy_eV * 1e-9)
        for key, value in (extras or {}).items():
            self._append(f"{self._extras_group}/{key}", value)
        if len(self._pending[f"{DETECTOR}/data"]) >= self._block:
            self._flush()

    def close(self) -> None:
        """Finishes the file and moves it into place."""
        if self._pending:
            self._flush()
        self._file.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Discards the partial file."""
        self._file.close()
        self.partial.unlink(missing_ok=True)

    def __enter__(self) -> CXIWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_frame(path: str | Path, index: int, *, dataset: str = "entry_1/data_1/data") -> np.ndarray:
    """Frame ``index`` (negative counts from the end) of a CXI/HDF5 image stack as stored, unmasked, read
    alone (see :class:`spizoo.data.frames.FrameFile` for batches, masks and geometry).

    Raises:
        FileNotFoundError, ValueError: naming the file, the dataset path and what the file has instead.
    """
    with FrameFile(path, dataset) as frames:
        n = len(frames)
        if not -n <= index < n:
            raise ValueError(f"{path}: frame {index} out of range; /{frames.dataset_path} holds {n} frames")
        i = index % n
        return np.asarray(frames.data[i] if frames.data.ndim == 3 else frames.data[()])


def read_extras(path: str | Path, index: int, *, group: str = "entry_1/spizoo") -> dict[str, np.ndarray]:
    """The per-frame extras of frame ``index`` (empty if the file has none)."""
    with h5py.File(path, "r") as f:
        if group not in f:
            return {}
        return {name: np.asarray(ds[index]) for name, ds in f[group].items()}
