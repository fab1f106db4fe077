"""Training images/s of each model at batch 64 in float32 and mixed_bfloat16, built with Keras's convolution,
batch norm and dropout (the implementation before spizoo.models.layers: the baseline) and with spizoo's (the
default), side by side on the same batch, and for ResNet-34 spizoo's without the patch kernel gradient of
``Conv2D`` (``no-patch``); achieved FLOP/s against this machine's measured matmul peak; and ``spizoo train``'s
input pipeline against in-memory tensors.

    python benchmarks/train_step.py [--steps 6] [--profile]

The model rows time ``train_on_batch`` on an in-memory batch; the input-pipeline rows compare ``fit`` fed
from TFRecords with ``fit`` fed from memory over 60 steps (most of one 4,096-record epoch; ``fit`` starts a
new pass each call), and give the seconds to a new pass's first batch (reading the shuffle buffer's records),
which an epoch pays once. Training FLOPs are taken as 3× the forward FLOPs (forward,
and backward for inputs and weights). Each figure is the median of three alternating runs (this VM's
speed drifts). Targets: ResNet-10 ≥ 2× the baseline; mixed_bfloat16 ≥ 1.4× float32 for both models. For a
model that misses one (or with ``--profile``), the time per op type of its default steps is printed.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))
from input_pipeline import write_dataset  # noqa: E402
from model_flops import forward_flops, matmul_peak  # noqa: E402
from op_profile import op_times, print_profile  # noqa: E402

from spizoo.data.pipeline import DataConfig, load_dataset_info, make_dataset  # noqa: E402
from spizoo.models import registry  # noqa: E402
from spizoo.models.layers import Conv2D  # noqa: E402
from spizoo.models.precision import resolve_precision  # noqa: E402

BATCH = 64
POLICIES = ("float32", "mixed_bfloat16")
LAYERS = {"keras": True, "spizoo": False}  # name → ``keras_layers``: the baseline, the default
SMALL_MAPS = ("resnet34_regressor",)  # the model with maps of ≤ 4 × 4, where Conv2D's patch gradient applies


def compiled(name: str, policy: str, layers: str = "spizoo"):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = registry.build(name, input_shape=(128, 128, 1), keras_layers=LAYERS[layers])
    regression = name.endswith("regressor")
    loss = "mse" if regression else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=False)  # as spizoo train does
    return model, regression


def fit_rate(model, data, steps: int) -> float:
    """Images/s of ``model.fit`` over ``steps`` batches after a warm-up epoch."""
    model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * BATCH / (time.perf_counter() - start)


def batch_of(regression: bool):
    x = tf.random.uniform((BATCH, 128, 128, 1), seed=1)
    y = tf.random.uniform((BATCH, 5), -1, 1, seed=2) if regression else tf.random.uniform((BATCH,), 0, 5, tf.int64, 3)
    return x, y


def step_rate(model, regression: bool, steps: int) -> float:
    """Images/s of ``train_on_batch`` on one in-memory batch: the model's own training speed."""
    x, y = batch_of(regression)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * BATCH / (time.perf_counter() - start)


def alternating(measures: dict, repeats: int = 3, reduce=np.median) -> dict:
    """``reduce`` (median, or max: the best) of ``repeats`` runs of each measure, run in turn so that none
    gets the warmer machine."""
    runs = {k: [] for k in measures}
    for _ in range(repeats):
        for k, f in measures.items():
            runs[k].append(f())
    return {k: float(reduce(v)) for k, v in runs.items()}


