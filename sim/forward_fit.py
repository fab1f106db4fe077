"""The forward-fit baseline of seed 001 (§3, figure 4b): Monte-Carlo simplex reconstruction.

From ``starts`` random points in (orientation, radius) space, each a Nelder–Mead simplex run of
``iterations`` steps minimises the mean squared difference between the measured log-intensity image and
the forward-simulated one (the same MSFT simulator and the same log scale that make the training data, no
shortcut the network does not also get; the forward model has no background noise). Orientations are
parametrised by their Rodrigues vector ``r = v / w`` and projected into the fundamental domain, so
equivalent orientations compare equal; the radius is clipped to its range.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.optimize

from spizoo.sim import icosahedral
from spizoo.sim.wideangle import MsftConfig, log_scale, render


@dataclasses.dataclass
class FitResult:
    """Outcome of :func:`fit_pattern`.

    Attributes:
        quaternion: best orientation, in the fundamental domain.
        radius_nm: best circumradius.
        loss: its mean squared log-image difference.
        simulations: forward simulations spent.
        seconds: wall time.
        history: (simulations so far, best loss so far, best quaternion, best radius) after each start.
    """

    quaternion: np.ndarray
    radius_nm: float
    loss: float
    simulations: int
    seconds: float
    history: list[tuple[int, float, np.ndarray, float]]


def model_image(cfg: MsftConfig, quaternion_wxyz: np.ndarray, radius_nm: float) -> np.ndarray:
    """Noise-free log image of one orientation and size, on the scale of the stored patterns."""
    intensity = render(cfg, quaternion_wxyz, radius_nm)
    return log_scale(intensity / intensity.max(), log_floor=cfg.log_floor)


def _quaternion(r: np.ndarray) -> np.ndarray:
    return icosahedral.project(np.concatenate([[1.0], r]) / np.sqrt(1.0 + r @ r))


def fit_pattern(
    image: np.ndarray,
    cfg: MsftConfig,
    *,
    starts: int = 50,
    iterations: int = 50,
    rng=None,
    progress: Callable[[int], None] | None = None,
) -> FitResult:
    """Reconstructs (orientation, radius) of one log-intensity image by Monte-Carlo simplex.

    Args:
        image: the measured log image (as stored by ``spizoo simulate`` for ``kind: msft``).
        cfg: the simulator that models it.
        starts: random initial points (seed 001: 50).
        iterations: Nelder–Mead iterations per start (seed 001: 50).
        rng: seed or generator for the starting points.
        progress: called with the simplex iterations done since its last call, ``starts * iterations`` in all
            (a start that converges early counts its remaining iterations when it ends).
    """
    if image.shape != tuple(cfg.detector.pixels):
        raise ValueError(
            f"image has shape {image.shape} but the config's detector has {tuple(cfg.detector.pixels)} pixels"
        )
    if starts < 1 or iterations < 1:
        raise ValueError(f"starts and iterations must be >= 1, got {starts} and {iterations}")
    rng = np.random.default_rng(rng)
    lo, hi = cfg.circumradius_nm
    target = np.asarray(image, dtype=np.float64)
    count = 0

    def loss(x: np.ndarray) -> float:
        nonlocal count
        count += 1
        radius = float(np.clip(x[3], lo, hi))
        return float(np.mean((model_image(cfg, _quaternion(x[:3]), radius) - target) ** 2))

    t0 = time.perf_counter()
    best: tuple[float, np.ndarray] | None = None
    history = []
    for _ in range(starts):
        q0 = icosahedral.sample_fundamental(rng)
        x0 = np.append(q0[1:] / q0[0], rng.uniform(lo, hi))
        simplex_scale = np.array([0.05, 0.05, 0.05, 0.05 * (hi - lo)])
        initial = np.vstack([x0, x0 + np.diag(simplex_scale)])
        done = 0

        def step(_):
            nonlocal done
            done += 1
            if progress is not None:
                progress(1)

        res = scipy.optimize.minimize(
            loss,
            x0,
            method="Nelder-Mead",
            callback=step,
            options={"maxiter": iterations, "initial_simplex": initial, "xatol": 1e-6},
        )
        if progress is not None and done < iterations:
            progress(iterations - done)
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x.copy())
        history.append((count, best[0], _quaternion(best[1][:3]), float(np.clip(best[1][3], lo, hi))))
    fun, x = best
    return FitResult(_quaternion(x[:3]), float(np.clip(x[3], lo, hi)), fun, count, time.perf_counter() - t0, history)
