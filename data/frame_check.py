"""What a model was trained on, and whether the frames it is given look like it (a guard rail: a model of
photon counts on 64×64 pixels of 0.5 mrad says nothing useful about log-scaled images or pixels 8× smaller).

A dataset's ``dataset_info.json`` records what its frames were: the image shape, the range and kind of their
values (``stats.values``: minimum, maximum, whether all were integers) and their sampling (``sampling``: the
angle one image pixel subtends and the photon energy, as ranges). :class:`TrainedOn` reads it back from a run,
an export or a server; :class:`FrameChecker` compares the first frames of every file or stream with it and
warns, or with ``strict`` refuses, naming the file, what it found and what the model was trained on. Every
inference path (``classify``, ``monitor``, ``predict``, ``fit-summary``) goes through it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

ANGLE_TOLERANCE = 0.05
"""Relative slack on the pixel-angle and photon-energy ranges (rounding of what files record)."""
VALUE_FACTOR = 10.0
"""Frames whose largest value is this many times the largest the model saw are in another unit."""


class FrameMismatchError(ValueError):
    """Frames unlike the model's training frames, with ``strict`` (the message names file and problem)."""


@dataclasses.dataclass(frozen=True)
class FrameGeometry:
    """Detector distance, pixel size (of an image pixel) and photon energy of a frame in SI units (``None``
    where the file does not say)."""

    distance_m: float | None
    pixel_size_m: float | None
    photon_energy_eV: float | None

    @classmethod
    def of_view(cls, view, distance_m: float | None = None) -> FrameGeometry:
        """The geometry of the images a :class:`~spizoo.sim.geometry.View` makes: its cells (``bin`` pixels)
        at ``distance_m``, else at the detector geometry's distance."""
        return cls(
            distance_m=distance_m if distance_m is not None else view.geometry.distance_m,
            pixel_size_m=view.geometry.pixel_size_m * view.bin,
            photon_energy_eV=None,
        )

    @property
    def pixel_angle_rad(self) -> float | None:
        if self.pixel_size_m is None or not self.distance_m:
            return None
        return self.pixel_size_m / self.distance_m


def value_range(images: list[np.ndarray]) -> list | None:
    """``[min, max, all integer]`` of the values of ``images`` (NaN left out; ``None`` for none): a part of what
    a model was trained on (``dataset_info.json``'s ``stats.values``), checked against the frames it is given."""
    if not images:
        return None
    stack = np.stack(images)
    finite = stack[np.isfinite(stack)]
    if not finite.size:
        return None
    return [float(finite.min()), float(finite.max()), bool(np.all(finite == np.round(finite)))]


def merged_range(ranges) -> list | None:
    """:func:`value_range` of the union of the ``ranges`` (``None`` ones, of chunks that had no images or were
    written by an earlier spizoo, are left out)."""
    ranges = [r for r in ranges if r]
    if not ranges:
        return None
    return [min(r[0] for r in ranges), max(r[1] for r in ranges), all(r[2] for r in ranges)]


def _pair(value) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