def synthetic(regression: bool):
    x = tf.random.uniform((BATCH, 128, 128, 1))
    y = tf.random.uniform((BATCH, 5), -1, 1) if regression else tf.random.uniform((BATCH,), 0, 5, tf.int64)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--profile", action="store_true", help="print the op profile even if the targets are met")
    args = parser.parse_args()
    peaks = {"float32": matmul_peak("float32"), "mixed_bfloat16": matmul_peak("bfloat16")}
    default = resolve_precision("auto")  # spizoo train's policy on this machine
    rows, profiled = {}, {}
    for name in ("resnet10_classifier", "resnet34_regressor"):
        steps = args.steps * (2 if name.startswith("resnet10") else 1)
        variants = {(p, layers): compiled(name, p, layers) for p in POLICIES for layers in LAYERS}
        if name in SMALL_MAPS:  # spizoo's layers with oneDNN's kernel gradient: what the patch gradient buys
            variants[("mixed_bfloat16", "no-patch")] = off = compiled(name, "mixed_bfloat16")
            for layer in off[0].layers:
                if isinstance(layer, Conv2D):
                    layer.patch_gradient_positions = 0
        runs = {k: (lambda m=m, n=steps: step_rate(m[0], m[1], n)) for k, m in variants.items()}
        for (policy, layers), rate in alternating(runs).items():
            flops = 3 * forward_flops(variants[(policy, layers)][0]) * rate
            rows[(name, policy, layers)] = {
                "images_per_s": rate,
                "gflops": flops / 1e9,
                "of_peak": flops / peaks[policy],
            }
        profiled[name] = variants  # the models an op profile times
    # The input pipeline's cost in training: the same model fed from TFRecords vs from memory.
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), 4096)
        info = load_dataset_info(tmp)
        model, _ = compiled("resnet10_classifier", default)
        cfg = DataConfig(crop=128, normalize="none", batch_size=BATCH)
        records = make_dataset(str(Path(tmp) / "bench-train*"), cfg, training=True, info=info, epochs=(0, 1))
        first_batch = []
        for _ in range(3):
            start = time.perf_counter()
            next(iter(records))
            first_batch.append(time.perf_counter() - start)
        steps = 60
        # The best of three: a 40-s fit here runs either at full speed or at one fixed lower rate (this VM's
        # CPU is throttled at times; 93.8 images/s to four digits in three of nine runs on 2026-12-05), and
        # which run is throttled is luck, not the feed.
        feed = alternating(
            {
                "records": lambda: fit_rate(model, records, steps),
                "memory": lambda: fit_rate(model, synthetic(False), steps),
            },
            reduce=max,
        )
        from_records, in_memory = feed["records"], feed["memory"]

    names = ("resnet10_classifier", "resnet34_regressor")
    rate = {k: r["images_per_s"] for k, r in rows.items()}
    layer_speedup = {f"{n}/{p}": rate[(n, p, "spizoo")] / rate[(n, p, "keras")] for n in names for p in POLICIES}
    patch_speedup = {
        n: rate[(n, "mixed_bfloat16", "spizoo")] / rate[(n, "mixed_bfloat16", "no-patch")] for n in SMALL_MAPS
    }
    bf16_speedup = {n: rate[(n, "mixed_bfloat16", "spizoo")] / rate[(n, "float32", "spizoo")] for n in names}
    # spizoo train's default step (mixed_precision auto: bfloat16 on a CPU with bf16 instructions, else float32)
    # against the baseline's faster precision.
    default_speedup = {n: rate[(n, default, "spizoo")] / max(rate[(n, p, "keras")] for p in POLICIES) for n in names}
    f32, bf16 = peaks["float32"] / 1e9, peaks["mixed_bfloat16"] / 1e9
    print(f"training at batch {BATCH}, 128x128x1; matmul peak f32 {f32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s")
    print(f"{'model':<22}{'policy':<16}{'layers':<8}{'images/s':>10}{'GFLOP/s':>10}{'of peak':>9}")
    for (name, policy, layers), r in rows.items():
        print(f"{name:<22}{policy:<16}{layers:<8}{r['images_per_s']:>10.1f}{r['gflops']:>10.1f}{r['of_peak']:>9.2f}")
    for k, v in layer_speedup.items():
        print(f"{'spizoo / keras layers, ' + k:<56}{v:>9.2f}")
    for n, v in bf16_speedup.items():
        print(f"{'bf16 / f32 (spizoo layers), ' + n:<56}{v:>9.2f}")
    for n, v in patch_speedup.items():
        print(f"{'bf16 patch / oneDNN kernel gradient, ' + n:<56}{v:>9.2f}")
    for n, v in default_speedup.items():
        print(f"{f'spizoo train default ({default}) / best baseline, ' + n:<56}{v:>9.2f}")
    print(f"{'resnet10 fit from TFRecords, images/s (best of 3)':<56}{from_records:>9.1f}")
    print(f"{'resnet10 fit from memory, images/s (best of 3)':<56}{in_memory:>9.1f}")
    print(f"{f'resnet10 fit from TFRecords / from memory ({default})':<56}{from_records / in_memory:>9.2f}")
    print(f"{'seconds to the first batch of a pass over TFRecords':<56}{np.median(first_batch):>9.2f}")
    short = {
        "resnet10_classifier": default_speedup["resnet10_classifier"] < 2.0
        or bf16_speedup["resnet10_classifier"] < 1.4,
        "resnet34_regressor": bf16_speedup["resnet34_regressor"] < 1.4,
    }
    for name in names:
        if not (short[name] or args.profile):
            continue
        for policy in POLICIES:
            m, regression = profiled[name][(policy, "spizoo")]
            x, y = batch_of(regression)
            times = op_times(lambda m=m, x=x, y=y: m.train_on_batch(x, y))
            print_profile(f"{name} training step, {policy}, spizoo layers: ms per step by op type", times)
    keras.mixed_precision.set_global_policy("float32")
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "batch": BATCH,
                "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "rows": {f"{n}/{p}/{la}": {k: round(v, 3) for k, v in r.items()} for (n, p, la), r in rows.items()},
                "layer_speedup": {k: round(v, 3) for k, v in layer_speedup.items()},
                "bf16_speedup": {k: round(v, 3) for k, v in bf16_speedup.items()},
                "patch_gradient_speedup": {k: round(v, 3) for k, v in patch_speedup.items()},
                "default_policy": default,
                "default_speedup": {k: round(v, 3) for k, v in default_speedup.items()},
                "fit_images_per_s": {"records": round(from_records, 1), "memory": round(in_memory, 1)},
                "records_over_memory": round(from_records / in_memory, 3),
                "first_batch_s": round(float(np.median(first_batch)), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
