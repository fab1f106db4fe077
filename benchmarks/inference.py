"""Inference speed of each model in float32 and mixed_bfloat16, as the network ran before (Keras's layers,
batch norm as element-wise ops: the baseline) and as ``spizoo classify``, ``evaluate`` and ``export`` run it
now (:func:`spizoo.models.inference.fold_batch_norm`: batch norm folded into the convolutions), side by side on
the same batch: images/s at batch 64, milliseconds for one image at batch 1 (seed 001's network took 5 ms per
image on a GTX 1060), and FLOP/s against this machine's measured matmul peak. One more row, ``eager``: the
folded network at the default precision called eagerly, batch by batch, as ``spizoo evaluate`` and training's
feature extraction called it before they compiled the call.

    python benchmarks/inference.py [--repeats 5] [--profile]

Each figure is the median of ``--repeats`` alternating timings of the compiled forward pass. Target (issue
15): the default ≥ 2× the baseline's images/s for ResNet-10. Before this change the classify verbs ran the
network in float32 whatever the machine (models load under Keras's float32 policy); now they compute at
``--precision auto`` (bfloat16 on a CPU with bfloat16 arithmetic). ``--profile`` (or a missed target) prints
the time per op type of ResNet-10's default and baseline calls. Prints a table, then one JSON line.
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
from op_profile import op_times, print_profile  # noqa: E402

from spizoo.models import registry  # noqa: E402
from spizoo.models.inference import fold_batch_norm  # noqa: E402
from spizoo.models.precision import global_policy, resolve_precision  # noqa: E402

NAMES = ("resnet10_classifier", "resnet34_regressor")
POLICIES = ("float32", "mixed_bfloat16")
BUILDS = ("keras", "folded")  # the baseline; what the classify verbs run now


def timed(call, x) -> float:
    call(x).numpy()  # warm-up and tracing
    start = time.perf_counter()
    call(x).numpy()
    return time.perf_counter() - start


def built(name: str, policy: str) -> dict:
    """The baseline and the folded network of ``name`` in ``policy``, with the same weights and batch-norm
    statistics (moved off their initial values, as training leaves them)."""
    with global_policy(policy):
        keras.utils.set_random_seed(0)
        baseline = registry.build(name, input_shape=(128, 128, 1), keras_layers=True)
    rng = np.random.default_rng(0)
    for layer in baseline.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), np.ones(n)])
    models = {"keras": baseline, "folded": fold_batch_norm(baseline)}
    return {b: (m, tf.function(lambda x, m=m: m(x, training=False), reduce_retracing=True)) for b, m in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the op profile even if the target is met")
    args = parser.parse_args()
    peaks = {"float32": matmul_peak("float32"), "mixed_bfloat16": matmul_peak("bfloat16")}
    default = resolve_precision("auto")  # the classify verbs' precision on this machine
    if default not in POLICIES:
        raise SystemExit(f"--precision auto is {default} here (a GPU): this benchmark times the CPU's precisions")
    batch = tf.random.uniform((64, 128, 128, 1))
    one = batch[:1]
    rows, calls = {}, {}
    for name in NAMES:
        calls[name] = {(p, b): mc for p in POLICIES for b, mc in built(name, p).items()}
        folded = calls[name][(default, "folded")][0]
        calls[name][(default, "eager")] = (folded, lambda x, m=folded: m(x, training=False))
        t64 = {k: [] for k in calls[name]}
        t1 = {k: [] for k in calls[name]}
        for _ in range(args.repeats):
            for k, (_, call) in calls[name].items():
                t64[k].append(timed(call, batch))
                t1[k].append(timed(call, one))
        for (p, b), (model, _) in calls[name].items():
            rate = 64 / float(np.median(t64[(p, b)]))
            flops = forward_flops(model) * rate
            rows[(name, p, b)] = {
                "images_per_s_b64": rate,
                "ms_per_image_b64": 1e3 / rate,
                "ms_batch1": 1e3 * float(np.median(t1[(p, b)])),
                "gflops": flops / 1e9,
                "of_peak": flops / peaks[p],
            }
    f32, bf16 = peaks["float32"] / 1e9, peaks["mixed_bfloat16"] / 1e9
    print(f"inference, 128x128x1; matmul peak f32 {f32:.0f}, bf16 {bf16:.0f} GFLOP/s; default precision {default}")
    head = f"{'img/s b64':>10}{'ms/img b64':>11}{'ms b1':>8}{'GFLOP/s':>9}{'of peak':>8}"
    print(f"{'model':<22}{'policy':<16}{'build':<8}{head}")
    for (name, p, b), r in rows.items():
        print(
            f"{name:<22}{p:<16}{b:<8}{r['images_per_s_b64']:>10.0f}{r['ms_per_image_b64']:>11.2f}"
            f"{r['ms_batch1']:>8.2f}{r['gflops']:>9.1f}{r['of_peak']:>8.2f}"
        )
    rate = {k: r["images_per_s_b64"] for k, r in rows.items()}
    ratios = {}
    for n in NAMES:
        for p in POLICIES:
            ratios[f"folded / keras, {n}/{p}"] = rate[(n, p, "folded")] / rate[(n, p, "keras")]
        ratios[f"bf16 / f32 (folded), {n}"] = rate[(n, "mixed_bfloat16", "folded")] / rate[(n, "float32", "folded")]
        before = rate[(n, "float32", "keras")]
        best = max(rate[(n, p, "keras")] for p in POLICIES)
        ratios[f"default ({default} folded) / before (float32 keras), {n}"] = rate[(n, default, "folded")] / before
        ratios[f"default / the baseline at its faster precision, {n}"] = rate[(n, default, "folded")] / best
        eager = rate[(n, default, "eager")]
        ratios[f"compiled / eager call (default folded), {n}"] = rate[(n, default, "folded")] / eager
    for k, v in ratios.items():
        print(f"{k:<80}{v:>6.2f}")
    target = ratios[f"default ({default} folded) / before (float32 keras), {NAMES[0]}"]
    if args.profile or target < 2.0:
        x = batch
        for b in BUILDS:
            times = op_times(lambda b=b: calls[NAMES[0]][(default, b)][1](x).numpy())
            print_profile(f"{NAMES[0]} forward pass at batch 64, {default}, {b}: ms per call by op type", times)
    print(
        json.dumps(
            {
                "benchmark": "inference",
                "default_precision": default,
                "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "rows": {f"{n}/{p}/{b}": {k: round(v, 3) for k, v in r.items()} for (n, p, b), r in rows.items()},
                "ratios_b64": {k: round(v, 3) for k, v in ratios.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
