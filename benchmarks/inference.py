"""Inference speed of each model in float32 and mixed_bfloat16, built with Keras's batch norm and dropout
(the baseline) and with spizoo's (spizoo.models.layers, the default): images/s at batch 64, milliseconds for
one image at batch 1 (seed 001's network took 5 ms per image on a GTX 1060), and FLOP/s against this
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

LAYERS = {"keras": True, "spizoo": False}  # name → ``keras_layers``: the baseline, the default


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
            for layers, keras_layers in LAYERS.items():
                model = registry.build(name, input_shape=(128, 128, 1), keras_layers=keras_layers)
                call = tf.function(lambda x, m=model: m(x, training=False), reduce_retracing=True)
                calls[(policy, layers)] = (model, call)
        keras.mixed_precision.set_global_policy("float32")
        t64 = {k: [] for k in calls}
        t1 = {k: [] for k in calls}
        for _ in range(args.repeats):
            for k, (_, call) in calls.items():
                t64[k].append(timed(call, batch))
                t1[k].append(timed(call, one))
        for (p, layers), (model, _) in calls.items():
            rate = 64 / float(np.median(t64[(p, layers)]))
            flops = forward_flops(model) * rate
            rows[(name, p, layers)] = {
                "images_per_s_b64": rate,
                "ms_per_image_b64": 1e3 / rate,
                "ms_batch1": 1e3 * float(np.median(t1[(p, layers)])),
                "gflops": flops / 1e9,
                "of_peak": flops / peaks[p],
            }
    f32, bf16 = peaks["float32"] / 1e9, peaks["mixed_bfloat16"] / 1e9
    print(f"inference, 128x128x1; matmul peak f32 {f32:.0f}, bf16 {bf16:.0f} GFLOP/s")
    head = f"{'img/s b64':>10}{'ms/img b64':>11}{'ms b1':>8}{'GFLOP/s':>9}{'of peak':>8}"
    print(f"{'model':<22}{'policy':<16}{'layers':<8}{head}")
    for (name, p, layers), r in rows.items():
        print(
            f"{name:<22}{p:<16}{layers:<8}{r['images_per_s_b64']:>10.0f}{r['ms_per_image_b64']:>11.2f}"
            f"{r['ms_batch1']:>8.2f}{r['gflops']:>9.1f}{r['of_peak']:>8.2f}"
        )
    rate = {k: r["images_per_s_b64"] for k, r in rows.items()}
    names = ("resnet10_classifier", "resnet34_regressor")
    layer_speedup = {f"{n}/{p}": rate[(n, p, "spizoo")] / rate[(n, p, "keras")] for n in names for p in peaks}
    speedup = {n: rate[(n, "mixed_bfloat16", "spizoo")] / rate[(n, "float32", "spizoo")] for n in names}
    for k, v in layer_speedup.items():
        print(f"{'spizoo / keras layers at batch 64, ' + k:<64}{v:>8.2f}")
    for n, v in speedup.items():
        print(f"{'bf16 / f32 at batch 64 (spizoo layers), ' + n:<64}{v:>8.2f}")
    print(
        json.dumps(
            {
                "benchmark": "inference",
                "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "rows": {f"{n}/{p}/{la}": {k: round(v, 3) for k, v in r.items()} for (n, p, la), r in rows.items()},
                "layer_speedup_b64": {k: round(v, 3) for k, v in layer_speedup.items()},
                "bf16_speedup_b64": {k: round(v, 3) for k, v in speedup.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
