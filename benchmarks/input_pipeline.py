"""Training-mode images/s of ``make_dataset`` (128×128, normalise + flip + batch 64) against bare
``tf.data.TFRecordDataset`` reading of the same files, in one run.

    python benchmarks/input_pipeline.py [--images 16384] [--epochs 3]

The shards hold synthetic photon-count images in the spizoo schema (the input pipeline's cost does not
depend on what the pixels show), with a dataset_info.json and statistics like ``spizoo generate`` writes.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from spizoo.data import schema, tfrecord
from spizoo.data.pipeline import DataConfig, make_dataset

SHARDS = 16


def write_dataset(directory: Path, images: int, size: int = 128) -> None:
    rng = np.random.default_rng(0)
    per = images // SHARDS
    files, sizes = {}, {}
    for s in range(SHARDS):
        name = f"bench-train.tfrecord-{s:05d}-of-{SHARDS:05d}"
        with open(directory / name, "wb") as f:
            for i in range(per):
                img = rng.poisson(3.0, (size, size)).astype(np.float32)
                feats = schema.example_features(img, key=f"bench/{s}/{i}", model_index=s, label=int(i % 5))
                f.write(tfrecord.frame(schema.encode_example(feats)))
        files[name] = per
        sizes[name] = (directory / name).stat().st_size
    np.save(directory / "train_mean.npy", np.full((size, size), 3.0, np.float32))
    np.save(directory / "train_std.npy", np.full((size, size), np.sqrt(3.0), np.float32))
    info = {
        "splits": {"train": {"files": files}},
        "compression": "none",
        "stats": {"mean": "train_mean.npy", "std": "train_std.npy"},
    }
    (directory / "dataset_info.json").write_text(json.dumps(info))


def rate(make, epochs: int) -> float:
    for _ in make().take(20):  # warm-up: graph building, file cache
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in make():
            count += int(tf.shape(batch[0] if isinstance(batch, tuple) else batch)[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_dataset(directory, args.images)
        pattern = str(directory / "bench-train.tfrecord-*")
        files = sorted(directory.glob("bench-train.tfrecord-*"))

        def bare():
            ds = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
            ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE)
            return ds.batch(64).prefetch(tf.data.AUTOTUNE)

        cfg = DataConfig(crop=128, normalize="dataset", flip=True, batch_size=64)
        bare_runs, spizoo_runs = [], []
        for _ in range(3):  # alternate, so that neither gets the warmer machine; report medians
            bare_runs.append(rate(bare, args.epochs))
            spizoo_runs.append(rate(lambda: make_dataset(pattern, cfg, training=True), args.epochs))
        bare_rate, spizoo_rate = float(np.median(bare_runs)), float(np.median(spizoo_runs))
    print(
        f"input pipeline: {args.images} images 128x128, {SHARDS} shards, {os.cpu_count()} cores, {args.epochs} epochs"
    )
    print(f"{'pipeline (median of 3 alternating runs)':<52}{'images/s':>12}")
    print(f"{'bare TFRecordDataset (interleave, batch 64)':<52}{bare_rate:>12.0f}")
    print(f"{'make_dataset training (decode, normalise, flip, 64)':<52}{spizoo_rate:>12.0f}")
    print(f"{'ratio':<52}{spizoo_rate / bare_rate:>12.2f}")
    print(
        json.dumps(
            {
                "benchmark": "input_pipeline",
                "images": args.images,
                "bare_images_per_s": round(bare_rate),
                "make_dataset_images_per_s": round(spizoo_rate),
                "ratio": round(spizoo_rate / bare_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
