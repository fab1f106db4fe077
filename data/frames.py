"""Detector frames from CXI and plain HDF5 files, read lazily: a frame or a slice at a time, never the stack.

Handles what facilities write (CXI 1.2–1.6 from Cheetah, Condor, EuXFEL's extra-data, spizoo):
``/entry_1/data_1/data`` reached through soft or external links and virtual datasets, stacks described by
an ``axes`` attribute (``experiment_identifier:y:x``), Cheetah's ``numEvents`` attribute (stacks allocated
larger than the frames written), the 32-bit CXI pixel mask, and detector distance, pixel size and photon
energy in SI units. A plain HDF5 file works with the dataset path named (``dataset="/data/frames"``).

Module-stacked frames ``(n, modules, ss, fs)`` — AGIPD's ``(n, 16, 512, 128)``, EXtra-data's virtual CXI,
``spizoo simulate`` on a detector geometry — are read through a :class:`~spizoo.sim.geometry.View` of their
detector's geometry into the model's image (the one place frames of a real detector become model input).

Errors name the file and what is wrong: a missing dataset (listing the file's image stacks), a virtual
dataset whose source file is missing, a wrong rank, module-stacked frames without a geometry, an unreadable
frame.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np

from spizoo.core import masks
from spizoo.data.euxfel import RunFrames, is_run_directory
from spizoo.data.frame_check import FrameGeometry
from spizoo.sim.geometry import Geometry, View

J_PER_EV = 1.602176634e-19
CANDIDATES = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data", "entry_1/image_1/data")


def _shown(value) -> str:
    """An attribute's value as a person wrote it (``3``, ``'x'``, ``[]``), not numpy's repr."""
    return repr(np.asarray(value).tolist())


READ_FRAMES = 8  # frames per HDF5 read into a reused buffer


class FrameFile:
    """An image stack in a CXI/HDF5 file, opened for reading frames and slices.

    Args:
        path: the file.
        dataset: path of the stack inside the file; default: the CXI locations, in order, of ``CANDIDATES``.
        mask_dataset: path of a pixel mask, (frames, y, x) or (y, x); default: the CXI detector's ``mask``
            next to the data, if present.
        view: for module-stacked frames, the :class:`~spizoo.sim.geometry.View` that makes them model images,
            or a function of the path that returns it (called only for a module-stacked file); ignored for
            2-D frames.

    Raises:
        FileNotFoundError: the file, or the source file of a virtual dataset, does not exist.
        ValueError: the file is not HDF5, the dataset is missing (the message lists the file's 2-D and 3-D
            datasets) or is not a stack of 2-D frames.
    """

    def __init__(
        self,
        path: str | Path,
        dataset: str | None = None,
        *,
        mask_dataset: str | None = None,
        view: View | Callable[[Path], View | None] | None = None,
    ):
        self.path = Path(path)
        self.view = None
        self._buffer = self._unusable = None
        self._reading = threading.Lock()  # the buffer is reused: one read at a time
        if not self.path.exists():
            raise FileNotFoundError(f"no such file: {self.path}")
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory, not a CXI/HDF5 file or a European XFEL run")
        try:
            self.file = h5py.File(self.path, "r", locking=False)
        except OSError as err:
            raise ValueError(f"{self.path}: not an HDF5/CXI file, or not readable yet ({err})") from None
        try:
            self.dataset_path = self._find(dataset)
            self.data = self.file[self.dataset_path]
            self._check_virtual_sources()
            self._check_rank()
            if self.modular:
                self._set_view(view)
            self.count = self._frames_written()
            self.mask = self._mask(mask_dataset)
        except BaseException:
            self.file.close()
            raise

    def _find(self, dataset: str | None) -> str:
        names = [dataset.strip("/")] if dataset else list(CANDIDATES)
        for name in names:
            try:
                if isinstance(self.file.get(name), h5py.Dataset):
                    return name
            except (KeyError, OSError, RuntimeError):  # a dangling or looping soft or external link
                continue
        stacks = []
        wanted = f"/{names[0]}" if dataset else " or ".join(f"/{n}" for n in names)
        try:
            self.file.visititems(
                lambda n, obj: (
                    stacks.append(f"/{n} {obj.shape}") if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 else None
                )
            )
        except (RuntimeError, OSError) as err:  # link loops, damaged groups
            raise ValueError(
                f"{self.path}: no image stack at {wanted}, and its groups cannot be listed ({err})"
            ) from None
        raise ValueError(
            f"{self.path}: no image stack at {wanted}; its 2-D and 3-D datasets are: "
            + (", ".join(stacks[:20]) or "none")
        )

    def _check_virtual_sources(self) -> None:
        if not self.data.is_virtual:
            return
        for source in self.data.virtual_sources():
            name = source.file_name
            resolved = name if os.path.isabs(name) or name == "." else os.path.join(self.path.parent, name)
            if name != "." and not os.path.exists(resolved):
                raise FileNotFoundError(
                    f"{self.path}: /{self.dataset_path} is a virtual dataset reading {source.dset_name} from "
                    f"{resolved}, which does not exist"
                )

    def _check_rank(self) -> None:
        try:
            axes = self.data.attrs.get("axes")
        except OSError as err:  # a damaged attribute
            raise ValueError(f"{self.path}: cannot read the axes of /{self.dataset_path} ({err})") from None
        if isinstance(axes, bytes):
            axes = axes.decode()
        if isinstance(axes, np.ndarray):
            axes = ":".join(a.decode() if isinstance(a, bytes) else str(a) for a in axes)
        if axes is not None and not isinstance(axes, str):
            raise ValueError(
                f"{self.path}: /{self.dataset_path} has axes {_shown(axes)}; expected text such as "
                "'experiment_identifier:y:x'"
            )
        if self.data.ndim == 2:
            return
        if self.data.ndim not in (3, 4):
            raise ValueError(
                f"{self.path}: /{self.dataset_path} has shape {self.data.shape}; expected frames (n, y, x), "
                "one frame (y, x), or module-stacked frames (n, modules, ss, fs)"
            )
        if axes and axes.split(":")[-2:] != ["y", "x"]:
            raise ValueError(f"{self.path}: /{self.dataset_path} has axes {axes!r}; expected '…:y:x'")

    @property
    def modular(self) -> bool:
        """Whether the frames are module-stacked, (n, modules, ss, fs)."""
        return self.data.ndim == 4

    def _set_view(self, view) -> None:
        view = view(self.path) if callable(view) and not isinstance(view, View) else view
        shape = tuple(self.data.shape[1:])
        if view is None:
            raise ValueError(
                f"{self.path}: /{self.dataset_path} holds module-stacked frames ({shape[0]} modules of "
                f"{shape[1]}x{shape[2]} pixels); give their detector geometry (--geometry FILE.geom)"
            )
        if view.geometry.shape != shape:
            raise ValueError(
                f"{self.path}: frames of {shape[0]} modules of {shape[1]}x{shape[2]} pixels do not match the "
                f"{view.geometry.name} geometry ({view.geometry.shape[0]} modules of "
                f"{view.geometry.shape[1]}x{view.geometry.shape[2]})"
            )
        self.view = view

    def _frames_written(self) -> int:
        if self.data.ndim == 2:
            return 1
        n = self.data.shape[0]
        for holder in (self.data, self.file.get("entry_1")):
            events = holder.attrs.get("numEvents") if holder is not None else None
            if events is not None:
                try:
                    count = int(np.asarray(events).reshape(-1)[0])
                except (ValueError, TypeError, IndexError):
                    count = -1
                if count < 0:
                    raise ValueError(
                        f"{self.path}: /{holder.name.strip('/')} has numEvents {_shown(events)}, not a frame count"
                    )
                n = min(n, count)
        return n

    def _mask(self, mask_dataset: str | None):
        name = mask_dataset or f"{self.dataset_path.rsplit('/', 1)[0]}/mask"
        for candidate in (name, "entry_1/instrument_1/detector_1/mask"):
            obj = self.file.get(candidate)
            if isinstance(obj, h5py.Dataset) and obj.shape[-len(self._stored) :] == self._stored:
                if obj.dtype.kind not in "iub":
                    raise ValueError(f"{self.path}: the mask /{candidate} holds {obj.dtype}, not integer CXI bits")
                return obj
        if mask_dataset:
            raise ValueError(f"{self.path}: no mask of shape {self._stored} at /{mask_dataset}")
        return None

    @property
    def _stored(self) -> tuple[int, ...]:
        """The shape of one frame in the file: (y, x), or (modules, ss, fs)."""
        return tuple(self.data.shape[1:] if self.modular else self.data.shape[-2:])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """The shape of the frames :meth:`read` gives: (y, x) (the view's for module-stacked frames)."""
        return tuple(self.view.pixels) if self.view is not None else self._stored

    def __len__(self) -> int:
        return self.count

    def read(self, start: int, stop: int, *, apply_mask: bool = True, stored: bool = False) -> np.ndarray:
        """Frames ``start … stop-1`` as float32 (n, y, x); unusable pixels (:data:`spizoo.core.masks.UNUSABLE`)
        read 0 (module-stacked frames: before their view sums them; ``stored``: as stored, not viewed).

        Raises:
            IndexError: for frames outside ``0 … len-1``.
            ValueError: naming the frames, if HDF5 cannot read them (a damaged or still-growing file).
        """
        if not 0 <= start <= stop <= self.count:
            raise IndexError(f"{self.path}: frames {start}…{stop - 1} out of range; the file holds {self.count}")
        viewed = self.view is not None and not stored
        with self._reading:
            try:
                frames = self._read_stored(start, stop, reuse=viewed)
                if apply_mask and self.mask is not None:
                    if self.mask.ndim == len(self._stored):  # one mask for every frame
                        frames.reshape(len(frames), -1)[:, self._unusable_pixels()] = 0.0
                    else:
                        frames[(np.asarray(self.mask[start:stop]).astype(np.uint32) & masks.UNUSABLE) != 0] = 0.0
            except (OSError, ValueError, TypeError) as err:  # damaged, still growing, or not numbers
                raise ValueError(
                    f"{self.path}: cannot read frames {start}…{stop - 1} of /{self.dataset_path} ({err})"
                ) from None
            return self.view(frames) if viewed else frames

    def _read_stored(self, start: int, stop: int, *, reuse: bool) -> np.ndarray:
        """Frames as stored, as float32; with ``reuse``, read into this file's one buffer (for frames the view
        sums at once: no fresh 4 MiB per AGIPD frame to allocate and fault in; HDF5 converts as it reads)."""
        if self.data.ndim == 2:
            return np.asarray(self.data[()], np.float32)[None]
        if not reuse or stop == start:  # h5py's own reader is the faster into a fresh array
            return np.asarray(self.data[start:stop], np.float32)
        shape = (stop - start, *self.data.shape[1:])
        if self._buffer is None or self._buffer.shape != shape:
            self._buffer = np.empty(shape, np.float32)
        for first in range(start, stop, READ_FRAMES):  # a few frames a call: h5py keeps the GIL while HDF5 reads
            last = min(first + READ_FRAMES, stop)
            self.data.read_direct(self._buffer, np.s_[first:last], np.s_[first - start : last - start])
        return self._buffer

    def _unusable_pixels(self) -> np.ndarray:
        """Flat indices of the pixels a per-detector mask marks unusable, read once."""
        if self._unusable is None:
            self._unusable = np.flatnonzero(np.asarray(self.mask[()]).astype(np.uint32) & masks.UNUSABLE)
        return self._unusable

    def frame_mask(self) -> np.ndarray | None:
        """The file's mask if one holds for every frame (the detector's), else ``None``."""
        if self.mask is None or self.mask.ndim != len(self._stored):
            return None
        return np.asarray(self.mask[()], np.uint32)

    def frame(self, index: int) -> np.ndarray:
        """One frame, float32 (y, x)."""
        return self.read(index, index + 1)[0]

    def batches(self, size: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame index, frames) of consecutive batches of at most ``size`` frames from ``start``."""
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        for first in range(start, self.count, size):
            yield first, self.read(first, min(first + size, self.count))

    def geometry(self, index: int = 0) -> FrameGeometry:
        """Distance, pixel size and photon energy of frame ``index`` from the CXI detector and source groups;
        of module-stacked frames, the pixel size of their view's images (and the geometry's distance if the
        file has none)."""
        detector = (
            self.dataset_path.rsplit("/", 1)[0]
            if "detector" in self.dataset_path
            else "entry_1/instrument_1/detector_1"
        )

        def value(name: str) -> float | None:
            obj = self.file.get(name)
            if not isinstance(obj, h5py.Dataset):
                return None
            try:
                v = np.asarray(obj[()]).reshape(-1)
                return float(v[min(index, len(v) - 1)]) if v.size else None
            except (OSError, ValueError, TypeError) as err:
                raise ValueError(f"{self.path}: /{name} is not a number ({err})") from None

        energy = value("entry_1/instrument_1/source_1/energy")
        if self.view is not None:
            return dataclasses.replace(
                FrameGeometry.of_view(self.view, value(f"{detector}/distance")),
                photon_energy_eV=energy / J_PER_EV if energy is not None else None,
            )
        return FrameGeometry(
            distance_m=value(f"{detector}/distance"),
            pixel_size_m=value(f"{detector}/x_pixel_size"),
            photon_energy_eV=energy / J_PER_EV if energy is not None else None,
        )

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> FrameFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ViewFinder:
    """The :class:`~spizoo.sim.geometry.View` of each module-stacked file, for ``FrameFile(view=…)``.

    A file's geometry is ``geometry`` (a CrystFEL ``.geom`` file), else the ``.geom`` file beside it with its
    name (``run.cxi`` → ``run.geom``, as ``spizoo simulate`` writes), else ``default`` (e.g. the geometry a
    model was trained on); its view has ``pixels`` cells of ``bin × bin`` pixels. Geometries are read once.

    Attributes:
        used: file → the geometry its view came from (for summaries).
    """

    def __init__(self, geometry: str | Path | None = None, *, pixels=(128, 128), bin: int = 1, default=None):
        self.geometry = Path(geometry) if geometry else None
        if self.geometry is not None and not self.geometry.is_file():
            raise FileNotFoundError(f"--geometry {self.geometry}: no such file")
        self.pixels, self.bin, self.default = tuple(pixels), int(bin), default
        self.used: dict[str, str] = {}
        self._views: dict[str, View] = {}

    def __call__(self, path: Path | None) -> View | None:
        """The view of file ``path`` (``None``: of a stream, which has no file beside it)."""
        beside = Path(path).with_suffix(".geom") if path is not None else None
        source = self.geometry or (beside if beside is not None and beside.is_file() else None)
        key = str(source) if source is not None else "default"
        if source is None and self.default is None:
            return None
        if key not in self._views:
            layout = Geometry.from_crystfel(source) if source is not None else self.default
            self._views[key] = View(layout, self.pixels, self.bin)
        self.used[str(path) if path is not None else "stream"] = (
            key if source is not None else f"{self.default.name} (the model's)"
        )
        return self._views[key]


def open_frames(
    path: str | Path,
    dataset: str | None = None,
    *,
    view: View | Callable[[Path], View | None] | None = None,
    source: str | None = None,
    trains: slice = slice(None),
):
    """The frames of ``path``: a :class:`FrameFile` for a CXI/HDF5 file (``dataset``), a
    :class:`~spizoo.data.euxfel.RunFrames` for a European XFEL run directory (``source``, ``trains``)."""
    if is_run_directory(path):
        return RunFrames(path, source=source, view=view, trains=trains)
    return FrameFile(path, dataset, view=view)
