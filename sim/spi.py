"""Small-angle single-particle-imaging patterns: particle models, clusters, detector, photons (seed 000 §3).

Every ``patterns_per_model`` consecutive patterns share one *particle model* — a shape, size, geometric
transforms, beam and detector drawn once (seed 000 §3: "every 100 diffraction patterns comes from an
independently initialized model"). Each pattern then draws its class (0 = no particle, 1, 2, 3, 4 = four
or more), independent uniform orientations for each particle of a touching cluster, and the shot's
fluence, and records Poisson photon counts:

    N = Φ · r_e² · P · ΔΩ · n_e² · |Σ_j e^{-i q·t_j} F_S(R_jᵀ q)|²        (docs/PHYSICS.md)

The single-particle amplitude ``F_S`` is one NUFFT per model, shared by every pattern and cluster member.

Reproducibility: pattern ``index`` of ``(config, seed)`` is a pure function of them. Model parameters come
from the stream ``SeedSequence(seed, spawn_key=(model,))`` and each shot from ``(model, shot + 1)``, so
patterns can be made in any order, alone or in batches, in any process, with the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from spizoo.core import seeds
from spizoo.core.config import Range
from spizoo.core.labels import NUM_CLASSES
from spizoo.sim import quaternion, shapes
from spizoo.sim.amplitude import DEFAULT_EPS, Amplitude, box_form_factor
from spizoo.sim.constants import wavelength_nm
from spizoo.sim.detector import Detector
from spizoo.sim.geometry import Geometry, GeometryConfig, View
from spizoo.sim.photons import detect, expected_photons


def _check_range(name: str, value: Range, *, low: float | None = None, positive: bool = False) -> None:
    lo, hi = value
    if positive and not lo > 0:
        raise ValueError(f"{name} must be > 0, got {list(value)}")
    if low is not None and not lo >= low:
        raise ValueError(f"{name} must be >= {low}, got {list(value)}")
    if not hi >= lo:
        raise ValueError(f"{name} must be [low, high] with low <= high, got {list(value)}")


@dataclasses.dataclass(frozen=True)
class ParticleConfig:
    """Particle models. Ranges are drawn uniformly per model.

    Attributes:
        shapes: shape name -> relative weight (names from ``spizoo.sim.shapes.SHAPES``).
        circumradius_nm: circumscribed-sphere radius.
        grid: voxels per axis of the density grid (seed: 128).
        radius_voxels: circumradius in voxels; sets ``voxel_nm = circumradius_nm / radius_voxels``.
        twist_deg: twist about the particle's z axis at z = circumradius (seed: "twist").
        strain: size of the random symmetric strain ``A = I + s E`` (``|E|₂ = 1``; seed: "affine").
        edge_blur_voxels: Gaussian edge blur (seed: "Gaussian filters to blur the edges").
        electron_density_e_per_nm3: electron density (protein ≈ 430, water 334, silver ≈ 2750).
        torus_tube_ratio: tube radius over ring radius for tori.
    """

    shapes: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"octahedron": 1.0, "dodecahedron": 1.0, "icosahedron": 1.0, "soccer": 1.0}
    )
    circumradius_nm: Range = (30.0, 70.0)
    grid: int = 128
    radius_voxels: float = 40.0
    twist_deg: Range = (0.0, 20.0)
    strain: Range = (0.0, 0.1)
    edge_blur_voxels: Range = (0.0, 1.0)
    electron_density_e_per_nm3: Range = (430.0, 430.0)
    torus_tube_ratio: float = 0.4

    def __post_init__(self):
        if not self.shapes or any(w < 0 for w in self.shapes.values()) or sum(self.shapes.values()) <= 0:
            raise ValueError(
                f"shapes must map shape names to non-negative weights with a positive sum, got {self.shapes}"
            )
        for name in self.shapes:
            shapes.check_shape(name)
        _check_range("circumradius_nm", self.circumradius_nm, positive=True)
        _check_range("twist_deg", self.twist_deg)
        _check_range("strain", self.strain, low=0.0)
        _check_range("edge_blur_voxels", self.edge_blur_voxels, low=0.0)
        _check_range("electron_density_e_per_nm3", self.electron_density_e_per_nm3, positive=True)
        if self.strain[1] >= 0.5:
            raise ValueError(f"strain must stay below 0.5, got {list(self.strain)}")
        if not self.radius_voxels >= 4:
            raise ValueError(f"radius_voxels must be >= 4, got {self.radius_voxels}")
        extent = 2 * int(np.ceil((1 + self.strain[1]) * self.radius_voxels + 4 * self.edge_blur_voxels[1] + 2)) + 1
        if extent > self.grid:
            raise ValueError(
                f"grid={self.grid} is too small: particles span up to {extent} voxels; "
                "raise grid or lower radius_voxels"
            )


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """Hit classes. ``class_weights`` are the relative frequencies of 0, 1, 2, 3 and 4+ particles (seed 000
    §5.1: 1/12 no hit, 1/2 single, 1/6 double, 1/6 triple, 1/12 four or more); class 4 draws 4 to
    ``max_particles`` particles uniformly."""

    class_weights: tuple[float, ...] = (1 / 12, 1 / 2, 1 / 6, 1 / 6, 1 / 12)
    max_particles: int = 6

    def __post_init__(self):
        w = self.class_weights
        if len(w) != NUM_CLASSES or any(x < 0 for x in w) or sum(w) <= 0:
            raise ValueError(
                f"class_weights must be {NUM_CLASSES} non-negative numbers with a positive sum, got {list(w)}"
            )
        if self.max_particles < 4:
            raise ValueError(f"max_particles must be >= 4, got {self.max_particles}")


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    """X-ray pulses. ``fluence_photons_per_um2`` is drawn log-uniformly per model; each shot multiplies it by
    a log-normal factor of mean 1 and log-std ``fluence_jitter`` (seed: "fluctuation of X-ray intensity")."""

    photon_energy_eV: Range = (1200.0, 1800.0)
    fluence_photons_per_um2: Range = (1e11, 1e12)
    fluence_jitter: float = 0.3
    polarization: str = "x"

    def __post_init__(self):
        _check_range("photon_energy_eV", self.photon_energy_eV, positive=True)
        _check_range("fluence_photons_per_um2", self.fluence_photons_per_um2, positive=True)
        if not self.fluence_jitter >= 0:
            raise ValueError(f"fluence_jitter must be >= 0, got {self.fluence_jitter}")
        if self.polarization not in ("x", "y", "unpolarized"):
            raise ValueError(f"polarization must be 'x', 'y' or 'unpolarized', got {self.polarization!r}")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Detector configurations, drawn per model (seed: "a large range of detector parameters").

    Attributes:
        pixels: (rows, columns).
        pixel_size_um, distance_m: pixel edge and detector distance.
        center_jitter_px: beam-centre offset from the middle, uniform in ± this per axis.
        beam_stop_radius_px, panel_gap_px: beam stop radius and horizontal panel gap (rounded to pixels).
        bad_pixel_fraction: fraction of dead pixels.
        background_photons: mean Poisson background per pixel.
        readout_noise_photons: Gaussian readout noise (std, photons); > 0 makes counts non-integer.
        ewald: ``curved`` (exact) or ``flat`` (small-angle approximation).
        geometry: a real detector (:class:`~spizoo.sim.geometry.GeometryConfig`: a CrystFEL ``.geom`` file or
            an EXtra-geom detector). Patterns are then module-stacked frames of that detector, its pixels set
            the pixel size (``pixel_size_um`` and ``panel_gap_px`` stay unset), the beam-centre jitter and the
            beam stop are in its pixels, and ``pixels`` is the model's view: ``bin × bin`` detector pixels per
            cell around the beam (:class:`~spizoo.sim.geometry.View`).
        bin: detector pixels per view cell along each axis (with ``geometry`` only).
    """

    pixels: tuple[int, int] = (128, 128)
    pixel_size_um: Range = (300.0, 500.0)
    distance_m: Range = (0.35, 0.6)
    center_jitter_px: Range = (0.0, 1.5)
    beam_stop_radius_px: Range = (0.0, 3.0)
    panel_gap_px: Range = (0.0, 3.0)
    bad_pixel_fraction: Range = (0.0, 0.001)
    background_photons: Range = (0.0, 0.02)
    readout_noise_photons: Range = (0.0, 0.0)
    ewald: str = "curved"
    geometry: GeometryConfig | None = None
    bin: int = 1

    def __post_init__(self):
        if self.geometry is None and self.bin != 1:
            raise ValueError(f"bin={self.bin} needs a geometry (the flat detector's pixels are the view)")
        if self.bin < 1:
            raise ValueError(f"bin must be >= 1, got {self.bin}")
        if self.geometry is not None:
            defaults = DetectorConfig()
            for name in ("pixel_size_um", "panel_gap_px"):
                if getattr(self, name) != getattr(defaults, name):
                    value = list(getattr(self, name))
                    raise ValueError(f"{name} comes from the detector geometry; remove it (got {value})")
        if len(self.pixels) != 2 or min(self.pixels) < 8:
            raise ValueError(f"pixels must be two counts >= 8, got {list(self.pixels)}")
        _check_range("pixel_size_um", self.pixel_size_um, positive=True)
        _check_range("distance_m", self.distance_m, positive=True)
        for name in (
            "center_jitter_px",
            "beam_stop_radius_px",
            "panel_gap_px",
            "background_photons",
            "readout_noise_photons",
        ):
            _check_range(name, getattr(self, name), low=0.0)
        _check_range("bad_pixel_fraction", self.bad_pixel_fraction, low=0.0)
        if self.bad_pixel_fraction[1] >= 1:
            raise ValueError(f"bad_pixel_fraction must be < 1, got {list(self.bad_pixel_fraction)}")
        if self.ewald not in ("curved", "flat"):
            raise ValueError(f"ewald must be 'curved' or 'flat', got {self.ewald!r}")