@dataclasses.dataclass(frozen=True)
class TrainedOn:
    """The frames a model was trained on (from its ``dataset_info.json``; ``None`` where it does not say).

    Attributes:
        image_shape: (rows, columns) of the training frames.
        kind: the dataset's kind (``spi``, ``msft``: simulated; ``cxi``: ingested experiment frames).
        values: (minimum, maximum, all integers) of the training frames' values.
        pixel_angle_rad, photon_energy_eV: the ranges of the pixel angle and photon energy.
    """

    image_shape: tuple[int, int]
    kind: str
    values: tuple[float, float, bool] | None = None
    pixel_angle_rad: tuple[float, float] | None = None
    photon_energy_eV: tuple[float, float] | None = None

    @classmethod
    def from_info(cls, info: dict) -> TrainedOn:
        values = (info.get("stats") or {}).get("values")
        sampling = info.get("sampling") or {}
        return cls(
            image_shape=tuple(int(n) for n in info["image_shape"]),
            kind=str(info.get("kind", "")),
            values=(float(values[0]), float(values[1]), bool(values[2])) if values else None,
            pixel_angle_rad=_pair(sampling.get("pixel_angle_rad")),
            photon_energy_eV=_pair(sampling.get("photon_energy_eV")),
        )

    def as_dict(self) -> dict:
        """The JSON form (a server's metadata, a summary); :meth:`from_info` reads it back."""
        out: dict = {"image_shape": list(self.image_shape), "kind": self.kind}
        if self.values is not None:
            out["stats"] = {"values": list(self.values)}
        sampling = {k: list(v) for k in ("pixel_angle_rad", "photon_energy_eV") if (v := getattr(self, k))}
        if sampling:
            out["sampling"] = sampling
        return out

    @property
    def scale(self) -> str:
        """The training frames' values in words."""
        if self.values is None:
            return "values of unknown range"
        low, high, integer = self.values
        if integer and low >= 0:
            return f"photon counts (integers, 0 to {high:,.0f})"
        return f"values from {low:.3g} to {high:.3g}"

    def problems(self, frames: np.ndarray, geometry: FrameGeometry | None = None) -> list[str]:
        """What about ``frames`` (n, H, W), of a detector with ``geometry``, is outside what the model was
        trained on, in words (empty: nothing found). Shape differences alone are not a problem where the
        pixel geometry is known and matches: the model's centre crop then sees the same q range."""
        out = []
        known = geometry is not None and geometry.pixel_angle_rad is not None
        out += self._sampling_problems(geometry) if known else []
        shape = tuple(frames.shape[-2:])
        if not known and shape != self.image_shape and self.pixel_angle_rad is not None:
            out.append(
                f"frames of {shape[0]}x{shape[1]} pixels of unknown size and distance (the model was trained on "
                f"{self.image_shape[0]}x{self.image_shape[1]} pixels of {_angles(self.pixel_angle_rad)}): the "
                "same patterns only for the same pixel angle"
            )
        out += self._value_problems(frames)
        return out

    def _sampling_problems(self, geometry: FrameGeometry) -> list[str]:
        out = []
        angle, trained = geometry.pixel_angle_rad, self.pixel_angle_rad
        if trained is not None and not _within(angle, trained):
            ratio = angle / (trained[0] if angle < trained[0] else trained[1])
            out.append(
                f"pixels of {geometry.pixel_size_m * 1e6:,.4g} µm at {geometry.distance_m:.4g} m subtend "
                f"{angle * 1e3:.3g} mrad, the model was trained on {_angles(trained)}: patterns look "
                f"{max(ratio, 1 / ratio):.2g}x {'smaller' if ratio > 1 else 'larger'} than any it saw"
            )
        energy, trained = geometry.photon_energy_eV, self.photon_energy_eV
        if energy is not None and trained is not None and not _within(energy, trained):
            out.append(
                f"photon energy {energy:,.0f} eV, the model was trained on {trained[0]:,.0f}–{trained[1]:,.0f} eV"
            )
        return out

    def _value_problems(self, frames: np.ndarray) -> list[str]:
        if self.values is None or not frames.size:
            return []
        finite = frames[np.isfinite(frames)]
        if not finite.size:
            return []
        low, high, integer = self.values
        top = float(finite.max())
        if high <= 1 and top > 1 + 1e-3:
            return [f"values up to {top:.4g}, the model was trained on images scaled to [{low:.3g}, {high:.3g}]"]
        if integer and low >= 0 and top <= 1 and np.any(finite != np.round(finite)):
            return [
                f"values between {float(finite.min()):.3g} and {top:.3g} with fractions (a normalised or "
                f"log-scaled image?), the model was trained on {self.scale}"
            ]
        if high > 0 and top > VALUE_FACTOR * high:
            return [
                f"values up to {top:,.4g}, {top / high:,.0f}x the largest the model saw ({self.scale}): "
                "frames in another unit (ADU, keV)?"
            ]
        return []


def _within(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] * (1 - ANGLE_TOLERANCE) <= value <= bounds[1] * (1 + ANGLE_TOLERANCE)


def _angles(bounds: tuple[float, float]) -> str:
    low, high = (b * 1e3 for b in bounds)
    return f"{low:.3g} mrad" if np.isclose(low, high) else f"{low:.3g}–{high:.3g} mrad"


class FrameChecker:
    """Checks the first frames of every source (a file, a run, a stream) once against what the model was
    trained on (:meth:`TrainedOn.problems`).

    Args:
        trained_on: the model's :class:`TrainedOn`, or ``None`` (a server that does not say): nothing to check;
            or a function giving it, asked at each check until it gives one (a server not up yet).
        strict: raise :class:`FrameMismatchError` instead of warning.
        warn: called with each warning line (e.g. printing it to standard error).

    Attributes:
        warnings: every warning given, in order.
    """

    def __init__(
        self,
        trained_on: TrainedOn | Callable[[], TrainedOn | None] | None,
        *,
        strict: bool = False,
        warn: Callable[[str], None] = print,
    ):
        self._trained_on, self.strict, self.warn = trained_on, strict, warn
        self.warnings: list[str] = []
        self._seen: set[str] = set()
        self._refused: dict[str, str] = {}  # with strict: a source refused once is refused again

    @property
    def trained_on(self) -> TrainedOn | None:
        if callable(self._trained_on):
            found = self._trained_on()
            if found is not None:
                self._trained_on = found
            return found
        return self._trained_on

    def check(
        self,
        name: str,
        frames: np.ndarray,
        geometry: FrameGeometry | Callable[[], FrameGeometry | None] | None = None,
    ) -> None:
        """Checks ``frames`` of source ``name`` unless it was checked before; ``geometry``: its pixels'
        (or a function giving it, called only for the first check).

        Raises:
            FrameMismatchError: with ``strict``, for frames unlike the training frames.
        """
        if name in self._refused:
            raise FrameMismatchError(self._refused[name])
        if self.trained_on is None or name in self._seen or not len(frames):
            return
        self._seen.add(name)
        geometry = geometry() if callable(geometry) else geometry
        problems = self.trained_on.problems(np.asarray(frames), geometry)
        if not problems:
            return
        message = f"{name}: {'; '.join(problems)}"
        if self.strict:
            self._refused[name] = f"{message} (--strict)"
            raise FrameMismatchError(self._refused[name])
        line = f"{message}; results may mean little (--strict makes this an error)"
        self.warnings.append(line)
        self.warn(line)

    def verdict(self) -> str:
        """The check's outcome in a few words, for a summary."""
        if self.trained_on is None:
            return "not checked: the model does not say what it was trained on"
        if self.warnings:
            return f"{len(self.warnings)} of {len(self._seen)} sources unlike the training frames (see the warnings)"
        return f"{len(self._seen)} sources like the training frames ({self.trained_on.scale})"
