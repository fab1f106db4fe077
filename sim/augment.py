"""Detector-artefact augmentation (seed 001 appendix D; seed 000 §4.1 flips).

Each filter is a pure function ``(image, rng, **params) -> image`` on a 2D float image (for MSFT patterns,
the log-intensity image in [0, 1]); it never changes its input and keeps the image's shape and value
range ``[lo, hi]`` (the image's own minimum and maximum). Parameter ranges, with the seed's defaults:

===============  ==============================================================================
``identity``     unchanged
``uniform_noise`` every pixel moved by ``U(-1, 1) · level``, ``level ~ U(0, max_level · hi)``; max_level 0.5
``salt_pepper``  a fraction ``~ U(0, max_fraction)`` of pixels set to ``lo`` or ``hi``; max_fraction 0.05
``blur``         Gaussian blur, radius ``~ U(0, max_radius_px)`` (σ = radius / 2); max_radius_px 5
``jitter``       smooth random displacement field of amplitude ``~ U(0, max_px)``, scale ``smooth_px``; 2, 8
``crop``         keep a centred square of side ``~ U(min_fraction, 1)`` of the image (limited detector); 0.5
``hole``         central disc of radius ``~ U(min_px, max_px)`` set to ``lo`` (beam stop); 2, 12
``shift``        translate by up to ``max_px`` per axis, ``lo`` filling in (beam-pointing jitter); 8
``sensitivity``  ``1–max_regions`` random rectangles scaled by ``U(min_gain, max_gain)`` toward ``lo``; 3, 0.2, 0.8
``combination``  a random subset (at least one) of the filters above, in random order
``experimental`` blur → jitter → shift → sensitivity → hole → crop → uniform noise → salt and pepper
``flip``         horizontal and/or vertical flip, each with probability 1/2 (seed 000 §4.1)
===============  ==============================================================================

An :class:`AugmentPolicy` (YAML ``augment:``) says which filters, how many copies per pattern (the paper's
eleven-fold expansion by default: each of the eleven filters once), their parameters, and the scale they act
on. The filters' ranges are fractions of the image's range, which suits seed 001's log images; on the photon
counts of small-angle patterns (seed 000), ``scale: log10`` applies them to ``log10(1 + counts)`` and maps
the result back to counts, so "half the maximum signal" means half the decades a detector shows, not half
the brightest pixel's photons (which would bury everything beyond the central speckle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.ndimage


def _range(image: np.ndarray) -> tuple[float, float]:
    return float(image.min()), float(image.max())


def identity(image: np.ndarray, rng) -> np.ndarray:
    """Returns a copy of the image."""
    return np.array(image, copy=True)


def uniform_noise(image: np.ndarray, rng, *, max_level: float = 0.5) -> np.ndarray:
    """Uniform noise of random strength up to ``max_level`` times the maximum signal."""
    rng = np.random.default_rng(rng)
    lo, hi = _range(image)
    level = rng.uniform(0, max_level) * hi
    return np.clip(image + rng.uniform(-1, 1, image.shape) * level, lo, hi).astype(image.dtype)


def salt_pepper(image: np.ndarray, rng, *, max_fraction: float = 0.05) -> np.ndarray:
    """Random pixels set to the minimum or maximum signal."""
    rng = np.random.default_rng(rng)
    lo, hi = _range(image)
    out = np.array(image, copy=True)
    hit = rng.random(image.shape) < rng.uniform(0, max_fraction)
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, lo, hi)
    return out


def blur(image: np.ndarray, rng, *, max_radius_px: float = 5.0) -> np.ndarray:
    """Gaussian blur with a random radius up to ``max_radius_px`` (limited detector resolution)."""
    rng = np.random.default_rng(rng)
    sigma = rng.uniform(0, max_radius_px) / 2
    return scipy.ndimage.gaussian_filter(image, sigma, mode="nearest").astype(image.dtype)


def jitter(image: np.ndarray, rng, *, max_px: float = 2.0, smooth_px: float = 8.0) -> np.ndarray:
    """Jitter distortion: resampling along a smooth random displacement field."""
    rng = np.random.default_rng(rng)
    amplitude = rng.uniform(0, max_px)
    field = [scipy.ndimage.gaussian_filter(rng.standard_normal(image.shape), smooth_px) for _ in range(2)]
    field = [f / max(np.abs(f).max(), 1e-12) * amplitude for f in field]
    grid = np.indices(image.shape, dtype=float)
    coords = [grid[0] + field[0], grid[1] + field[1]]
    return scipy.ndimage.map_coordinates(image, coords, order=1, mode="nearest").astype(image.dtype)


def crop(image: np.ndarray, rng, *, min_fraction: float = 0.5) -> np.ndarray:
    """Keeps a centred square of random size; the rest reads the minimum (a smaller detector)."""
    rng = np.random.default_rng(rng)
    lo, _ = _range(image)
    frac = rng.uniform(min_fraction, 1.0)
    ny, nx = image.shape
    hy, hx = int(round(ny * frac / 2)), int(round(nx * frac / 2))
    out = np.full_like(image, lo)
    cy, cx = ny // 2, nx // 2
    out[cy - hy : cy + hy, cx - hx : cx + hx] = image[cy - hy : cy + hy, cx - hx : cx + hx]
    return out


def hole(image: np.ndarray, rng, *, min_px: float = 2.0, max_px: float = 12.0) -> np.ndarray:
    """A central disc of random radius set to the minimum (the beam stop's shadow)."""
    rng = np.random.default_rng(rng)
    lo, _ = _range(image)
    radius = rng.uniform(min_px, max_px)
    ny, nx = image.shape
    rows, cols = np.ogrid[:ny, :nx]
    out = np.array(image, copy=True)
    out[np.hypot(rows - (ny - 1) / 2, cols - (nx - 1) / 2) <= radius] = lo
    return out


def shift(image: np.ndarray, rng, *, max_px: int = 8) -> np.ndarray:
    """Translation by up to ``max_px`` pixels per axis (beam-pointing jitter); the minimum fills in."""
    rng = np.random.default_rng(rng)
    lo, _ = _range(image)
    dy, dx = (int(v) for v in rng.integers(-max_px, max_px + 1, size=2))
    out = np.full_like(image, lo)
    ny, nx = image.shape
    out[max(dy, 0) : ny + min(dy, 0), max(dx, 0) : nx + min(dx, 0)] = image[
        max(-dy, 0) : ny + min(-dy, 0), max(-dx, 0) : nx + min(-dx, 0)
    ]
    return out


def sensitivity(
    image: np.ndarray, rng, *, max_regions: int = 3, min_gain: float = 0.2, max_gain: float = 0.8
) -> np.ndarray:
    """Uneven detector sensitivity: random rectangles attenuated toward the minimum."""
    rng = np.random.default_rng(rng)
    lo, _ = _range(image)
    out = np.array(image, copy=True)
    ny, nx = image.shape
    for _ in range(int(rng.integers(1, max_regions + 1))):
        y0, y1 = np.sort(rng.integers(0, ny + 1, size=2))
        x0, x1 = np.sort(rng.integers(0, nx + 1, size=2))
        gain = rng.uniform(min_gain, max_gain)
        out[y0:y1, x0:x1] = lo + (out[y0:y1, x0:x1] - lo) * gain
    return out


def flip(image: np.ndarray, rng) -> np.ndarray:
    """Horizontal and/or vertical flip, each with probability 1/2 (seed 000 §4.1)."""
    rng = np.random.default_rng(rng)
    out = image
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1, :]
    return np.ascontiguousarray(out)


