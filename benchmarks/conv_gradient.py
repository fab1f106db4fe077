"""Kernel gradient of each of ResNet-34's convolution shapes at batch 64: oneDNN's ``Conv2DBackpropFilter`` in
float32 and in bfloat16, and in bfloat16 the patch matmul ``patches(x)ᵀ · dy`` that ``spizoo.models.layers.Conv2D``
runs (its :func:`~spizoo.models.layers.patch_kernel_gradient`), side by side on the same tensors (ms per call,
best of five runs of ten calls).

    python benchmarks/conv_gradient.py [--batch 64]

``Conv2D`` takes the patch matmul where its output map has ≤ ``PATCH_GRADIENT_POSITIONS`` positions (marked
``*``); this table is what set that rule. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import tensorflow as tf

from spizoo.models.layers import PATCH_GRADIENT_POSITIONS, patch_kernel_gradient

# (input size, input channels, output channels, kernel, stride) of ResNet-34 on 128 × 128 inputs (models/resnet.py)
SHAPES = [
    (128, 1, 64, 7, 2),
    (32, 64, 64, 3, 2),
    (16, 64, 64, 3, 1),
    (16, 64, 128, 3, 2),
    (8, 128, 128, 3, 1),
    (8, 128, 256, 3, 2),
    (4, 256, 256, 3, 1),
    (4, 256, 512, 3, 2),
    (2, 512, 512, 3, 1),
    (32, 64, 64, 1, 2),
    (16, 64, 128, 1, 2),
    (8, 128, 256, 1, 2),
    (4, 256, 512, 1, 2),
]


def best_ms(f, calls: int = 10, runs: int = 5) -> float:
    f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            out = f()
        out.numpy()
        times.append((time.perf_counter() - start) / calls)
    return min(times) * 1e3


def timings(batch: int, size: int, c_in: int, c_out: int, k: int, s: int) -> dict:
    out = {}
    step = [1, s, s, 1]
    for dtype in (tf.float32, tf.bfloat16):
        x = tf.cast(tf.random.normal((batch, size, size, c_in), seed=1), dtype)
        dy = tf.cast(tf.random.normal((batch, size // s, size // s, c_out), seed=2), dtype)
        onednn = tf.function(
            lambda x=x, dy=dy: tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=[k, k, c_in, c_out], out_backprop=dy, strides=step, padding="SAME"
            )
        )
        out[f"onednn_{dtype.name}"] = best_ms(onednn)
    patches = tf.function(  # on the loop's last, bfloat16, tensors
        lambda: patch_kernel_gradient(tf, x, dy, (k, k, c_in, c_out), (s, s), "same")
    )
    out["patches_bfloat16"] = best_ms(patches)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    rows = []
    print(f"kernel gradient at batch {args.batch}, ms per call (* = Conv2D takes the patch matmul)")
    print(f"{'input -> output channels, kernel, stride':<34}{'f32':>8}{'bf16':>8}{'bf16 patches':>14}")
    for size, c_in, c_out, k, s in SHAPES:
        t = timings(args.batch, size, c_in, c_out, k, s)
        patched = (size // s) ** 2 <= PATCH_GRADIENT_POSITIONS
        label = f"{size}x{size}x{c_in} -> {c_out}, {k}x{k}, /{s}" + (" *" if patched else "")
        print(f"{label:<34}{t['onednn_float32']:>8.2f}{t['onednn_bfloat16']:>8.2f}{t['patches_bfloat16']:>14.2f}")
        rows.append({"shape": [size, c_in, c_out, k, s], "patched": patched, **{n: round(v, 3) for n, v in t.items()}})
    used = [r for r in rows if r["patched"]]
    bf16 = sum(r["onednn_bfloat16"] for r in used)
    chosen = sum(r["patches_bfloat16"] for r in used)
    print(f"{'patched shapes, oneDNN bf16 / patches (one call each)':<56}{bf16 / chosen:>8.2f}")
    speedup = round(bf16 / chosen, 3)
    summary = {"benchmark": "conv_gradient", "batch": args.batch, "rows": rows, "patched_speedup": speedup}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
