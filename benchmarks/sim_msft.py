"""Milliseconds per 128×128 wide-angle MSFT pattern (configs/sim_msft.yaml), where the time goes, the
literal multislice method (192 slices, each zero-padded to 512 and FFT'd, as in seed 001 appendix B) side by
side on the same patterns, and the forward-fit baseline's seconds per reconstructed pattern.

    python benchmarks/sim_msft.py [--patterns 40] [--fit-starts 50] [--fit-iterations 50]

Accuracy: max |I/I_ref - 1| over pixels with I_ref > 1e-3 max, against the column method at 512 columns, on
three patterns. Multi-process rate: 8 × --patterns patterns, worker start-up included.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import os

os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spizoo.experiment import load  # noqa: E402
from spizoo.sim import forward_fit, icosahedral, msft, wideangle  # noqa: E402
from spizoo.sim.parallel import iterate_patterns  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patterns", type=int, default=40)
    parser.add_argument("--fit-starts", type=int, default=50)
    parser.add_argument("--fit-iterations", type=int, default=50)
    args = parser.parse_args()
    config = load("configs/sim_msft.yaml")
    cfg = config.sim
    det = cfg.detector.detector()
    q = det.q_inv_nm(cfg.wavelength_nm)

    # Stages, one process.
    t_cols = t_amp = t_all = 0.0
    for i in range(args.patterns):
        p = wideangle.simulate_pattern(cfg, config.seed, i)  # warm and draw the same parameters
        t0 = time.perf_counter()
        msft.column_intervals(cfg.shape, circumradius_nm=p.radius_nm, quaternion_wxyz=p.quaternion, columns=cfg.columns)
        t1 = time.perf_counter()
        msft.msft_amplitude(
            cfg.shape,
            circumradius_nm=p.radius_nm,
            quaternion_wxyz=p.quaternion,
            q_inv_nm=q,
            absorption_length_nm=cfg.absorption_length_nm,
            columns=cfg.columns,
            eps=cfg.nufft_eps,
        )
        t2 = time.perf_counter()
        wideangle.simulate_pattern(cfg, config.seed, i)
        t3 = time.perf_counter()
        t_cols, t_amp, t_all = t_cols + t1 - t0, t_amp + t2 - t1, t_all + t3 - t2
    n = args.patterns
    ms = {"columns": t_cols / n * 1e3, "nufft": (t_amp - t_cols) / n * 1e3, "image": (t_all - t_amp) / n * 1e3}
    ms_pattern = t_all / n * 1e3
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    sum(1 for _ in iterate_patterns(config.sim, config.seed, 8 * n, workers=cores))
    rate_all_cores = 8 * n / (time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the memory-hungry baseline

    # The literal multislice method and accuracies, on three patterns.
    acc = {"columns 192 (default)": [], "slices 192, pad 512": [], "slices 192, exact transforms": []}
    t_slices = 0.0
    for i in range(3):
        p = wideangle.simulate_pattern(cfg, config.seed, i)
        kw = {"circumradius_nm": p.radius_nm, "quaternion_wxyz": p.quaternion, "q_inv_nm": q}
        ref = np.abs(msft.msft_amplitude(cfg.shape, columns=512, **kw)) ** 2
        bright = ref > 1e-3 * ref.max()
        fast = np.abs(msft.msft_amplitude(cfg.shape, columns=cfg.columns, **kw)) ** 2
        t0 = time.perf_counter()
        slow = np.abs(msft.msft_slices(cfg.shape, slices=192, padding=512, **kw)) ** 2
        t_slices += time.perf_counter() - t0
        acc["columns 192 (default)"].append(float(np.abs(fast / ref - 1)[bright].max()))
        acc["slices 192, pad 512"].append(float(np.abs(slow / ref - 1)[bright].max()))
        exact = np.abs(msft.msft_slices(cfg.shape, slices=192, padding=None, **kw)) ** 2
        acc["slices 192, exact transforms"].append(float(np.abs(exact / ref - 1)[bright].max()))
    ms_slices = t_slices / 3 * 1e3

    # Forward fit of one pattern at the paper's budget.
    p = wideangle.simulate_pattern(cfg, config.seed, 1000)
    fit = forward_fit.fit_pattern(p.image, cfg, starts=args.fit_starts, iterations=args.fit_iterations, rng=0)
    fit_err = icosahedral.error_measures(fit.quaternion, fit.radius_nm, p.quaternion, p.radius_nm)

    print(f"MSFT, {cfg.detector.pixels[0]}x{cfg.detector.pixels[1]} px, {cfg.columns} columns, {n} patterns")
    print(f"{'measure':<52}{'value':>12}")
    print(f"{'ms/pattern, 1 process':<52}{ms_pattern:>12.1f}")
    for k, v in ms.items():
        print(f"{'  ms ' + k:<52}{v:>12.1f}")
    print(f"{f'patterns/s, {cores} processes':<52}{rate_all_cores:>12.1f}")
    print(f"{'ms/pattern, literal multislice (192 slices, pad 512)':<52}{ms_slices:>12.0f}")
    print(f"{'speed-up of the column method over it':<52}{ms_slices / ms_pattern:>12.0f}")
    for k, v in acc.items():
        print(f"{'max dI/I vs 512 columns, ' + k:<52}{max(v):>12.4f}")
    print(f"{f'forward fit {args.fit_starts}x{args.fit_iterations}: seconds per pattern':<52}{fit.seconds:>12.1f}")
    print(f"{'  forward simulations':<52}{fit.simulations:>12d}")
    print(f"{'  mean / max relative error':<52}{float(fit_err['mean']):>6.4f} / {float(fit_err['max']):.4f}")
    print(f"{'peak memory of the column method (MB)':<52}{peak_mb:>12.0f}")
    print(
        json.dumps(
            {
                "benchmark": "sim_msft",
                "ms_per_pattern": round(ms_pattern, 2),
                "ms_stages": {k: round(v, 2) for k, v in ms.items()},
                "patterns_per_s_all_cores": round(rate_all_cores, 2),
                "ms_per_pattern_multislice_192_pad512": round(ms_slices, 1),
                "speedup_vs_multislice": round(ms_slices / ms_pattern, 1),
                "max_rel_err_vs_512_columns": {k: round(max(v), 5) for k, v in acc.items()},
                "fit_seconds_per_pattern": round(fit.seconds, 1),
                "fit_simulations": fit.simulations,
                "fit_starts_iterations": [args.fit_starts, args.fit_iterations],
                "fit_mean_rel_err": round(float(fit_err["mean"]), 5),
                "fit_max_rel_err": round(float(fit_err["max"]), 5),
                "peak_mb": round(peak_mb),
            }
        )
    )


if __name__ == "__main__":
    main()
