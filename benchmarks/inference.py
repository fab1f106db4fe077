"""Inference speed of each model in float32 and mixed_bfloat16: images/s at batch 64, milliseconds for one
image at batch 1 (seed 001's network took 5 ms per image on a GTX 1060), and FLOP/s against this
machine's measured matmul peak.

    python benchmarks/inference.py [--repeats 5]

Each figure is the median of ``--repeats`` alternating timings. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
from model_flops import forward_flops, matmul_peak  # noqa: E402

from spizoo.models import registry  # noqa: E402


def timed(call, x) -> float:
    call(x).numpy()  # warm-up and tracing
    start = time.perf_counter()
    call(x).numpy()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    peaks = {"float32": matmul_peak("float32"), "mixed_bfloat16": matmul_peak("bfloat16")}
    batch = tf.random.uniform((64, 128, 128, 1))
    one = batch[:1]
    rows = {}
    for name in ("resnet10_classifier", "resnet34_regressor"):
        calls = {}
        for policy in peaks:
            keras.mixed_precision.set_global_policy(policy)
            model = registry.build(name, input_shape=(128, 128, 1))
            calls[policy] = (model, tf.function(lambda x, m=model: m(x, training=False), reduce_retracing=True))
        keras.mixed_precision.set_global_policy("float32")
        t64 = {p: [] for p in calls}
        t1 = {p: [] for p in calls}
        for _ in range(args.repeats):
            for p, (_, call) in calls.items():
                t64[p].append(timed(call, batch))
                t1[p].append(timed(call, one))
        for p, (model, _) in calls.items():
            rate = 64 / float(np.median(t64[p]))
            flops = forward_flops(model) * rate
            rows[(name, p)] = {
                "images_per_s_b64": rate,
                "ms_per_image_b64": 1e3 / rate,
                "ms_batch1": 1e3 * float(np.median(t1[p])),
                "gflops": flops / 1e9,
                "of_peak": flops / peaks[p],
            }
    f32, bf16 = peaks["float32"] / 1e9, peaks["mixed_bfloat16"] / 1e9
    print(f"inference, 128x128x1; matmul peak f32 {f32:.0f}, bf16 {bf16:.0f} GFLOP/s")
    print(f"{'model':<22}{'policy':<16}{'img/s b64':>10}{'ms/img b64':>11}{'ms b1':>8}{'GFLOP/s':>9}{'of peak':>8}")
    for (name, p), r in rows.items():
        print(
            f"{name:<22}{p:<16}{r['images_per_s_b64']:>10.0f}{r['ms_per_image_b64']:>11.2f}{r['ms_batch1']:>8.2f}"
            f"{r['gflops']:>9.1f}{r['of_peak']:>8.2f}"
        )
    speedup = {
        n: rows[(n, "mixed_bfloat16")]["images_per_s_b64"] / rows[(n, "float32")]["images_per_s_b64"] for n, _ in rows
    }
    for n, s in speedup.items():
        print(f"{'bf16 / f32 at batch 64, ' + n:<56}{s:>8.2f}")
    print(
        json.dumps(
            {
                "benchmark": "inference",
                "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "rows": {f"{n}/{p}": {k: round(v, 3) for k, v in r.items()} for (n, p), r in rows.items()},
                "bf16_speedup_b64": {k: round(v, 3) for k, v in speedup.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
