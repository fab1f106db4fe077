"""Wide-angle patterns of silver icosahedra for orientation and size regression (seed 001 §2, appendix B).

Each pattern draws an orientation uniformly in the icosahedral fundamental domain and a circumradius
uniformly in its range, computes the MSFT far field with absorption on a wide-angle detector, and stores
the logarithmic intensity as a grayscale image with random background noise:

    image = clip(log10(I / I_max + noise) / d + 1, 0, 1),   noise ~ U(0, 2 ν) per pixel,

with ``d = -log10(log_floor)`` decades of dynamic range and a background level ``ν`` drawn log-uniformly per
pattern. ``I = P ΔΩ |E|²`` includes the flat detector's solid angle and polarisation factors.
Pattern ``index`` of ``(config, seed)`` draws from ``SeedSequence(seed, spawn_key=(index,))`` alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from spizoo.core import seeds
from spizoo.core.config import Range
from spizoo.sim import icosahedral
from spizoo.sim.constants import HC_EV_NM
from spizoo.sim.detector import Detector
from spizoo.sim.msft import CONVEX_SHAPES, msft_amplitude


@dataclasses.dataclass(frozen=True)
class WideDetectorConfig:
    """A flat detector whose edge (half-width along x) sees scattering angle ``max_angle_deg``."""

    pixels: tuple[int, int] = (128, 128)
    distance_m: float = 0.1
    max_angle_deg: float = 30.0
    polarization: str = "x"

    def __post_init__(self):
        if len(self.pixels) != 2 or min(self.pixels) < 8:
            raise ValueError(f"pixels must be two counts >= 8, got {list(self.pixels)}")
        if not 0 < self.max_angle_deg < 80:
            raise ValueError(f"max_angle_deg must be in (0, 80), got {self.max_angle_deg}")
        if not self.distance_m > 0:
            raise ValueError(f"distance_m must be > 0, got {self.distance_m}")
        if self.polarization not in ("x", "y", "unpolarized"):
            raise ValueError(f"polarization must be 'x', 'y' or 'unpolarized', got {self.polarization!r}")

    def detector(self) -> Detector:
        pixel_um = self.distance_m * np.tan(np.radians(self.max_angle_deg)) / (self.pixels[1] / 2) * 1e6
        return Detector(shape=tuple(self.pixels), pixel_size_um=float(pixel_um), distance_m=self.distance_m)


@dataclasses.dataclass(frozen=True)
class MsftConfig:
    """The wide-angle MSFT simulator (``sim:`` section with ``kind: msft``; defaults from seed 001).

    Attributes:
        shape: a convex shape (seed: icosahedron).
        circumradius_nm: drawn uniformly per pattern (seed: 30–160 nm).
        wavelength_nm: photon wavelength (seed: 13.5 nm XUV).
        absorption_length_nm: intensity absorption length (seed: 12.5 nm, bulk silver).
        columns: transverse samples across the particle (seed: a 192-voxel grid); depth is integrated exactly.
        nufft_eps: NUFFT tolerance.
        log_floor: smallest relative intensity kept in the log image (6 decades).
        background: relative background level ``ν``, drawn log-uniformly per pattern.
    """

    kind: str = "msft"
    shape: str = "icosahedron"
    circumradius_nm: Range = icosahedral.RADIUS_RANGE_NM
    wavelength_nm: float = 13.5
    absorption_length_nm: float = 12.5
    columns: int = 192
    nufft_eps: float = 1e-6
    log_floor: float = 1e-6
    background: Range = (1e-6, 1e-4)
    detector: WideDetectorConfig = dataclasses.field(default_factory=WideDetectorConfig)

    def __post_init__(self):
        if self.kind != "msft":
            raise ValueError(f"kind must be 'msft', got {self.kind!r}")
        if self.shape not in CONVEX_SHAPES:
            raise ValueError(
                f"shape must be one of {', '.join(CONVEX_SHAPES)} (MSFT needs a convex shape), got {self.shape!r}"
            )
        if not 0 < self.circumradius_nm[0] <= self.circumradius_nm[1]:
            raise ValueError(
                f"circumradius_nm must be [low, high] with 0 < low <= high, got {list(self.circumradius_nm)}"
            )
        for name in ("wavelength_nm", "absorption_length_nm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.columns < 8:
            raise ValueError(f"columns must be >= 8, got {self.columns}")
        if not 0 < self.log_floor < 1:
            raise ValueError(f"log_floor must be in (0, 1), got {self.log_floor}")
        if not 0 < self.background[0] <= self.background[1]:
            raise ValueError(f"background must be [low, high] with 0 < low <= high, got {list(self.background)}")

    @property
    def photon_energy_eV(self) -> float:
        return HC_EV_NM / self.wavelength_nm

    def sampling(self) -> dict[str, list[float]]:
        """As :meth:`spizoo.sim.spi.SpiConfig.sampling`: the angle a pixel at the centre subtends and the
        photon energy, each a range of one value."""
        detector = self.detector.detector()
        angle = detector.pixel_size_um * 1e-6 / detector.distance_m
        return {"pixel_angle_rad": [angle, angle], "photon_energy_eV": [self.photon_energy_eV] * 2}


@dataclasses.dataclass(frozen=True)
class MsftPattern:
    """One wide-angle pattern and its regression labels.

    Attributes:
        image: log-intensity image in [0, 1], float32 (rows, columns).
        quaternion: orientation in the icosahedral fundamental domain (w, x, y, z).
        radius_nm: circumradius.
        background: the pattern's relative background level ``ν``.
        index: pattern index within ``(config, seed)``.
        detector: the detector geometry.
    """

    image: np.ndarray
    quaternion: np.ndarray
    radius_nm: float
    background: float
    index: int
    detector: Detector

    def parameters(self) -> dict[str, np.ndarray]:
        """The labels and simulation parameters as arrays, for files and datasets."""
        return {
            "quaternion": self.quaternion.astype(np.float32),
            "radius_nm": np.float32(self.radius_nm),
            "background": np.float32(self.background),
            "index": np.int64(self.index),
        }

    def target(self, radius_range_nm: Range = icosahedral.RADIUS_RANGE_NM) -> np.ndarray:
        """The scaled regression target (q0, q1, q2, q3, radius) in [-1, 1] (seed 001 appendix C)."""
        return icosahedral.encode_target(self.quaternion, self.radius_nm, radius_range_nm)


def log_scale(relative: np.ndarray, *, log_floor: float) -> np.ndarray:
    """``clip(log10(relative) / d + 1, 0, 1)`` with ``d = -log10(log_floor)``: the images' grey scale."""
    with np.errstate(divide="ignore"):
        return np.clip(np.log10(relative) / -np.log10(log_floor) + 1.0, 0.0, 1.0)


