"""Patterns/s of the small-angle SPI simulator (configs/sim_spi.yaml: 128×128 pixels, seed-000 class mix,
100 patterns per particle model), with one process and with one per core, plus where the time goes.

    python benchmarks/sim_spi.py [--patterns 4000]

Prints a table, then one JSON line. Peak memory is the largest resident set of one worker process. The
multi-process rate is the median of three runs; the stage breakdown is one process.
"""

from __future__ import annotations

import os

# One BLAS thread per process, as the simulator's worker pool uses (set before numpy loads).
os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse
import json
import resource
import tempfile
import time

import numpy as np

from spizoo.commands import simulate
from spizoo.core import seeds
from spizoo.experiment import load
from spizoo.sim import quaternion, spi
from spizoo.sim.amplitude import Amplitude
from spizoo.sim.parallel import iterate_patterns


def rate(config, n: int, workers: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in iterate_patterns(config.sim, config.seed, n, workers=workers))
    return count / (time.perf_counter() - start)


def photons(cfg, model, seed: int, model_index: int, shots, amplitudes) -> list[np.ndarray]:
    """The photon stage of ``spi.simulate_model``: the detector's per-model solid angle, polarisation and
    mask, then ``spi.shot_image`` per pattern (expected photons, Poisson counts, background, readout noise,
    masked pixels)."""
    det = model.detector
    mask = det.mask(bad_pixel_fraction=model.bad_pixel_fraction, rng=seeds.rng(seed, model_index, 0))
    solid_angle = det.solid_angle_sr().ravel()
    polarization = det.polarization(cfg.beam.polarization).ravel()
    return [
        spi.shot_image(model, shot, amplitude, solid_angle_sr=solid_angle, polarization=polarization, mask=mask)
        for shot, amplitude in zip(shots, amplitudes, strict=True)
    ]


def breakdown(config, models: int = 6) -> dict[str, float]:
    """Seconds per pattern in each stage, averaged over a few particle models (one process)."""
    cfg, seed, per = config.sim, config.seed, config.sim.patterns_per_model
    t = dict.fromkeys(("model + shots", "density", "nufft", "cluster sum", "photons"), 0.0)
    for m in range(models):
        t0 = time.perf_counter()
        model = spi.sample_model(cfg, seed, m)
        det = model.detector
        q = det.q_inv_nm(model.wavelength_nm, ewald=cfg.detector.ewald).reshape(-1, 3)
        shots = [spi.sample_shot(cfg, model, seed, s) for s in range(per)]
        t1 = time.perf_counter()
        density = spi.model_density(cfg, model)
        t2 = time.perf_counter()
        amp = Amplitude(density, voxel_nm=model.voxel_nm, eps=cfg.nufft_eps)
        clusters = [(s.quaternions, s.positions_nm) for s in shots]
        rot = [quaternion.to_matrix(c[0]).astype(np.float32) for c in clusters if len(c[0])]
        q_local = np.concatenate([r.T @ q.T.astype(np.float32) for rs in rot for r in rs], axis=1)
        t3 = time.perf_counter()
        amp.raw(q_local)  # the NUFFT alone, on the same points as inside cluster_amplitudes
        nufft = time.perf_counter() - t3
        t3 = time.perf_counter()
        amps = spi.cluster_amplitudes(amp, q, clusters)
        t4 = time.perf_counter()
        images = photons(cfg, model, seed, m, shots, amps)
        t5 = time.perf_counter()
        if m == 0:  # the same images as the simulator's own path (a few shots, outside the timings)
            check = spi.simulate_model(cfg, seed, m, shots=range(4))
            assert all(np.array_equal(p.image, im) for p, im in zip(check, images[:4], strict=True)), "photons drifted"
        t["model + shots"] += t1 - t0
        t["density"] += t2 - t1
        t["nufft"] += nufft
        t["cluster sum"] += (t4 - t3) - nufft  # rotations, box factor, phases and sums around the NUFFT
        t["photons"] += t5 - t4
    return {k: v / (models * per) for k, v in t.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patterns", type=int, default=4000)
    parser.add_argument("--config", default="configs/sim_spi.yaml")
    args = parser.parse_args()
    config = load(args.config)
    cores = os.cpu_count() or 1
    n = args.patterns

    stages = breakdown(config)
    one = rate(config, n // 2, workers=1)
    runs = sorted(rate(config, n, workers=cores) for _ in range(3))  # this shared VM varies by ~10 %
    many = runs[1]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate.simulate(config, n, tmp, workers=cores)
        end_to_end = n / (time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"SPI simulator, {'x'.join(map(str, config.sim.detector.pixels))} px, {n} patterns, {cores} cores")
    print(f"{'measure':<42}{'value':>12}")
    print(f"{'patterns/s, 1 process':<42}{one:>12.0f}")
    print(f"{f'patterns/s, {cores} processes (median of 3)':<42}{many:>12.0f}   (min {runs[0]:.0f}, max {runs[2]:.0f})")
    print(f"{'parallel efficiency (vs 1 process)':<42}{many / one / cores:>12.2f}")
    print(f"{'patterns/s, spizoo simulate incl. CXI + PNG':<42}{end_to_end:>12.0f}")
    print(f"{'peak memory per worker (MB)':<42}{peak_mb:>12.0f}")
    total = sum(stages.values())
    for name, sec in stages.items():
        print(f"{'  ms/pattern ' + name:<42}{sec * 1e3:>9.2f} ({sec / total:4.0%})")
    print(
        json.dumps(
            {
                "benchmark": "sim_spi",
                "patterns": n,
                "cores": cores,
                "patterns_per_s_1proc": round(one, 1),
                "patterns_per_s": round(many, 1),
                "patterns_per_s_min_max": [round(runs[0], 1), round(runs[2], 1)],
                "parallel_efficiency": round(many / one / cores, 3),
                "patterns_per_s_simulate_cli": round(end_to_end, 1),
                "peak_worker_mb": round(peak_mb),
                "ms_per_pattern": {k: round(v * 1e3, 3) for k, v in stages.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
