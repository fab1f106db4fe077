"""``spizoo classify`` against the bare model: frames/s on a generated CXI file of 128×128 frames, or of
module-stacked frames of a real detector summed into the model's 128×128 view.

    python benchmarks/classify.py [--frames 4096] [--batch-size 64] [--copies 4]
    python benchmarks/classify.py --detector AGIPD-1M --bin 8 [--frames 512]

An untrained ResNet-10 run directory (weights do not change the cost) classifies a CXI file of
``--frames`` Poisson frames with :func:`spizoo.serving.classify.classify_files` (reading, masking, the model,
results file); the bare rate is the same compiled model function on in-memory batches of the same size,
in the same run. Target: classify ≥ 0.8× bare. The run's steady rate is the marginal one, from classifying
the file once and ``--copies`` times (hard links): what each further frame costs, without the start-up (the
geometry's view, the first batch's read before the model can start), which is given in seconds. The
bare rate is measured just before and after each round's classify runs (this machine's speed drifts);
the figures are those of the round with the median ratio, and every round's ratio is in the JSON line.
With ``--detector``, the file holds (frames, modules, ss, fs) Poisson frames of that EXtra-geom detector with
its CrystFEL ``.geom`` beside it, and classify reads them through the view (``--bin``, 128×128 cells); the
view alone is timed too. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving.classify import classify_files
from spizoo.sim.geometry import Geometry, View

sys.path.insert(0, str(Path(__file__).parent))
from untrained_run import make_run  # noqa: E402

SIZE = 128
LCLS_HZ = 120


def write_cxi(path: Path, frames: int, shape=(SIZE, SIZE), mean: float = 2.0) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_dataset(
            "entry_1/instrument_1/detector_1/data", (frames, *shape), np.float32, chunks=(1, *shape)
        )
        for start in range(0, frames, 16):
            n = min(16, frames - start)
            data[start : start + n] = rng.poisson(mean, (n, *shape))
        f.create_dataset("entry_1/instrument_1/detector_1/mask", data=np.zeros(shape, np.uint32))
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--detector", help="EXtra-geom detector of module-stacked frames, e.g. AGIPD-1M")
    parser.add_argument("--bin", type=int, default=8, help="detector pixels per view cell (with --detector)")
    parser.add_argument("--copies", type=int, default=4, help="the file classified once and this many times")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare, classify, bare; the median is shown")
    args = parser.parse_args()
    view = view_fps = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, SIZE)
        cxi = root / "run_0001.cxi"
        if args.detector:
            layout = Geometry.named(args.detector, distance_m=0.7)
            layout.write_crystfel(cxi.with_suffix(".geom"))
            write_cxi(cxi, args.frames, layout.shape, mean=2.0 / args.bin**2)  # ~2 photons per view cell
            view = ViewFinder(cxi.with_suffix(".geom"), pixels=(SIZE, SIZE), bin=args.bin)
            stack = np.random.default_rng(2).poisson(0.03, (args.batch_size, *layout.shape)).astype(np.float32)
            one = View(layout, (SIZE, SIZE), args.bin)
            one(stack[:2])
            start = time.perf_counter()
            one(stack)
            view_fps = args.batch_size / (time.perf_counter() - start)
        else:
            write_cxi(cxi, args.frames)
        files = [cxi] + [root / f"copy_{k}.cxi" for k in range(1, args.copies)]
        for link in files[1:]:
            link.hardlink_to(cxi)
        predictor = load_predictor(str(run))
        batch = np.random.default_rng(1).poisson(2.0, (args.batch_size, SIZE, SIZE)).astype(np.float32)
        predictor.predict(batch)  # trace and warm up
        n_batches = args.frames // args.batch_size

        def bare_rate() -> float:
            start = time.perf_counter()
            for _ in range(n_batches):
                predictor.predict(batch)
            return n_batches * args.batch_size / (time.perf_counter() - start)

        def classify_seconds(paths: list[Path]) -> float:
            start = time.perf_counter()
            out = root / f"results_{time.perf_counter_ns()}.h5"
            classify_files(predictor, paths, out, batch_size=args.batch_size, view=view)
            return time.perf_counter() - start

        rounds = []  # (bare, classify marginal, classify once s, all copies s), bare around the classify runs
        for _ in range(args.rounds):
            before, t_once, t_all, after = (
                bare_rate(),
                classify_seconds(files[:1]),
                classify_seconds(files),
                bare_rate(),
            )
            rounds.append(((before + after) / 2, (args.copies - 1) * args.frames / (t_all - t_once), t_once, t_all))
    ratios = [marginal / bare for bare, marginal, _, _ in rounds]
    middle = rounds[int(np.argsort(ratios)[len(ratios) // 2])]  # the round of the median ratio
    bare_rate, classify_rate, t_once, t_all = middle
    start_up = max(t_once - args.frames / classify_rate, 0.0)
    whole_rate = args.copies * args.frames / t_all
    ratio = classify_rate / bare_rate
    frames = f"{args.detector} frames, {args.bin}x{args.bin}-binned to {SIZE}x{SIZE}" if view else f"{SIZE}x{SIZE}"
    print(f"ResNet-10 (float32, untrained), {args.frames} frames of {frames}, batch {args.batch_size}")
    print(f"{'path':<34}{'frames/s':>10}")
    print(f"{'bare model, in-memory batches':<34}{bare_rate:>10.0f}")
    if view_fps is not None:
        print(f"{'view alone (in memory)':<34}{view_fps:>10.0f}")
    print(f"{'spizoo classify, CXI -> HDF5':<34}{classify_rate:>10.0f}")
    print(f"{'classify / bare':<34}{ratio:>10.2f}")
    print(f"{'  start-up, s':<34}{start_up:>10.2f}")
    print(f"{f'  whole run of {args.copies * args.frames} frames':<34}{whole_rate:>10.0f}")
    print(f"{'LCLS at 120 Hz: classify keeps up':<34}{classify_rate / LCLS_HZ:>9.1f}x")
    print(
        json.dumps(
            {
                "benchmark": "classify",
                "detector": args.detector or f"flat {SIZE}x{SIZE}",
                "bin": args.bin if view else 1,
                "frames": args.frames,
                "view_fps": round(view_fps, 1) if view_fps else None,
                "bare_fps": round(bare_rate, 1),
                "classify_fps": round(classify_rate, 1),
                "start_up_s": round(start_up, 2),
                "whole_run_fps": round(whole_rate, 1),
                "ratio": round(ratio, 3),
                "ratios": [round(r, 3) for r in ratios],
                "times_lcls_120hz": round(classify_rate / LCLS_HZ, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
