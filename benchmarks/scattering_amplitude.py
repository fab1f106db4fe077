"""Accuracy and speed of two ways to evaluate a particle's amplitude at detector q, to choose one.

    python benchmarks/scattering_amplitude.py

The reference is the analytic sphere form factor (docs/PHYSICS.md). The case is the default SPI geometry at its
widest (128×128 px of 500 µm at 0.35 m, 1.8 keV), a sphere of 50 nm radius at 40 voxels per radius on a
128³ grid, evaluated at the detector's q for 100 random orientations (as for one particle model):

- ``nufft``: spizoo's Amplitude (FINUFFT type 2 on the cropped grid, eps 1e-3 and 1e-5);
- ``fft+linear`` / ``fft+cubic``: the 128³ grid zero-padded to 256³, one FFT, then trilinear or cubic-spline
  interpolation (scipy.ndimage.map_coordinates) at each q.

Both get the same voxel box-factor correction. Errors: max |I/I_ref - 1| where I_ref > 1e-3 I(0) (the
tested region), and max ||F| - |F_ref|| over the envelope 3V/(qR)² beyond qR = 5, out to the corner.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import json
import time

import numpy as np
import scipy.fft
import scipy.ndimage

from spizoo.sim import quaternion
from spizoo.sim.amplitude import Amplitude, box_form_factor
from spizoo.sim.detector import Detector
from spizoo.sim.shapes import particle, volume_nm3

RADIUS, VOXEL, GRID, PAD, ORIENTATIONS = 50.0, 50.0 / 40, 128, 256, 100


def sphere_form_factor(q: np.ndarray) -> np.ndarray:
    x = np.maximum(q * RADIUS, 1e-3)
    shape = np.where(x > 1e-2, 3 * (np.sin(x) - x * np.cos(x)) / x**3, 1 - x**2 / 10)  # series near 0
    return volume_nm3("sphere", circumradius_nm=RADIUS) * shape


class FFTGrid:
    """The padded-FFT-plus-interpolation alternative."""

    def __init__(self, density: np.ndarray, order: int):
        padded = np.zeros((PAD,) * 3, np.complex64)
        padded[:GRID, :GRID, :GRID] = density
        grid = scipy.fft.fftn(padded, workers=1) * np.float32(VOXEL**3)
        self.order = order
        self.parts = [
            scipy.ndimage.spline_filter(part, order=order, mode="grid-wrap") if order > 1 else part
            for part in (grid.real, grid.imag)
        ]

    def __call__(self, q: np.ndarray) -> np.ndarray:  # q: (3, M)
        coords = np.mod(q * VOXEL * PAD / (2 * np.pi), PAD)
        re, im = (
            scipy.ndimage.map_coordinates(p, coords, order=self.order, prefilter=False, mode="grid-wrap")
            for p in self.parts
        )
        origin_phase = np.exp(1j * (GRID // 2) * VOXEL * q.sum(axis=0))  # voxel j sits at (j - GRID/2) a
        return (re + 1j * im) * origin_phase / box_form_factor(q * VOXEL)


def nufft_method(eps: float):
    def build(density):
        amp = Amplitude(density, voxel_nm=VOXEL, eps=eps)
        return lambda q: amp(q.T)

    return build


def main() -> None:
    det = Detector(shape=(128, 128), pixel_size_um=500, distance_m=0.35)
    q_lab = det.q_inv_nm(1239.84 / 1800).reshape(-1, 3)
    rots = quaternion.to_matrix(quaternion.random_quaternion(0, ORIENTATIONS))
    q_all = np.concatenate([r.T @ q_lab.T for r in rots], axis=1)  # (3, 100 · 16384)
    ref = sphere_form_factor(np.linalg.norm(q_all, axis=0))
    tested = ref**2 > 1e-3 * ref.max() ** 2
    x = np.linalg.norm(q_all, axis=0) * RADIUS
    outer = x > 5
    envelope = 3 * volume_nm3("sphere", circumradius_nm=RADIUS) / x[outer] ** 2
    density = particle("sphere", circumradius_nm=RADIUS, voxel_nm=VOXEL, grid=GRID)

    methods = {
        "nufft eps=1e-3 (default)": nufft_method(1e-3),
        "nufft eps=1e-5": nufft_method(1e-5),
        "fft256+linear": lambda d: FFTGrid(d, order=1),
        "fft256+cubic spline": lambda d: FFTGrid(d, order=3),
    }
    nufft_method(1e-3)(density)(q_all[:, :100])  # warm-up: library loading and first-touch memory
    rows = {}
    for name, build in methods.items():
        t0 = time.perf_counter()
        evaluate = build(density)
        t1 = time.perf_counter()
        f = evaluate(q_all)
        t2 = time.perf_counter()
        rows[name] = {
            "setup_s": t1 - t0,
            "ms_per_16k_points": (t2 - t1) / ORIENTATIONS * 1e3,
            "ms_per_pattern_100": ((t1 - t0) / ORIENTATIONS + (t2 - t1) / ORIENTATIONS) * 1e3,
            "max_rel_I_err_tested": float(np.abs(np.abs(f[tested]) ** 2 / ref[tested] ** 2 - 1).max()),
            "max_env_err_outer": float((np.abs(np.abs(f[outer]) - np.abs(ref[outer])) / envelope).max()),
        }
    print(f"Sphere R={RADIUS} nm, voxel {VOXEL} nm, {GRID}^3 grid, {ORIENTATIONS} orientations x 16384 px, 1 core")
    print(f"{'method':<26}{'setup s':>9}{'ms/16k q':>10}{'ms/pattern':>12}{'max dI/I':>10}{'max env err':>13}")
    for name, r in rows.items():
        print(
            f"{name:<26}{r['setup_s']:>9.3f}{r['ms_per_16k_points']:>10.2f}{r['ms_per_pattern_100']:>12.2f}"
            f"{r['max_rel_I_err_tested']:>10.4f}{r['max_env_err_outer']:>13.4f}"
        )
    best = rows["nufft eps=1e-3 (default)"]
    print(
        json.dumps(
            {
                "benchmark": "scattering_amplitude",
                "nufft_speedup_vs_fft_linear": round(
                    rows["fft256+linear"]["ms_per_pattern_100"] / best["ms_per_pattern_100"], 2
                ),
                "nufft_speedup_vs_fft_cubic": round(
                    rows["fft256+cubic spline"]["ms_per_pattern_100"] / best["ms_per_pattern_100"], 2
                ),
                **{name: {k: round(v, 5) for k, v in r.items()} for name, r in rows.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