ARTEFACTS: dict[str, Callable] = {
    "uniform_noise": uniform_noise,
    "salt_pepper": salt_pepper,
    "blur": blur,
    "jitter": jitter,
    "crop": crop,
    "hole": hole,
    "shift": shift,
    "sensitivity": sensitivity,
}
EXPERIMENTAL_ORDER = ("blur", "jitter", "shift", "sensitivity", "hole", "crop", "uniform_noise", "salt_pepper")


def _params(params: dict | None, name: str) -> dict:
    return dict((params or {}).get(name, {}))


def combination(image: np.ndarray, rng, *, params: dict | None = None) -> np.ndarray:
    """A random non-empty subset of the artefact filters, in random order."""
    rng = np.random.default_rng(rng)
    names = list(ARTEFACTS)
    chosen = [names[i] for i in rng.permutation(len(names))[: int(rng.integers(1, len(names) + 1))]]
    out = image
    for name in chosen:
        out = ARTEFACTS[name](out, rng, **_params(params, name))
    return out


def experimental(image: np.ndarray, rng, *, params: dict | None = None) -> np.ndarray:
    """All artefact filters in the fixed order of a real measurement (seed 001 figure 2)."""
    rng = np.random.default_rng(rng)
    out = image
    for name in EXPERIMENTAL_ORDER:
        out = ARTEFACTS[name](out, rng, **_params(params, name))
    return out