def log_image(intensity: np.ndarray, *, log_floor: float, background: float, rng) -> np.ndarray:
    """The stored image: :func:`log_scale` of ``I/I_max + noise`` with ``noise ~ U(0, 2ν)``, float32."""
    rng = np.random.default_rng(rng)
    rel = intensity / intensity.max() + rng.uniform(0.0, 2 * background, intensity.shape)
    return log_scale(rel, log_floor=log_floor).astype(np.float32)


def render(cfg: MsftConfig, quaternion_wxyz: np.ndarray, radius_nm: float) -> np.ndarray:
    """Noise-free relative intensity ``P ΔΩ |E|²`` (float64, detector shape) of one orientation and size."""
    det = cfg.detector.detector()
    e = msft_amplitude(
        cfg.shape,
        circumradius_nm=radius_nm,
        quaternion_wxyz=quaternion_wxyz,
        q_inv_nm=det.q_inv_nm(cfg.wavelength_nm),
        absorption_length_nm=cfg.absorption_length_nm,
        columns=cfg.columns,
        eps=cfg.nufft_eps,
    )
    return np.abs(e) ** 2 * det.solid_angle_sr() * det.polarization(cfg.detector.polarization)


def simulate_pattern(cfg: MsftConfig, seed: int, index: int) -> MsftPattern:
    """Pattern ``index`` of ``(cfg, seed)``."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = seeds.rng(seed, index)
    quat = icosahedral.sample_fundamental(rng)
    lo, hi = cfg.circumradius_nm
    radius = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    b_lo, b_hi = cfg.background
    background = float(np.exp(rng.uniform(np.log(b_lo), np.log(b_hi)))) if b_hi > b_lo else float(b_lo)
    image = log_image(render(cfg, quat, radius), log_floor=cfg.log_floor, background=background, rng=rng)
    return MsftPattern(image, quat, radius, background, index, cfg.detector.detector())


def simulate(cfg: MsftConfig, seed: int, n: int, *, start: int = 0) -> Iterator[MsftPattern]:
    """Patterns ``start … start + n - 1`` in order."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    for index in range(start, start + n):
        yield simulate_pattern(cfg, seed, index)
