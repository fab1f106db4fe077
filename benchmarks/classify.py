"""``spizoo classify`` against the bare model: frames/s on a generated CXI file of 128×128 frames.

    python benchmarks/classify.py [--frames 4096] [--batch-size 64]

An untrained ResNet-10 run directory (weights do not change the cost) classifies a CXI file of
``--frames`` Poisson frames with :func:`spizoo.serving.classify.classify_files` (reading, masking, the model,
results file); the bare rate is the same compiled model function on in-memory batches of the same size,
in the same run. Target: classify ≥ 0.8× bare. Each rate is the better of two alternating runs.
Prints a table, then one JSON line.
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
from spizoo.serving.classify import classify_files

sys.path.insert(0, str(Path(__file__).parent))
from untrained_run import make_run  # noqa: E402

SIZE = 128
LCLS_HZ = 120


def write_cxi(path: Path, frames: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_dataset(
            "entry_1/instrument_1/detector_1/data", (frames, SIZE, SIZE), np.float32, chunks=(1, SIZE, SIZE)
        )
        for start in range(0, frames, 256):
            n = min(256, frames - start)
            data[start : start + n] = rng.poisson(2.0, (n, SIZE, SIZE))
        f.create_dataset("entry_1/instrument_1/detector_1/mask", data=np.zeros((SIZE, SIZE), np.uint32))
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, SIZE)
        cxi = root / "run_0001.cxi"
        write_cxi(cxi, args.frames)
        predictor = load_predictor(str(run))
        batch = np.random.default_rng(1).poisson(2.0, (args.batch_size, SIZE, SIZE)).astype(np.float32)
        predictor.predict(batch)  # trace and warm up
        bare, full = [], []
        for attempt in range(2):
            n_batches = args.frames // args.batch_size
            start = time.perf_counter()
            for _ in range(n_batches):
                predictor.predict(batch)
            bare.append(n_batches * args.batch_size / (time.perf_counter() - start))
            start = time.perf_counter()
            classify_files(predictor, [cxi], root / f"results_{attempt}.h5", batch_size=args.batch_size)
            full.append(args.frames / (time.perf_counter() - start))
    bare_rate, classify_rate = max(bare), max(full)
    ratio = classify_rate / bare_rate
    print(f"ResNet-10 (float32, untrained), {args.frames} frames of {SIZE}x{SIZE}, batch {args.batch_size}")
    print(f"{'path':<34}{'frames/s':>10}")
    print(f"{'bare model, in-memory batches':<34}{bare_rate:>10.0f}")
    print(f"{'spizoo classify, CXI -> HDF5':<34}{classify_rate:>10.0f}")
    print(f"{'classify / bare':<34}{ratio:>10.2f}")
    print(f"{'LCLS at 120 Hz: classify keeps up':<34}{classify_rate / LCLS_HZ:>9.1f}x")
    print(
        json.dumps(
            {
                "benchmark": "classify",
                "frames": args.frames,
                "bare_fps": round(bare_rate, 1),
                "classify_fps": round(classify_rate, 1),
                "ratio": round(ratio, 3),
                "times_lcls_120hz": round(classify_rate / LCLS_HZ, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
