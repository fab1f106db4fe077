"""Training images/s of each model at batch 64 in float32 and mixed_bfloat16, achieved FLOP/s against this
machine's measured matmul peak, and ``spizoo train``'s input pipeline against in-memory tensors.

    python benchmarks/train_step.py [--steps 6]

The model rows time ``train_on_batch`` on an in-memory batch; the input-pipeline row compares ``fit`` fed
from TFRecords with ``fit`` fed from memory. Training FLOPs are taken as 3× the forward FLOPs (forward,
and backward for inputs and weights). Each figure is the median of three alternating runs (this VM's
speed drifts by ~10 %). Prints a table, then one JSON line.
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

from spizoo.data.pipeline import DataConfig, load_dataset_info, make_dataset  # noqa: E402
from spizoo.models import registry  # noqa: E402

BATCH = 64


def compiled(name: str, policy: str):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = registry.build(name, input_shape=(128, 128, 1))
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


def step_rate(model, regression: bool, steps: int) -> float:
    """Images/s of ``train_on_batch`` on one in-memory batch: the model's own training speed."""
    x = tf.random.uniform((BATCH, 128, 128, 1))
    y = tf.random.uniform((BATCH, 5), -1, 1) if regression else tf.random.uniform((BATCH,), 0, 5, tf.int64)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * BATCH / (time.perf_counter() - start)


def alternating(measures: dict, repeats: int = 3) -> dict:
    """Median of ``repeats`` runs of each measure, run in turn so that none gets the warmer machine."""
    runs = {k: [] for k in measures}
    for _ in range(repeats):
        for k, f in measures.items():
            runs[k].append(f())
    return {k: float(np.median(v)) for k, v in runs.items()}


def synthetic(regression: bool):
    x = tf.random.uniform((BATCH, 128, 128, 1))
    y = tf.random.uniform((BATCH, 5), -1, 1) if regression else tf.random.uniform((BATCH,), 0, 5, tf.int64)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    peaks = {"float32": matmul_peak("float32"), "mixed_bfloat16": matmul_peak("bfloat16")}
    rows = {}
    for name in ("resnet10_classifier", "resnet34_regressor"):
        steps = args.steps * (4 if name.startswith("resnet10") else 1)
        models = {p: compiled(name, p) for p in ("float32", "mixed_bfloat16")}
        runs = {p: (lambda m=models[p], n=steps: step_rate(m[0], m[1], n)) for p in models}
        rates = alternating(runs)
        for policy, rate in rates.items():
            flops = 3 * forward_flops(models[policy][0]) * rate
            rows[(name, policy)] = {"images_per_s": rate, "gflops": flops / 1e9, "of_peak": flops / peaks[policy]}
    # The input pipeline's cost in training: the same model fed from TFRecords vs from memory.
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), 4096)
        info = load_dataset_info(tmp)
        model, _ = compiled("resnet10_classifier", "mixed_bfloat16")
        cfg = DataConfig(crop=128, normalize="none", batch_size=BATCH)
        records = make_dataset(str(Path(tmp) / "bench-train*"), cfg, training=True, info=info, epochs=(0, 1))
        steps = args.steps * 4
        feed = alternating(
            {
                "records": lambda: fit_rate(model, records, steps),
                "memory": lambda: fit_rate(model, synthetic(False), steps),
            }
        )
        from_records, in_memory = feed["records"], feed["memory"]
    keras.mixed_precision.set_global_policy("float32")

    f32, bf16 = peaks["float32"] / 1e9, peaks["mixed_bfloat16"] / 1e9
    print(f"training at batch {BATCH}, 128x128x1; matmul peak f32 {f32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s")
    print(f"{'model':<22}{'policy':<16}{'images/s':>10}{'GFLOP/s':>10}{'of peak':>9}")
    for (name, policy), r in rows.items():
        print(f"{name:<22}{policy:<16}{r['images_per_s']:>10.1f}{r['gflops']:>10.1f}{r['of_peak']:>9.2f}")
    speedups = {n: rows[(n, "mixed_bfloat16")]["images_per_s"] / rows[(n, "float32")]["images_per_s"] for n, _ in rows}
    for n, s in speedups.items():
        print(f"{'bf16 / f32, ' + n:<48}{s:>9.2f}")
    print(f"{'resnet10 fit from TFRecords / from memory (bf16)':<48}{from_records / in_memory:>9.2f}")
    print(
        json.dumps(
            {
                "benchmark": "train_step",
                "batch": BATCH,
                "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                "rows": {f"{n}/{p}": {k: round(v, 3) for k, v in r.items()} for (n, p), r in rows.items()},
                "bf16_speedup": {k: round(v, 3) for k, v in speedups.items()},
                "records_over_memory": round(from_records / in_memory, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