FILTERS: dict[str, Callable] = {
    "identity": identity,
    **ARTEFACTS,
    "combination": combination,
    "experimental": experimental,
    "flip": flip,
}
"""Every filter by name: the eleven of seed 001 appendix D, then ``flip`` from seed 000."""

PAPER_FILTERS = tuple(name for name in FILTERS if name != "flip")


@dataclasses.dataclass(frozen=True)
class AugmentPolicy:
    """How patterns are expanded (YAML ``augment:``).

    Attributes:
        filters: filter names applied in turn, one per copy, cycling (default: the paper's eleven).
        copies: copies per pattern (default 11: each filter once, the paper's eleven-fold expansion).
        flip: also flip each copy at random (seed 000).
        params: per-filter keyword arguments, e.g. ``{blur: {max_radius_px: 3}}``; ``combination`` and
            ``experimental`` pass them on to the filters they apply.
        pick: ``cycle`` (copy ``i`` gets filter ``i mod len(filters)``) or ``random`` (each copy a filter
            drawn uniformly: augmentation without enlarging the dataset when ``copies: 1``).
        scale: ``linear`` (filters act on the stored values) or ``log10`` (on ``log10(1 + value)``, for
            photon counts; see the module docstring).
    """

    filters: tuple[str, ...] = PAPER_FILTERS
    copies: int = 11
    flip: bool = False
    params: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    pick: str = "cycle"
    scale: str = "linear"

    def __post_init__(self):
        unknown = [f for f in (*self.filters, *self.params) if f not in FILTERS]
        if unknown:
            raise ValueError(f"unknown augmentation filter {unknown[0]!r}; known: {', '.join(FILTERS)}")
        if not self.filters:
            raise ValueError("filters must name at least one filter")
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}")
        if self.pick not in ("cycle", "random"):
            raise ValueError(f"pick must be 'cycle' or 'random', got {self.pick!r}")
        if self.scale not in ("linear", "log10"):
            raise ValueError(f"scale must be 'linear' or 'log10', got {self.scale!r}")

    def apply(self, image: np.ndarray, rng) -> list[tuple[str, np.ndarray]]:
        """The ``copies`` augmented images of ``image`` with the filter name of each."""
        rng = np.random.default_rng(rng)
        log = self.scale == "log10"
        if log and image.min() < 0:
            raise ValueError(f"scale: log10 needs non-negative values (photon counts), got minimum {image.min()}")
        source = np.log10(1.0 + image.astype(np.float64)).astype(image.dtype) if log else image
        out = []
        for i in range(self.copies):
            if self.pick == "random":
                name = self.filters[int(rng.integers(len(self.filters)))]
            else:
                name = self.filters[i % len(self.filters)]
            if name in ("combination", "experimental"):
                img = FILTERS[name](source, rng, params=self.params)
            else:
                img = FILTERS[name](source, rng, **self.params.get(name, {}))
            if log:
                img = image.copy() if name == "identity" else np.maximum(np.power(10.0, img) - 1.0, 0.0)
            if self.flip:
                img = flip(img, rng)
            out.append((name, img.astype(image.dtype, copy=False)))
        return out
