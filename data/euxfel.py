"""European XFEL runs (EXtra-data): a multi-module detector's frames, streamed a few trains at a time.

A run directory (``RAW-R0042-AGIPD00-S00000.h5``, ``CORR-…``, or ``extra_data.open_run``'s proposal/run)
holds per-module files of pulse-resolved frames. :class:`RunFrames` finds the detector (``source``: its
name such as ``SPB_DET_AGIPD1M-1``, a glob of its module sources such as ``SPB_DET_AGIPD1M-1/DET/*CH0:xtdf``,
or nothing when the run has exactly one), reads module-stacked frames ``(n, modules, ss, fs)`` with
EXtra-data's detector components for the trains a batch needs (memory stays one batch, whatever the run's
length), and passes them through the model's :class:`~spizoo.sim.geometry.View`. Each frame keeps its
``trainId``, ``pulseId`` and ``cellId`` (memory cell). Pixels flagged in the calibrated data's
``image.mask`` (EuXFEL's bad-pixel bits, any of them) read as CXI ``BAD`` (0x0080) and count 0, as do
frames of a module missing from a train (read as NaN).

Calibrated (``CORR``/proc) data are required: raw data are ADU with gain bits, not photons.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from spizoo.core import masks
from spizoo.data.frame_check import FrameGeometry
from spizoo.sim.geometry import View

# EXtra-data's component of each detector in spizoo.sim.geometry.DETECTORS that EuXFEL runs hold.
COMPONENTS = {"AGIPD1M": "AGIPD-1M", "AGIPD500K": "AGIPD-500k", "DSSC1M": "DSSC-1M", "LPD1M": "LPD-1M"}


def parse_trains(text: str) -> slice:
    """``START:STOP`` train indices (either may be empty) as a slice.

    Raises:
        ValueError: naming the text.
    """
    parts = str(text).split(":")
    if len(parts) != 2 or not all(not p.strip() or p.strip().lstrip("-").isdigit() for p in parts):
        raise ValueError(f"expected START:STOP train indices such as 0:100, got {text!r}")
    return slice(*(int(p) if p.strip() else None for p in parts))


def format_trains(trains: slice) -> str:
    """The ``START:STOP`` text of a slice of trains (:func:`parse_trains` reads it back)."""
    return f"{'' if trains.start is None else trains.start}:{'' if trains.stop is None else trains.stop}"


def is_run_directory(path: str | Path) -> bool:
    """Whether ``path`` is a directory of EuXFEL run files (``RAW-R…`` or ``CORR-R…`` HDF5 files)."""
    path = Path(path)
    return path.is_dir() and any(path.glob("[RC][AO][WR]*-R[0-9]*-*.h5"))


def _open(path: Path):
    # EXtra-data and EXtra-geom import xarray lazily and test for it with sys.modules.get("xarray"): a thread that
    # tests while another imports it gets a half-made module ("partially initialized module 'xarray' has no
    # attribute 'DataArray'"; seen when classify's reader thread and a geometry view met). Imported whole here.
    import extra_data  # pandas: only for runs
    import xarray  # noqa: F401

    try:
        return extra_data.RunDirectory(str(path))
    except Exception as err:  # EXtra-data raises many kinds for a directory that is not a run
        raise ValueError(f"{path}: not a readable European XFEL run directory ({type(err).__name__}: {err})") from None


def _detector(run, path: Path, source: str | None):
    """(detector name, EXtra-data component class) of ``source`` in ``run``."""
    from extra_data import components

    found = {name: cls for name, cls in components.identify_multimod_detectors(run)}
    if source:
        name = source.split("/")[0]
        if any(c in source for c in "*?[") or "/" in source:
            matched = sorted(s for s in run.instrument_sources if fnmatch.fnmatchcase(s, source))
            if not matched:
                raise ValueError(
                    f"{path}: no source matches {source!r}; its detector sources are: "
                    + ", ".join(sorted(s for s in run.instrument_sources if "/DET/" in s)[:8])
                )
            name = matched[0].split("/")[0]
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise ValueError(f"{path}: no multi-module detector {name!r} in this run; it has: {known}")
        return name, found[name]
    if len(found) != 1:
        names = ", ".join(sorted(found)) or "none"
        raise ValueError(f"{path}: name the detector with --source (multi-module detectors in this run: {names})")
    return next(iter(found.items()))


class RunFrames:
    """The frames of one detector in a EuXFEL run, with :class:`~spizoo.data.frames.FrameFile`'s reading
    interface (``len``, ``read``, ``batches``, ``frame_shape``, ``close``) plus :meth:`frame_ids`.

    Args:
        path: the run directory.
        source: the detector (see the module docstring).
        view: the :class:`View` of its frames, or a function of the path that returns it.
        trains: a slice of the run's trains by index (default: all).

    Raises:
        ValueError: not a run, no such detector (naming what the run has), raw data, missing modules, a
            geometry of another module count or module shape (naming both).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: str | None = None,
        view: View | Callable[[Path], View | None] | None = None,
        trains: slice = slice(None),
    ):
        from extra_data import by_index

        self.path = Path(path)
        run = _open(self.path)
        name, cls = _detector(run, self.path, source)
        try:
            det = cls(run, detector_name=name, raw=False)
        except Exception as err:  # EXtra-data: no calibrated sources, modules it cannot line up, and the like
            try:
                cls(run, detector_name=name, raw=True)
            except Exception:
                raise ValueError(f"{self.path}: cannot read detector {name} ({type(err).__name__}: {err})") from None
            raise ValueError(
                f"{self.path}: {name} holds raw data only (ADU and gain bits); classify calibrated (CORR/proc) data"
            ) from None
        present = sorted(det.source_to_modno.values())
        if len(present) != cls.n_modules:
            missing = sorted(set(range(cls.n_modules)) - set(present))
            raise ValueError(
                f"{self.path}: detector {name} has {len(present)} of its {cls.n_modules} modules; missing "
                f"modules {missing}"
            )
        self.detector, self.name = det.select_trains(by_index[trains]), name
        self.stored = (cls.n_modules, *det.module_shape)
        view = view(self.path) if callable(view) and not isinstance(view, View) else view
        if view is None:
            raise ValueError(f"{self.path}: give the detector geometry of {name} (--geometry FILE.geom)")
        if view.geometry.shape != self.stored:
            raise ValueError(
                f"{self.path}: {name} has {self.stored[0]} modules of {self.stored[1]}x{self.stored[2]} pixels; "
                f"the {view.geometry.name} geometry has {view.geometry.shape[0]} of "
                f"{view.geometry.shape[1]}x{view.geometry.shape[2]}"
            )
        self.view = view
        counts = np.asarray(self.detector.frame_counts, dtype=np.int64)
        self._train_ids = np.asarray(self.detector.frame_counts.index, dtype=np.uint64)
        self._first = np.concatenate([[0], np.cumsum(counts)])  # first frame of each train
        self.count = int(self._first[-1])
        self._has_mask = "image.mask" in run[next(iter(det.source_to_modno))].keys()

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.view.pixels)

    def __len__(self) -> int:
        return self.count

    def _trains(self, start: int, stop: int):
        """The selection of trains holding frames ``start … stop-1``, and the index of ``start`` in it."""
        from extra_data import by_index

        t0 = int(np.searchsorted(self._first, start, side="right") - 1)
        t1 = int(np.searchsorted(self._first, stop, side="left"))
        return self.detector.select_trains(by_index[t0:t1]), start - int(self._first[t0])

    def read(self, start: int, stop: int, *, stored: bool = False) -> np.ndarray:
        """Frames ``start … stop-1`` of the run as the model's images, float32 (n, h, w); ``stored``: as the
        detector stored them (n, modules, ss, fs)."""
        if not 0 <= start <= stop <= self.count:
            raise IndexError(f"{self.path}: frames {start}…{stop - 1} out of range; the run holds {self.count}")
        if start == stop:
            return np.zeros((0, *self.frame_shape), np.float32)
        chunk, offset = self._trains(start, stop)
        n = stop - start
        try:  # KeyData.ndarray: (modules, frames, ss, fs), modules aligned by frame (6x faster than get_array)
            data = chunk["image.data"].ndarray(fill_value=np.nan, astype=np.float32)
            frames = np.moveaxis(data, 0, 1)[offset : offset + n]
            unusable = ~np.isfinite(frames)
            if self._has_mask:
                flags = chunk["image.mask"].ndarray(fill_value=0)
                unusable |= np.moveaxis(flags, 0, 1)[offset : offset + n] != 0
        except (OSError, KeyError) as err:
            raise ValueError(f"{self.path}: cannot read frames {start}…{stop - 1} of {self.name} ({err})") from None
        frames = np.where(unusable, np.float32(0), frames)  # one copy, frames first
        return frames if stored else self.view(frames)

    def mask(self, start: int, stop: int) -> np.ndarray:
        """The CXI mask of frames ``start … stop-1`` (n, modules, ss, fs): ``BAD`` where EuXFEL flags a pixel,
        ``INVALID`` where a module did not record the frame."""
        chunk, offset = self._trains(start, stop)
        n = stop - start
        out = np.zeros((n, *self.stored), np.uint32)
        if self._has_mask:
            flags = chunk["image.mask"].ndarray(fill_value=0)
            out[np.moveaxis(flags, 0, 1)[offset : offset + n] != 0] |= masks.BAD
        data = chunk["image.data"].ndarray(fill_value=np.nan, astype=np.float32)
        out[~np.isfinite(np.moveaxis(data, 0, 1)[offset : offset + n])] |= masks.INVALID
        return out

    def frame_ids(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """``train_id``, ``pulse_id`` and ``cell_id`` of frames ``start … stop-1``."""
        chunk, offset = self._trains(start, stop)
        n = stop - start
        array = chunk.get_array("image.cellId", unstack_pulses=False, fill_value=0)
        cells = np.asarray(array.values).reshape(array.shape[0], array.shape[1], -1)[..., 0].max(axis=0)
        index = array.coords["train_pulse"].values
        train = np.array([t for t, _ in index], dtype=np.int64)
        pulse = np.array([p for _, p in index], dtype=np.int64)
        return {
            "train_id": train[offset : offset + n],
            "pulse_id": pulse[offset : offset + n],
            "cell_id": cells[offset : offset + n].astype(np.int64),
        }

    def geometry(self, index: int = 0) -> FrameGeometry:
        """The pixel size and distance of the images of its view (a run does not record the photon energy)."""
        return FrameGeometry.of_view(self.view)

    def first_frame_after(self, train_id: int) -> int:
        """The index of the first frame of the trains after ``train_id`` (``len(self)`` if there are none)."""
        t = int(np.searchsorted(self._train_ids.astype(np.int64), train_id, side="right"))
        return int(self._first[t])

    @property
    def newest_train_start(self) -> int:
        """The index of the first frame of the run's newest train (``len(self)`` for a run of no frames)."""
        return int(self._first[-2]) if len(self._first) > 1 else self.count

    def batches(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first frame index, frames) of consecutive batches from ``start`` to ``stop`` (a train's first frame;
        default: the end): whole trains, as many as fit in ``size`` frames (at least one), so that no train is
        read twice."""
        if size < 1:
            raise ValueError(f"batch size must be >= 1, got {size}")
        limit = self.count if stop is None else stop
        first = start
        while first < limit:
            t = int(np.searchsorted(self._first, first, side="right") - 1)
            end = self._first[t + 1]
            while t + 2 < len(self._first) and self._first[t + 2] <= limit and self._first[t + 2] - first <= size:
                t += 1
                end = self._first[t + 1]
            yield first, self.read(first, int(end))
            first = int(end)

    def close(self) -> None:
        """Nothing to close: EXtra-data opens its files per read."""

    def __enter__(self) -> RunFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