@dataclasses.dataclass(frozen=True)
class SpiConfig:
    """The small-angle SPI simulator (``sim:`` section with ``kind: spi``)."""

    kind: str = "spi"
    patterns_per_model: int = 100
    nufft_eps: float = DEFAULT_EPS
    particle: ParticleConfig = dataclasses.field(default_factory=ParticleConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    beam: BeamConfig = dataclasses.field(default_factory=BeamConfig)
    detector: DetectorConfig = dataclasses.field(default_factory=DetectorConfig)

    def __post_init__(self):
        if self.kind != "spi":
            raise ValueError(f"kind must be 'spi', got {self.kind!r}")
        if self.patterns_per_model < 1:
            raise ValueError(f"patterns_per_model must be >= 1, got {self.patterns_per_model}")
        p, b, d = self.particle, self.beam, self.detector
        # Worst case over the ranges: the largest q per pixel and at the corner, for the largest particle.
        if d.geometry is None:
            pixel_um = d.pixel_size_um[1]
            max_angle = nominal_max_angle(Detector(shape=d.pixels, pixel_size_um=pixel_um, distance_m=d.distance_m[0]))
        else:
            layout = self.layout()
            pixel_um = layout.pixel_size_um * d.bin
            max_angle = nominal_max_angle(layout.placed(distance_m=d.distance_m[0]))
        check_detector_sees(
            circumradius_nm=p.circumradius_nm[1],
            voxel_nm=p.circumradius_nm[1] / p.radius_voxels,
            wavelength_nm=wavelength_nm(b.photon_energy_eV[1]),
            pixel_size_um=pixel_um,
            distance_m=d.distance_m[0],
            max_angle_rad=max_angle,
        )

    def layout(self) -> Geometry | None:
        """The detector geometry's layout (built once per config), or ``None`` for the flat detector."""
        if self.detector.geometry is None:
            return None
        if "_layout" not in self.__dict__:
            self.__dict__["_layout"] = self.detector.geometry.build()
        return self.__dict__["_layout"]

    def view(self) -> View | None:
        """Module-stacked patterns → the model's ``detector.pixels`` view (``None``: patterns are the view)."""
        if self.detector.geometry is None:
            return None
        if "_view" not in self.__dict__:
            self.__dict__["_view"] = View(self.layout(), tuple(self.detector.pixels), self.detector.bin)
        return self.__dict__["_view"]

    def sampling(self) -> dict[str, list[float]]:
        """The ranges of what sets a pattern's scale on the model's image: the angle one image pixel subtends
        (``pixel_angle_rad``: its edge, ``bin`` detector pixels with a geometry, over the distance) and the
        photon energy; recorded in ``dataset_info.json`` and checked against the frames a model is given."""
        d = self.detector
        if d.geometry is None:
            pitch_m = (d.pixel_size_um[0] * 1e-6, d.pixel_size_um[1] * 1e-6)
        else:
            pitch_m = (self.layout().pixel_size_m * d.bin,) * 2
        return {
            "pixel_angle_rad": [pitch_m[0] / d.distance_m[1], pitch_m[1] / d.distance_m[0]],
            "photon_energy_eV": [float(e) for e in self.beam.photon_energy_eV],
        }

    def __getstate__(self):  # Beam pickles configs to its workers: they rebuild the layout, not unpickle 60 MB
        return {k: v for k, v in self.__dict__.items() if k not in ("_layout", "_view")}

    def __setstate__(self, state):
        self.__dict__.update(state)


def nominal_max_angle(detector: Detector | Geometry) -> float:
    """The largest scattering angle ``2θ`` a pixel sees with the beam at the detector's nominal centre
    (the middle of a flat detector, the origin of a geometry); a jitter of a pixel or two is within the
    margin of :func:`check_detector_sees`."""
    if isinstance(detector, Detector):
        half_diag = np.hypot(*detector.shape) / 2 * detector.pixel_size_um * 1e-6
        return float(np.arctan(half_diag / detector.distance_m))
    return detector.placed(distance_m=detector.distance_m).max_scattering_angle()


def check_detector_sees(
    *,
    circumradius_nm: float,
    voxel_nm: float,
    wavelength_nm: float,
    pixel_size_um: float,
    distance_m: float,
    max_angle_rad: float,
) -> None:
    """Raises ValueError if the detector cannot resolve the particle's pattern or its voxel grid cannot
    represent the detector's q range.

    The pattern is resolved when a fringe of period ``π / circumradius`` spans at least two pixels (of the
    model's view); the grid covers the detector when ``q_corner · voxel_nm <= π`` (the Nyquist limit of the
    voxels), ``q_corner = 2k sin(2θ_max / 2)`` at the largest scattering angle ``2θ_max`` a pixel sees.
    """
    k = 2 * np.pi / wavelength_nm
    q_pixel = k * (pixel_size_um * 1e-6) / distance_m
    if q_pixel > np.pi / (2 * circumradius_nm):
        raise ValueError(
            f"the detector cannot resolve a particle of circumradius_nm={circumradius_nm:g}: one pixel spans "
            f"q = {q_pixel:.3g} 1/nm but a fringe is {np.pi / circumradius_nm:.3g} 1/nm (pixel_size_um="
            f"{pixel_size_um:g}, distance_m={distance_m:g}, wavelength_nm={wavelength_nm:.3g}); use a longer "
            "distance, smaller pixels or smaller particles"
        )
    q_corner = 2 * k * np.sin(max_angle_rad / 2)
    if q_corner * voxel_nm > np.pi:
        raise ValueError(
            f"the detector corner reaches q = {q_corner:.3g} 1/nm, beyond the voxel grid's limit "
            f"pi/voxel_nm = {np.pi / voxel_nm:.3g} 1/nm (voxel_nm={voxel_nm:.3g}); raise radius_voxels or "
            "use a longer distance_m / smaller pixel_size_um"
        )


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """One particle model: everything shared by its ``patterns_per_model`` patterns."""

    model_index: int
    shape: str
    circumradius_nm: float
    voxel_nm: float
    twist_deg: float
    affine: tuple[tuple[float, ...], ...]
    edge_blur_nm: float
    electron_density_e_per_nm3: float
    photon_energy_eV: float
    fluence_photons_per_um2: float
    detector: Detector | Geometry
    bad_pixel_fraction: float
    background_photons: float
    readout_noise_photons: float

    @property
    def wavelength_nm(self) -> float:
        return wavelength_nm(self.photon_energy_eV)


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One simulated snapshot and everything needed to label and reproduce it.

    Attributes:
        image: photon counts, float32 (rows, columns); masked pixels read 0.
        mask: CXI pixel mask of the model's detector (uint32, 0 = good).
        label: class 0–4 (4 = four or more particles).
        quaternions: (n, 4) orientation of each particle (w, x, y, z).
        positions_nm: (n, 3) particle centres, cluster centroid at the origin.
        fluence_photons_per_um2: this shot's fluence.
        model: the particle model.
        shot: index of the pattern within its model.
    """

    image: np.ndarray
    mask: np.ndarray
    label: int
    quaternions: np.ndarray
    positions_nm: np.ndarray
    fluence_photons_per_um2: float
    model: ModelParams
    shot: int

    @property
    def n_particles(self) -> int:
        return len(self.quaternions)

    def parameters(self, max_particles: int) -> dict[str, np.ndarray]:
        """The label and simulation parameters as fixed-shape arrays (particle arrays NaN-padded to
        ``max_particles`` rows), for files and datasets."""
        quats = np.full((max_particles, 4), np.nan, dtype=np.float32)
        pos = np.full((max_particles, 3), np.nan, dtype=np.float32)
        quats[: self.n_particles] = self.quaternions
        pos[: self.n_particles] = self.positions_nm
        m = self.model
        return {
            "label": np.int32(self.label),
            "n_particles": np.int32(self.n_particles),
            "model_index": np.int64(m.model_index),
            "shot": np.int32(self.shot),
            "shape": np.str_(m.shape),
            "circumradius_nm": np.float32(m.circumradius_nm),
            "voxel_nm": np.float32(m.voxel_nm),
            "twist_deg": np.float32(m.twist_deg),
            "affine": np.asarray(m.affine, dtype=np.float32),
            "edge_blur_nm": np.float32(m.edge_blur_nm),
            "electron_density_e_per_nm3": np.float32(m.electron_density_e_per_nm3),
            "fluence_photons_per_um2": np.float32(self.fluence_photons_per_um2),
            "background_photons": np.float32(m.background_photons),
            "quaternions": quats,
            "positions_nm": pos,
        }


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _log_uniform(rng: np.random.Generator, r: Range) -> float:
    return float(np.exp(rng.uniform(np.log(r[0]), np.log(r[1])))) if r[1] > r[0] else float(r[0])


def _random_strain(rng: np.random.Generator, size: float) -> np.ndarray:
    m = rng.standard_normal((3, 3))
    sym = (m + m.T) / 2
    return np.eye(3) + size * sym / np.linalg.norm(sym, 2)


def sample_model(cfg: SpiConfig, seed: int, model_index: int) -> ModelParams:
    """Draws particle model ``model_index`` of ``(cfg, seed)``."""
    if model_index < 0:
        raise ValueError(f"model_index must be >= 0, got {model_index}")
    rng = seeds.rng(seed, model_index)
    p, b, d = cfg.particle, cfg.beam, cfg.detector
    names = sorted(p.shapes)
    weights = np.array([p.shapes[n] for n in names], dtype=float)
    shape = names[rng.choice(len(names), p=weights / weights.sum())]
    radius = _uniform(rng, p.circumradius_nm)
    voxel = radius / p.radius_voxels
    twist = _uniform(rng, p.twist_deg) * float(rng.choice((-1.0, 1.0)))
    affine = _random_strain(rng, _uniform(rng, p.strain))
    blur = _uniform(rng, p.edge_blur_voxels) * voxel
    density = _uniform(rng, p.electron_density_e_per_nm3)
    energy = _uniform(rng, b.photon_energy_eV)
    fluence = _log_uniform(rng, b.fluence_photons_per_um2)
    jitter = _uniform(rng, d.center_jitter_px)
    offset = rng.uniform(-jitter, jitter, size=2) if jitter else np.zeros(2)
    ny, nx = d.pixels
    layout = cfg.layout()
    if layout is None:
        detector = Detector(
            shape=(int(ny), int(nx)),
            pixel_size_um=_uniform(rng, d.pixel_size_um),
            distance_m=_uniform(rng, d.distance_m),
            center_px=(float((ny - 1) / 2 + offset[0]), float((nx - 1) / 2 + offset[1])),
            beam_stop_radius_px=_uniform(rng, d.beam_stop_radius_px),
            panel_gap_px=int(round(_uniform(rng, d.panel_gap_px))),
        )
    else:  # a geometry's own pixels and gaps: the distance, and the jitter and beam stop in its pixels
        p = layout.pixel_size_m
        distance = _uniform(rng, d.distance_m)
        stop = _uniform(rng, d.beam_stop_radius_px) * p
        detector = layout.placed(distance_m=distance, beam_xy_m=(offset[1] * p, offset[0] * p), beam_stop_radius_m=stop)
    return ModelParams(
        model_index=model_index,
        shape=shape,
        circumradius_nm=radius,
        voxel_nm=voxel,
        twist_deg=twist,
        affine=tuple(map(tuple, affine.tolist())),
        edge_blur_nm=blur,
        electron_density_e_per_nm3=density,
        photon_energy_eV=energy,
        fluence_photons_per_um2=fluence,
        detector=detector,
        bad_pixel_fraction=_uniform(rng, d.bad_pixel_fraction),
        background_photons=_uniform(rng, d.background_photons),
        readout_noise_photons=_uniform(rng, d.readout_noise_photons),
    )


def cluster_positions(n: int, *, rng: np.random.Generator, contact_nm: float, min_distance_nm: float) -> np.ndarray:
    """Centres of ``n`` touching particles, centroid at the origin (n, 3).

    Each new particle sits at ``contact_nm`` from a randomly chosen member, in a uniformly random direction,
    and no closer than ``min_distance_nm`` to any member (rejection sampling).
    """
    pos = np.zeros((1, 3))
    while len(pos) < n:
        for _ in range(1000):
            u = rng.standard_normal(3)
            cand = pos[rng.integers(len(pos))] + contact_nm * u / np.linalg.norm(u)
            if np.linalg.norm(pos - cand, axis=1).min() >= min_distance_nm * (1 - 1e-9):
                pos = np.vstack([pos, cand])
                break
        else:  # pragma: no cover - needs min_distance > contact, which callers never pass
            raise RuntimeError(f"could not place particle {len(pos) + 1} of a cluster of {n}")
    return pos[:n] - pos[:n].mean(axis=0)


@dataclasses.dataclass(frozen=True)
class Shot:
    """The random draws of one pattern before its amplitude: class, cluster geometry, fluence.

    ``rng`` continues the shot's stream for the photon noise.
    """

    rng: np.random.Generator
    label: int
    quaternions: np.ndarray
    positions_nm: np.ndarray
    fluence_photons_per_um2: float


def contact_distances(model: ModelParams, torus_tube_ratio: float) -> tuple[float, float]:
    """(contact, minimum) centre distances of touching particles of ``model``: the inradius plus the
    circumradius, and twice the inradius (after the affine map)."""
    affine = np.array(model.affine)
    r_in = shapes.inradius(model.shape, circumradius_nm=model.circumradius_nm, torus_tube_ratio=torus_tube_ratio)
    r_in *= float(np.linalg.svd(affine, compute_uv=False).min())
    r_out = model.circumradius_nm * float(np.linalg.norm(affine, 2))
    return r_in + r_out, 2 * r_in


def sample_shot(cfg: SpiConfig, model: ModelParams, seed: int, shot: int) -> Shot:
    """Draws shot ``shot`` of ``model``: its class, particle orientations and positions, and fluence."""
    rng = seeds.rng(seed, model.model_index, shot + 1)
    w = np.asarray(cfg.cluster.class_weights, dtype=float)
    label = int(rng.choice(NUM_CLASSES, p=w / w.sum()))
    n = label if label < 4 else int(rng.integers(4, cfg.cluster.max_particles + 1))
    quats = quaternion.random_quaternion(rng, n).reshape(n, 4)
    if n:
        contact, min_dist = contact_distances(model, cfg.particle.torus_tube_ratio)
        pos = cluster_positions(n, rng=rng, contact_nm=contact, min_distance_nm=min_dist)
    else:
        pos = np.zeros((0, 3))
    jitter = cfg.beam.fluence_jitter
    fluence = model.fluence_photons_per_um2 * float(np.exp(jitter * rng.standard_normal() - jitter**2 / 2))
    return Shot(rng, label, quats, pos, fluence)


def model_density(cfg: SpiConfig, model: ModelParams) -> np.ndarray:
    """The occupancy grid of ``model``'s particle."""
    return shapes.particle(
        model.shape,
        circumradius_nm=model.circumradius_nm,
        voxel_nm=model.voxel_nm,
        grid=cfg.particle.grid,
        twist_deg=model.twist_deg,
        affine=np.array(model.affine),
        edge_blur_nm=model.edge_blur_nm,
        torus_tube_ratio=cfg.particle.torus_tube_ratio,
    )


def shot_image(
    model: ModelParams,
    shot: Shot,
    amplitude: np.ndarray | None,
    *,
    solid_angle_sr: np.ndarray,
    polarization: np.ndarray,
    mask: np.ndarray,
) -> np.ndarray:
    """The photon stage of one shot: expected photons from its cluster amplitude per pixel (``None``: no
    particle), Poisson counts with the model's background and readout noise, masked pixels 0
    (docs/PHYSICS.md, "Born amplitude and photon counts")."""
    expected = 0.0
    if amplitude is not None:
        expected = expected_photons(
            amplitude,
            electron_density_e_per_nm3=model.electron_density_e_per_nm3,
            fluence_photons_per_um2=shot.fluence_photons_per_um2,
            solid_angle_sr=solid_angle_sr,
            polarization=polarization,
        )
    image = detect(
        np.broadcast_to(expected, (mask.size,)),
        rng=shot.rng,
        background_photons=model.background_photons,
        readout_noise_photons=model.readout_noise_photons,
    ).reshape(mask.shape)
    image[mask != 0] = 0.0
    return image


def simulate_model(cfg: SpiConfig, seed: int, model_index: int, shots: Sequence[int] | None = None) -> list[Pattern]:
    """Simulates the patterns ``shots`` (default: all) of particle model ``model_index``.

    Returns:
        One :class:`Pattern` per shot, in the order given; identical to simulating each alone.
    """
    shots = list(range(cfg.patterns_per_model)) if shots is None else list(shots)
    for s in shots:
        if not 0 <= s < cfg.patterns_per_model:
            raise ValueError(f"shot must be in [0, {cfg.patterns_per_model}), got {s}")
    model = sample_model(cfg, seed, model_index)
    det = model.detector
    check_detector_sees(
        circumradius_nm=model.circumradius_nm,
        voxel_nm=model.voxel_nm,
        wavelength_nm=model.wavelength_nm,
        pixel_size_um=det.pixel_size_um * cfg.detector.bin,
        distance_m=det.distance_m,
        max_angle_rad=nominal_max_angle(det),
    )
    mask = det.mask(bad_pixel_fraction=model.bad_pixel_fraction, rng=seeds.rng(seed, model_index, 0))
    q = det.q_inv_nm(model.wavelength_nm, ewald=cfg.detector.ewald).reshape(-1, 3)
    solid_angle = det.solid_angle_sr().ravel()
    polarization = det.polarization(cfg.beam.polarization).ravel()
    drawn = [sample_shot(cfg, model, seed, s) for s in shots]
    amplitudes = [None] * len(drawn)
    if any(len(d.quaternions) for d in drawn):
        amp = Amplitude(model_density(cfg, model), voxel_nm=model.voxel_nm, eps=cfg.nufft_eps)
        amplitudes = cluster_amplitudes(amp, q, [(d.quaternions, d.positions_nm) for d in drawn])
    patterns = []
    for s, shot, amplitude in zip(shots, drawn, amplitudes, strict=True):
        image = shot_image(model, shot, amplitude, solid_angle_sr=solid_angle, polarization=polarization, mask=mask)
        patterns.append(
            Pattern(
                image,
                mask,
                shot.label,
                shot.quaternions,
                shot.positions_nm,
                shot.fluence_photons_per_um2,
                model,
                s,
            )
        )
    return patterns


def cluster_amplitudes(
    amp: Amplitude, q_inv_nm: np.ndarray, clusters: Sequence[tuple[np.ndarray, np.ndarray]]
) -> list[np.ndarray | None]:
    """``F(q) = Σ_j e^{-i q·t_j} F_S(R_jᵀ q)`` (docs/PHYSICS.md) for each cluster, in one NUFFT call for all.

    Args:
        amp: the single particle's amplitude.
        q_inv_nm: lab-frame momentum transfers (m, 3).
        clusters: per cluster, quaternions (n, 4) and positions (n, 3) in nm of its particles.

    Returns:
        complex64 (m,) per cluster, ``None`` for an empty one.
    """
    q_t = np.ascontiguousarray(np.asarray(q_inv_nm).reshape(-1, 3).T, dtype=np.float32)  # (3, m)
    m = q_t.shape[1]
    rot = [quaternion.to_matrix(np.asarray(qs).reshape(-1, 4)).astype(np.float32) for qs, _ in clusters]
    # Particle-frame q of every particle of every cluster: Rᵀ q, components first, written in place.
    q_local = np.empty((3, sum(len(rs) for rs in rot), m), dtype=np.float32)
    for k, r in enumerate(r for rs in rot for r in rs):
        np.matmul(r.T, q_t, out=q_local[:, k, :])
    q_local = q_local.reshape(3, -1)
    raw = amp.raw(q_local)
    voxel = np.float32(amp.voxel_nm)
    out, start = [], 0
    for (_, positions), rs in zip(clusters, rot, strict=True):
        if not len(rs):
            out.append(None)
            continue
        re = np.zeros(m, dtype=np.float32)
        im = np.zeros(m, dtype=np.float32)
        for r, t in zip(rs, np.asarray(positions, dtype=np.float64), strict=True):
            # Particle at t, rotated by R: e^{-i q·(t + R·origin)} times the cropped NUFFT value
            # (real arithmetic: numpy's float32 sin/cos are vectorised, its complex exp is not).
            shift = (t + r.astype(np.float64) @ amp.origin_nm).astype(np.float32)
            angle = shift @ q_t
            c, s = np.cos(angle), np.sin(angle)
            part = raw[start : start + m] / box_form_factor(q_local[:, start : start + m] * voxel)  # cache-sized
            a, b = part.real, part.imag
            re += c * a + s * b
            im += c * b - s * a
            start += m
        out.append(re + 1j * im)
    return out


def simulate_pattern(cfg: SpiConfig, seed: int, index: int) -> Pattern:
    """Pattern ``index`` of ``(cfg, seed)``: model ``index // patterns_per_model``, shot ``index % …``."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    model_index, shot = divmod(index, cfg.patterns_per_model)
    return simulate_model(cfg, seed, model_index, [shot])[0]


def simulate(cfg: SpiConfig, seed: int, n: int, *, start: int = 0) -> Iterator[Pattern]:
    """Patterns ``start … start + n - 1`` of ``(cfg, seed)`` in order, one model at a time."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    per = cfg.patterns_per_model
    index, stop = start, start + n
    while index < stop:
        model_index, first = divmod(index, per)
        last = min(per, stop - model_index * per)
        yield from simulate_model(cfg, seed, model_index, range(first, last))
        index = model_index * per + last
