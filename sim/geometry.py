"""Detector geometries of real facilities: every pixel of a module-stacked frame, placed in 3-D.

A :class:`Geometry` is a layout of flat tiles (ASICs) that EXtra-geom describes — a CrystFEL ``.geom`` file or
one of its named detectors (AGIPD-1M, AGIPD-500k, JUNGFRAU, ePix100, ePix10k, pnCCD, DSSC-1M, LPD-1M) —
placed at a detector distance with the beam at the layout's origin. Frames are module-stacked arrays
``(modules, slow scan, fast scan)`` such as AGIPD's ``(16, 512, 128)``.

Per pixel (docs/PHYSICS.md, "Detector"): ``q = k r̂ - k ẑ`` on the curved Ewald sphere; solid angle
``ΔΩ = A |n̂·r̂| / |r|²`` from the pixel's area ``A = |f × s|`` (its fast- and slow-scan vectors) and its
tile's normal ``n̂`` (``p² D / |r|³`` on a flat panel normal to the beam); polarisation ``1 - (r̂·x̂)²``.
The flat :class:`~spizoo.sim.detector.Detector` is the one-tile special case (:meth:`Geometry.from_detector`).

A :class:`View` turns module-stacked frames into the model's input: each pixel's counts are summed into the
``bin × bin``-pixel cell of a ``pixels``-sized grid centred on the beam that its centre falls in (a
precomputed index map; no interpolation), so simulated and measured frames give the same view.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import numpy as np
import scipy.sparse

from spizoo.core import masks
from spizoo.sim.detector import momentum_transfer, polarization_factor

# Named layouts: the EXtra-geom class and its constructor for parameters (``None``: the class's example).
DETECTORS = {
    "AGIPD-1M": ("AGIPD_1MGeometry", "from_quad_positions"),
    "AGIPD-500k": ("AGIPD_500K2GGeometry", "from_origin"),
    "DSSC-1M": ("DSSC_1MGeometry", "from_quad_positions"),
    "LPD-1M": ("LPD_1MGeometry", "from_quad_positions"),
    "JUNGFRAU": ("JUNGFRAUGeometry", "from_module_positions"),
    "ePix100": ("Epix100Geometry", "from_origin"),
    "ePix10k": ("Epix10KGeometry", "from_origin"),
    "pnCCD": ("PNCCDGeometry", "from_relative_positions"),
}


def _extra_geom():
    import extra_geom  # imports pandas and matplotlib: only when a geometry is built
    import xarray  # noqa: F401 - see data/euxfel.py::_open: imported whole before frames are read in a thread

    return extra_geom


def _unknown(kind: str, value: str, known) -> ValueError:
    near = difflib.get_close_matches(value, list(known), n=1, cutoff=0.4)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return ValueError(f"unknown {kind} {value!r}{hint}; known: {', '.join(known)}")


@dataclasses.dataclass(frozen=True, eq=False)
class Geometry:
    """Pixel layout of a module-stacked detector, placed at ``distance_m`` with the beam at ``beam_xy_m``.

    Attributes:
        name: the detector's name (``AGIPD-1M``, ``flat``, the ``.geom`` file, …).
        positions_m: pixel centres in the detector's frame (modules, ss, fs, 3); the beam meets the plane
            ``z = 0`` at the origin when ``beam_xy_m`` is zero.
        normals: unit normal of each pixel's tile (modules, ss, fs, 3).
        areas_m2: area of each pixel (modules, ss, fs).
        static_mask: CXI bits that belong to the layout (ASIC seams, gaps inside a panel) (modules, ss, fs).
        pixel_size_m: the nominal pixel edge (the pitch of an assembled image).
        distance_m: interaction point to the detector's ``z = 0`` plane.
        beam_xy_m: where the beam meets that plane, relative to the layout's origin.
        beam_stop_radius_m: radius of the beam stop around the beam, in the detector plane.
        source: the EXtra-geom object it came from (``None`` for a flat :class:`Detector`).
        tiles: the flat tiles as (module, ss start, ss stop, fs start, fs stop); empty: one per module.
    """

    name: str
    positions_m: np.ndarray
    normals: np.ndarray
    areas_m2: np.ndarray
    static_mask: np.ndarray
    pixel_size_m: float
    distance_m: float = 0.5
    beam_xy_m: tuple[float, float] = (0.0, 0.0)
    beam_stop_radius_m: float = 0.0
    source: object = None
    tiles: tuple[tuple[int, int, int, int, int], ...] = ()

    def __post_init__(self):
        if self.positions_m.ndim != 4 or self.positions_m.shape[-1] != 3:
            raise ValueError(f"positions_m must be (modules, ss, fs, 3), got {self.positions_m.shape}")
        if self.normals.shape != self.positions_m.shape:
            raise ValueError(f"normals must have the shape of positions_m {self.positions_m.shape}")
        for name in ("areas_m2", "static_mask"):
            if getattr(self, name).shape != self.shape:
                raise ValueError(f"{name} must have shape {self.shape}, got {getattr(self, name).shape}")
        if not self.distance_m > 0:
            raise ValueError(f"distance_m must be > 0, got {self.distance_m}")
        if not self.pixel_size_m > 0:
            raise ValueError(f"pixel_size_m must be > 0, got {self.pixel_size_m}")
        if not self.tiles:
            m, ss, fs = self.shape
            object.__setattr__(self, "tiles", tuple((i, 0, ss, 0, fs) for i in range(m)))

    # --- construction -------------------------------------------------------------------------------------

    @classmethod
    def from_extra_geom(cls, geom, *, name: str | None = None, distance_m: float | None = None) -> Geometry:
        """The layout of an EXtra-geom detector geometry; its tiles give the normals and pixel areas.

        ``distance_m`` defaults to the ``clen`` of a CrystFEL file it was read from.
        """
        positions = np.asarray(geom.get_pixel_positions(), dtype=np.float64)
        if positions.ndim == 3:  # single-module detectors without a module axis
            positions = positions[None]
        normals = np.empty_like(positions)
        areas = np.empty(positions.shape[:-1])
        seams = np.zeros(positions.shape[:-1], dtype=bool)
        regions = []
        for m, tiles in enumerate(geom.modules):
            for t, tile in enumerate(tiles):
                ss, fs = geom._tile_slice(t)  # its pixels in the module (EXtra-geom 1.17 has no public name)
                regions.append((m, ss.start, ss.stop, fs.start, fs.stop))
                cross = np.cross(np.asarray(tile.fs_vec, float), np.asarray(tile.ss_vec, float))
                with np.errstate(invalid="ignore", divide="ignore"):  # a zero-length vector: refused below
                    normals[m, ss, fs] = cross / np.linalg.norm(cross)
                areas[m, ss, fs] = np.linalg.norm(cross)
                # A seam: a tile's first/last row or column where it meets another tile of its module.
                for e, inner in ((ss.start, ss.start > 0), (ss.stop - 1, ss.stop < positions.shape[1])):
                    seams[m, e, fs] |= inner
                for e, inner in ((fs.start, fs.start > 0), (fs.stop - 1, fs.stop < positions.shape[2])):
                    seams[m, ss, e] |= inner
        broken = ~(np.isfinite(positions).all(axis=-1) & np.isfinite(normals).all(axis=-1) & (areas > 0))
        if broken.any():
            modules = sorted(set(np.nonzero(broken)[0].tolist()))
            raise ValueError(
                f"pixel positions or panel vectors are missing or not finite in module(s) {modules} (a panel's "
                "corner_x/corner_y, fs or ss vector absent, not a number, or of zero length)"
            )
        if distance_m is None:
            clen = (getattr(geom, "metadata", None) or {}).get("crystfel", {}).get("clen")
            distance_m = float(clen) if clen is not None and np.isfinite(clen) else 0.5
        static = np.where(seams, masks.INVALID, 0).astype(np.uint32)
        return cls(
            name=name or geom.detector_type_name,
            positions_m=positions,
            normals=normals,
            areas_m2=areas,
            static_mask=static,
            pixel_size_m=float(geom.pixel_size),
            distance_m=float(distance_m),
            source=geom,
            tiles=tuple(regions),
        )

    @classmethod
    def named(cls, detector: str, *, distance_m: float | None = None, **parameters) -> Geometry:
        """An EXtra-geom detector by name (:data:`DETECTORS`), built from ``parameters`` (e.g. AGIPD-1M's
        ``quad_pos``) or, without any, from EXtra-geom's example layout."""
        if detector not in DETECTORS:
            raise _unknown("detector", detector, DETECTORS)
        class_name, constructor = DETECTORS[detector]
        klass = getattr(_extra_geom(), class_name)
        try:
            geom = getattr(klass, constructor)(**parameters) if parameters else klass.example()
        except (TypeError, ValueError) as err:
            raise ValueError(f"{detector}: cannot build the geometry from {dict(parameters)} ({err})") from None
        return cls.from_extra_geom(geom, name=detector, distance_m=distance_m)

    @classmethod
    def from_crystfel(cls, path: str | Path, *, detector: str | None = None, distance_m: float | None = None):
        """A CrystFEL ``.geom`` file, read by EXtra-geom as ``detector`` (default: the first of
        :data:`DETECTORS` that reads it)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such geometry file: {path}")
        if detector is not None and detector not in DETECTORS:
            raise _unknown("detector", detector, DETECTORS)
        eg = _extra_geom()
        errors = []
        for name in [detector] if detector else list(DETECTORS):
            try:
                geom = getattr(eg, DETECTORS[name][0]).from_crystfel_geom(str(path))
            except Exception as err:  # EXtra-geom raises many types for a layout that is not its own
                message = f"{name}: {type(err).__name__} {err}".strip()
                errors.append(message if len(message) <= 300 else message[:300] + " …")  # EXtra-geom's can be pages
                continue
            try:
                return cls.from_extra_geom(geom, name=name, distance_m=distance_m)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from None
        if detector:
            raise ValueError(f"{path}: not a CrystFEL geometry of a {detector} ({errors[0]})")
        raise ValueError(
            f"{path}: could not tell which detector this CrystFEL geometry describes; name it with "
            f"detector: (one of {', '.join(DETECTORS)})"
        )

    @classmethod
    def from_detector(cls, detector) -> Geometry:
        """The flat :class:`~spizoo.sim.detector.Detector` as a one-module geometry: same pixels, q, solid
        angles, polarisation; its panel gap becomes part of the layout's mask."""
        r = detector.pixel_positions_m()[None]
        positions = r.copy()
        positions[..., 2] = 0.0
        normals = np.zeros_like(positions)
        normals[..., 2] = 1.0
        p = detector.pixel_size_um * 1e-6
        gap_only = dataclasses.replace(detector, beam_stop_radius_px=0.0)
        return cls(
            name="flat",
            positions_m=positions,
            normals=normals,
            areas_m2=np.full(positions.shape[:-1], p * p),
            static_mask=gap_only.mask()[None],
            pixel_size_m=p,
            distance_m=detector.distance_m,
            beam_stop_radius_m=detector.beam_stop_radius_px * p,
        )

    def placed(self, *, distance_m: float, beam_xy_m=(0.0, 0.0), beam_stop_radius_m: float = 0.0) -> Geometry:
        """The same layout at another distance, beam position and beam stop."""
        return dataclasses.replace(
            self,
            distance_m=float(distance_m),
            beam_xy_m=tuple(map(float, beam_xy_m)),
            beam_stop_radius_m=float(beam_stop_radius_m),
        )

    def write_crystfel(
        self,
        path: str | Path,
        *,
        photon_energy_eV: float | None = None,
        data_path: str | None = None,
        mask_path: str | None = None,
    ) -> Path:
        """Writes the layout as a CrystFEL ``.geom`` file (through EXtra-geom), with ``clen`` and, if given, the
        photon energy and where the frames and mask are in the HDF5 files it describes."""
        if self.source is None:
            raise ValueError(f"the {self.name} geometry has no EXtra-geom layout to write as a .geom file")
        self.source.write_crystfel_geom(
            str(path), clen=self.distance_m, photon_energy=photon_energy_eV, data_path=data_path, mask_path=mask_path
        )
        return Path(path)

    # --- per-pixel physics (the interface of Detector) ----------------------------------------------------

    @property
    def pixel_size_um(self) -> float:
        return self.pixel_size_m * 1e6

    @property
    def shape(self) -> tuple[int, int, int]:
        """(modules, slow scan, fast scan): the shape of one frame."""
        return tuple(self.positions_m.shape[:-1])

    def pixel_positions_m(self) -> np.ndarray:
        """Pixel centres relative to the interaction point, beam along +z (modules, ss, fs, 3)."""
        bx, by = self.beam_xy_m
        return self.positions_m + np.array([-bx, -by, self.distance_m])

    def q_inv_nm(self, wavelength_nm: float, *, ewald: str = "curved") -> np.ndarray:
        """Momentum transfer ``q = k_out - k_in`` of each pixel in 1/nm (modules, ss, fs, 3); ``ewald="flat"``
        is the small-angle approximation ``k (x, y, 0) / D``."""
        return momentum_transfer(self.pixel_positions_m(), wavelength_nm, ewald=ewald, distance_m=self.distance_m)

    def solid_angle_sr(self) -> np.ndarray:
        """``A |n̂·r| / |r|³`` per pixel: its own area, its tile's normal (modules, ss, fs)."""
        r = self.pixel_positions_m()
        return self.areas_m2 * np.abs(np.sum(self.normals * r, axis=-1)) / np.linalg.norm(r, axis=-1) ** 3

    def polarization(self, kind: str = "x") -> np.ndarray:
        """Polarisation factor per pixel: ``"x"``/``"y"`` linear, or ``"unpolarized"``."""
        return polarization_factor(self.pixel_positions_m(), kind)

    def max_scattering_angle(self) -> float:
        """The largest ``2θ`` any pixel sees (radians)."""
        r = self.pixel_positions_m()
        return float(np.arccos(np.min(r[..., 2] / np.linalg.norm(r, axis=-1))))

    def mask(self, *, bad_pixel_fraction: float = 0.0, rng=None) -> np.ndarray:
        """CXI pixel mask (uint32, 0 = good): the layout's seams and gaps, the beam stop, and random dead
        pixels (``bad_pixel_fraction`` of them, drawn with ``rng``)."""
        if not 0 <= bad_pixel_fraction < 1:
            raise ValueError(f"bad_pixel_fraction must be in [0, 1), got {bad_pixel_fraction}")
        out = self.static_mask.copy()
        if self.beam_stop_radius_m:
            r = self.pixel_positions_m()
            out[np.hypot(r[..., 0], r[..., 1]) <= self.beam_stop_radius_m] |= masks.SHADOWED
        if bad_pixel_fraction:
            out[np.random.default_rng(rng).random(self.shape) < bad_pixel_fraction] |= masks.DEAD
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class View:
    """Module-stacked frames → the model's ``pixels``-sized image, ``bin × bin`` detector pixels per cell,
    centred on the beam (the one function between a detector's frames and a model, docs/ARCHITECTURE.md).

    A pixel's counts go to the cell its centre falls in (pixels off the grid are left out); a cell that no
    usable pixel reaches (gaps between modules, masked pixels only) is masked ``INVALID`` and reads 0.
    """

    geometry: Geometry
    pixels: tuple[int, int] = (128, 128)
    bin: int = 1

    def __post_init__(self):
        if len(self.pixels) != 2 or min(self.pixels) < 1:
            raise ValueError(f"pixels must be two positive counts, got {list(self.pixels)}")
        if not (isinstance(self.bin, int | np.integer) and self.bin >= 1):
            raise ValueError(f"bin must be an integer >= 1, got {self.bin!r}")
        h, w = self.pixels
        r = self.geometry.pixel_positions_m()
        pitch = self.geometry.pixel_size_m * self.bin
        # Image axes are (y, x), as on the flat Detector: row i at y = (i - (h - 1)/2) · pitch. Rounded to 1e-6
        # cells first: a pixel centre on a cell edge (common: pixel grids are cell multiples) lands in the
        # same cell whichever way its position was computed (a .geom file read back, say).
        row = np.floor(np.round(r[..., 1] / pitch + h / 2, 6)).astype(np.int64)
        col = np.floor(np.round(r[..., 0] / pitch + w / 2, 6)).astype(np.int64)
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        object.__setattr__(self, "_pixels", np.flatnonzero(inside))  # which frame pixels reach the view
        object.__setattr__(self, "_cells", (row * w + col)[inside])  # and the cell each reaches
        # Tiles aligned with the image axes (every detector EXtra-geom knows): each pixel's cell row depends on
        # one of (ss, fs) and its column on the other, so binning is two small one-hot matrix products per
        # tile. Other tiles go through one sparse (cells × pixels) sum.
        blocks, rest = [], np.zeros(self.geometry.shape, bool)
        for m, s0, s1, f0, f1 in self.geometry.tiles:
            block = _separable(row[m, s0:s1, f0:f1], col[m, s0:s1, f0:f1], h, w)
            if block is None:
                rest[m, s0:s1, f0:f1] = True
            elif block:
                blocks.append(((m, slice(s0, s1), slice(f0, f1)), *block))
        object.__setattr__(self, "_blocks", blocks)
        picked = rest.reshape(-1)[self._pixels]
        pixels, cells = self._pixels[picked], self._cells[picked]
        ones = np.ones(len(cells), np.float32)
        summing = scipy.sparse.csr_matrix((ones, (cells, pixels)), shape=(h * w, rest.size))
        object.__setattr__(self, "_sum", summing if len(cells) else None)  # view += summing @ frame

    @property
    def pitch_m(self) -> float:
        """Edge of one cell of the view (the model's pixel size)."""
        return self.geometry.pixel_size_m * self.bin

    def _check(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        shape = self.geometry.shape
        if frames.shape[-3:] != shape:
            found = "x".join(map(str, frames.shape[-3:] if frames.ndim >= 3 else frames.shape))
            raise ValueError(
                f"frames of {found} pixels do not match the {self.geometry.name} geometry's "
                f"{len(shape) and shape[0]} modules of {shape[1]}x{shape[2]} pixels"
            )
        return frames

    def mask(self, frame_mask: np.ndarray | None = None) -> np.ndarray:
        """The view's CXI mask: ``INVALID`` where no usable pixel (of ``frame_mask``, default the layout's
        own) reaches a cell (h, w)."""
        m = self.geometry.static_mask if frame_mask is None else self._check(frame_mask)
        good = (m.reshape(-1)[self._pixels] & masks.UNUSABLE) == 0
        hits = np.bincount(self._cells[good], minlength=self.pixels[0] * self.pixels[1])
        return np.where(hits == 0, masks.INVALID, 0).astype(np.uint32).reshape(self.pixels)

    def __call__(self, frames: np.ndarray, frame_mask: np.ndarray | None = None) -> np.ndarray:
        """The view of one frame (modules, ss, fs) or a stack (n, modules, ss, fs): float32 (…, h, w).

        Pixels with an unusable bit in ``frame_mask`` (same shape as a frame, or as ``frames``) count 0.
        """
        frames = self._check(frames)
        lead = frames.shape[:-3]
        stack = frames.reshape(-1, *self.geometry.shape).astype(np.float32, copy=False)
        if frame_mask is not None:
            unusable = (np.broadcast_to(np.asarray(frame_mask), frames.shape) & masks.UNUSABLE) != 0
            stack = np.where(unusable.reshape(stack.shape), np.float32(0), stack)
        h, w = self.pixels
        out = np.zeros((len(stack), h, w), np.float32)
        for (m, ss, fs), transposed, left, right, (r0, r1, c0, c1) in self._blocks:
            sums = left @ stack[:, m, ss, fs] @ right
            out[:, r0:r1, c0:c1] += sums.transpose(0, 2, 1) if transposed else sums
        if self._sum is not None:
            flat = stack.reshape(len(stack), -1)
            out += np.stack([self._sum @ v for v in flat]).reshape(out.shape) if len(flat) else 0
        return out.reshape(*lead, h, w)


def _separable(row: np.ndarray, col: np.ndarray, h: int, w: int):
    """For a tile whose pixels' cell (row, col) depend on (ss, fs) separably: ``(transposed, L, R, bounds)``
    with one-hot matrices such that the tile's cell sums are ``L @ tile @ R`` (transposed when cell rows
    follow fs: ``(R_c tileᵀ C_c)ᵀ = C_cᵀ tile R_cᵀ``, the products run on the tile as stored), added at
    ``bounds`` (r0, r1, c0, c1); ``()`` for a tile off the view, ``None`` when not separable."""
    for transposed, r, c in ((False, row, col), (True, row.T, col.T)):
        along_r, along_c = r[:, 0], c[0, :]
        if np.array_equal(r, np.broadcast_to(along_r[:, None], r.shape)) and np.array_equal(
            c, np.broadcast_to(along_c[None, :], c.shape)
        ):
            ok_r, ok_c = (along_r >= 0) & (along_r < h), (along_c >= 0) & (along_c < w)
            if not ok_r.any() or not ok_c.any():
                return ()
            r0, r1 = along_r[ok_r].min(), along_r[ok_r].max() + 1
            c0, c1 = along_c[ok_c].min(), along_c[ok_c].max() + 1
            rows = np.zeros((r1 - r0, len(along_r)), np.float32)
            rows[along_r[ok_r] - r0, np.flatnonzero(ok_r)] = 1
            cols = np.zeros((len(along_c), c1 - c0), np.float32)
            cols[np.flatnonzero(ok_c), along_c[ok_c] - c0] = 1
            left, right = (np.ascontiguousarray(cols.T), np.ascontiguousarray(rows.T)) if transposed else (rows, cols)
            return transposed, left, right, (int(r0), int(r1), int(c0), int(c1))
    return None


@dataclasses.dataclass(frozen=True)
class GeometryConfig:
    """A detector geometry in YAML (``sim.detector.geometry``): a CrystFEL ``file`` or a named ``detector``
    of :data:`DETECTORS` with the ``parameters`` of its EXtra-geom constructor (none: EXtra-geom's example).
    """

    detector: str = ""
    file: str = ""
    parameters: dict[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not (self.detector or self.file):
            raise ValueError("geometry needs a detector (one of " + ", ".join(DETECTORS) + ") or a .geom file")
        if self.detector and self.detector not in DETECTORS:
            raise _unknown("detector", self.detector, DETECTORS)
        if self.file and self.parameters:
            raise ValueError("geometry: parameters belong to a named detector; a .geom file carries its own")

    def build(self) -> Geometry:
        """The layout (distance and beam position are set per particle model)."""
        if self.file:
            return Geometry.from_crystfel(self.file, detector=self.detector or None)
        return Geometry.named(self.detector, **_plain(self.parameters))


def _plain(parameters: dict[str, object]) -> dict:
    """YAML lists as tuples, which EXtra-geom's constructors expect for positions."""

    def convert(v):
        return tuple(convert(x) for x in v) if isinstance(v, list | tuple) else v

    return {k: convert(v) for k, v in parameters.items()}
