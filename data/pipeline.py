"""tf.data input pipelines over spizoo TFRecords (docs/ARCHITECTURE.md, convention 4).

``make_dataset(file_pattern, cfg, *, training, seed)``: glob (an empty match is an error), seeded file
shuffle, parallel interleave, record shuffle, batch, decode, random flips when training (seed 000 §4.1),
centre crop (seed 000 keeps the central 128×128 pixels), normalisation, prefetch.

Files are checked against ``dataset_info.json``: a file whose size differs (truncated, half copied) is an
error naming it, or is left out with a warning naming it when ``skip_corrupt``; a record failing its
checksum ends its file, which then holds fewer records than promised, an error (or, skipping, a short file).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spizoo.data import files as dfiles
from spizoo.data import schema, tfrecord

INFO_FILE = "dataset_info.json"
VGG_SIZE = 224
VGG_CLIP_PHOTONS = 10.0
VGG_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input ("caffe" mode)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How examples become model inputs (YAML ``data:``).

    Attributes:
        crop: side of the centred square kept (seed 000: 128).
        normalize: ``dataset`` (subtract the training split's per-pixel mean image, divide by its standard
            deviation image, seed 000 §4.1), ``log`` (``log10(1 + max(x, 0))``) or ``none``.
        view: ``image`` (H, W, 1) or ``vgg`` (seed 000 §4.2: clip at 10 photons, scale to 0–255, three
            channels, 224×224, VGG16's caffe preprocessing; ``normalize`` is then ignored).
        target: ``label`` (hit class) or ``target`` (the 5-vector of regression data).
        batch_size, shuffle_buffer, cycle_length: batching, example shuffle buffer, files read at once. The
            buffer must span many particle models (examples arrive a model's 50–100 patterns at a time): in
            batches of few models, batch norm's training statistics carry each model's intensity and the
            inference-mode network fails (docs/RESULTS.md).
        flip: random horizontal and vertical flips when training.
        deterministic: same order on every run (slower); otherwise order may vary between runs.
        skip_corrupt: leave out files of the wrong size and cut files at a bad record, with a warning,
            instead of failing.
    """

    crop: int = 128
    normalize: str = "dataset"
    view: str = "image"
    target: str = "label"
    batch_size: int = 64
    shuffle_buffer: int = 8192
    cycle_length: int = 4
    flip: bool = True
    deterministic: bool = False
    skip_corrupt: bool = False

    def __post_init__(self):
        if self.crop < 8:
            raise ValueError(f"crop must be >= 8, got {self.crop}")
        for name, allowed in (
            ("normalize", ("dataset", "log", "none")),
            ("view", ("image", "vgg")),
            ("target", ("label", "target")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("batch_size", "shuffle_buffer", "cycle_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def load_dataset_info(directory: str | Path) -> dict:
    """``dataset_info.json`` of a generated dataset, with its statistics arrays loaded (``mean``, ``std``).

    ``directory`` is a local path or a URL TensorFlow reads (:mod:`spizoo.data.files`).

    Raises:
        FileNotFoundError: naming the directory, if it has no ``dataset_info.json``.
        ValueError: for a URL TensorFlow cannot read (``s3://``), saying what to do.
    """
    dfiles.check(directory)
    path = dfiles.join(directory, INFO_FILE)
    if not dfiles.exists(path):
        raise FileNotFoundError(
            f"no {INFO_FILE} in {directory}: make the dataset with `spizoo generate CONFIG --out {directory}` "
            "(a directory still named *.incomplete did not finish)"
        )
    info = json.loads(dfiles.read(path))
    stats = info.get("stats", {})
    for key in ("mean", "std"):
        name = stats.get(key)
        array = dfiles.join(directory, name) if name else None
        info[f"{key}_image"] = np.load(io.BytesIO(dfiles.read(array))) if array and dfiles.exists(array) else None
    return info


def match_files(file_pattern: str) -> list[str]:
    """The sorted files matching a glob (local, or a URL TensorFlow reads); none is an error naming the
    pattern."""
    files = dfiles.glob(file_pattern)
    if not files:
        raise FileNotFoundError(f"no files match {file_pattern!r}")
    return files


def centre_crop(array: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` × ``size`` pixels of a 2D array (seed 000 §4.1)."""
    h, w = array.shape
    top, left = (h - size) // 2, (w - size) // 2
    return array[top : top + size, left : left + size]


class Examples(NamedTuple):
    """The records of a (test) split in memory, in file order (:func:`load_examples`)."""

    images: np.ndarray  # (n, crop, crop) float32, centre-cropped
    labels: np.ndarray  # (n,) int
    targets: np.ndarray  # (n, TARGET_SIZE) float32
    shapes: np.ndarray  # (n,) str: the particle geometry, "?" where the record names none
    params: dict[str, np.ndarray]  # the scalar numeric simulation parameters every record carries, by name


def load_examples(file_pattern: str, crop: int) -> Examples:
    """Every record matching ``file_pattern``, in file order: the whole of a (test) split in memory, for
    evaluation. ``params`` holds each scalar numeric ``param/NAME`` (``circumradius_nm``,
    ``fluence_photons_per_um2``, ``n_particles``, …) that every record carries; experiment data has none.

    Raises:
        FileNotFoundError: if nothing matches; ValueError: if the files hold no examples, or a record that is
            not an example of the schema (naming the file and record).
    """
    images, labels, targets, shapes, params = [], [], [], [], []
    for path in match_files(file_pattern):
        with dfiles.open(path) as f:
            for i, record in enumerate(tfrecord.read_records(f, path)):
                try:
                    ex = schema.decode_example(record)
                except schema.ExampleError as err:
                    raise schema.ExampleError(f"{path}, record {i}: {err}") from None
                images.append(centre_crop(ex[schema.IMAGE], crop).astype(np.float32))
                labels.append(ex[schema.LABEL])
                targets.append(ex[schema.TARGET])
                shapes.append((ex.get(schema.PARAM_PREFIX + "shape") or ["?"])[0])
                params.append(_scalar_params(ex))
    if not images:
        raise ValueError(f"no examples in {file_pattern!r}")
    common = set.intersection(*(set(p) for p in params))
    return Examples(
        np.stack(images),
        np.array(labels),
        np.stack(targets),
        np.array(shapes),
        {name: np.array([p[name] for p in params]) for name in sorted(common)},
    )


def _scalar_params(example: dict) -> dict[str, float]:
    found = {}
    for key, value in example.items():
        if key.startswith(schema.PARAM_PREFIX) and isinstance(value, np.ndarray) and value.size == 1:
            if value.dtype.kind in "biuf":
                found[key.removeprefix(schema.PARAM_PREFIX)] = value.item()
    return found


def preprocess(images, cfg: DataConfig, info: dict | None):
    """The deterministic part of the pipeline on a (..., H, W) batch or image: crop, normalise, view.

    Also used by the exported models, so that serving preprocesses exactly as training did.
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    x = tf.convert_to_tensor(images, tf.float32)
    h, w = x.shape[-2], x.shape[-1]
    size = cfg.crop
    if h is not None and w is not None and (h < size or w < size):
        raise ValueError(
            f"frames of {h}x{w} pixels are smaller than the model's input, their central {size}x{size} pixels "
            f"(data.crop={size})"
        )
    if h is None or w is None:  # sizes known only when run (an exported signature takes any size)
        tf.debugging.assert_greater_equal(
            tf.shape(x)[-2:],
            size,
            message=f"frames must be at least {size}x{size} pixels (the crop the model was trained on)",
        )
    top, left = (tf.shape(x)[-2] - size) // 2, (tf.shape(x)[-1] - size) // 2
    x = x[..., top : top + size, left : left + size]
    if cfg.view == "vgg":
        x = tf.clip_by_value(x, 0.0, VGG_CLIP_PHOTONS) * (255.0 / VGG_CLIP_PHOTONS)
        x = tf.image.resize(x[..., None], (VGG_SIZE, VGG_SIZE))
        return tf.concat([x - VGG_MEAN_BGR[0], x - VGG_MEAN_BGR[1], x - VGG_MEAN_BGR[2]], axis=-1)
    if cfg.normalize == "dataset":
        if info is None or info.get("mean_image") is None:
            raise ValueError("normalize: dataset needs the training statistics of dataset_info.json")
        mean = centre_crop(info["mean_image"], size).astype(np.float32)
        std = centre_crop(info["std_image"], size).astype(np.float32)
        x = (x - mean) / np.maximum(std, 1e-6)
    elif cfg.normalize == "log":
        x = tf.math.log(1.0 + tf.maximum(x, 0.0)) / np.log(10.0)
    return x[..., None]


def _records(path, expected, compression: str, skip: bool):
    """One file's records. A corrupt record ends the file (``ignore_errors``); unless ``skip``, the count
    read is then checked against ``expected`` (a scalar tensor) in C++."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    ds = tf.data.TFRecordDataset(path, compression_type="GZIP" if compression == "gzip" else "").ignore_errors()
    return ds if skip else ds.apply(tf.data.experimental.assert_cardinality(expected))


def _check_files(files: list[str], info: dict, skip: bool) -> list[str]:
    """Files whose size matches ``dataset_info.json``; a truncated or padded file is an error naming it, or,
    with ``skip``, is left out with a warning naming it."""
    sizes: dict[str, int] = {}
    for split in info.get("splits", {}).values():
        sizes.update(split.get("bytes", {}))
    good = []
    for f in files:
        want = sizes.get(os.path.basename(f))
        have = dfiles.size(f)
        if want is None or want == have:
            good.append(f)
        elif skip:
            print(f"WARNING: skipping {f}: {have} bytes, dataset_info.json says {want} (truncated or corrupt)")
        else:
            raise ValueError(f"{f} is truncated or corrupt: {have} bytes, dataset_info.json says {want}")
    if not good:
        raise ValueError(f"no readable files among {files}")
    return good


def _training_transform(cfg: DataConfig, info: dict):
    """Random flips (seed 000 §4.1) and :func:`preprocess` in one XLA-compiled function: one pass over the
    batch instead of six, which is what keeps the pipeline at tens of thousands of images per second."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    @tf.function(jit_compile=cfg.view == "image")
    def transform(images, flips):
        images = tf.where(flips[:, :1, None], tf.reverse(images, [2]), images)
        images = tf.where(flips[:, 1:, None], tf.reverse(images, [1]), images)
        return preprocess(images, cfg, info)

    return transform


def _label_key(cfg: DataConfig) -> str:
    return schema.LABEL if cfg.target == "label" else schema.TARGET


def make_dataset(
    file_pattern: str,
    cfg: DataConfig,
    *,
    training: bool,
    seed: int = 0,
    info: dict | None = None,
    epochs: tuple[int, int] | None = None,
):
    """A batched ``tf.data.Dataset`` of (inputs, labels) from TFRecords matching ``file_pattern``.

    Args:
        file_pattern: glob of shard files, e.g. ``out/ds/spizoo-train.tfrecord-*``.
        cfg: the data config.
        training: shuffle files and examples and flip at random.
        seed: seeds the shuffles and flips.
        info: the dataset's info (default: ``dataset_info.json`` in the files' directory).
        epochs: ``(first, stop)``: instead of one pass reshuffled at each iteration, the passes for epochs
            ``first … stop-1`` in a row, each shuffled by ``(seed, epoch)`` alone and with full batches only,
            so that training resumed at epoch ``first`` sees exactly the data an uninterrupted run saw.

    Returns:
        Batches of (inputs (B, crop, crop, 1) float32 — or (B, 224, 224, 3) for the VGG view — and labels:
        int64 (B,) classes or float32 (B, 5) targets).

    Raises:
        FileNotFoundError: if nothing matches, or the directory has no ``dataset_info.json``.
        ValueError: for a file whose size differs from ``dataset_info.json`` or that it does not list.
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    files = match_files(file_pattern)
    if info is None:
        info = load_dataset_info(os.path.dirname(files[0]) or ".")
    files = _check_files(files, info, cfg.skip_corrupt)
    counts: dict[str, int] = {}
    for split in info.get("splits", {}).values():
        counts.update(split.get("files", {}))
    unlisted = [f for f in files if os.path.basename(f) not in counts]
    if unlisted:
        raise ValueError(f"{unlisted[0]} is not listed in the dataset's {INFO_FILE}; read only its own shard files")
    sizes = np.array([counts[os.path.basename(f)] for f in files], np.int64)
    # Under a multi-worker strategy each worker reads every file and keeps its share of the batches: shards
    # differ in length, so splitting by file would give workers unequal step counts.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    if epochs is None:
        ds = _pipeline(files, sizes, cfg, info, training=training, seed=seed, epoch=None)
        return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
    first, stop = epochs
    if not 0 <= first < stop:
        raise ValueError(f"epochs must be (first, stop) with 0 <= first < stop, got {epochs}")
    passes = [_pipeline(files, sizes, cfg, info, training=training, seed=seed, epoch=e) for e in range(first, stop)]
    return functools.reduce(lambda a, b: a.concatenate(b), passes).prefetch(tf.data.AUTOTUNE).with_options(options)


def check_records(file_pattern: str, info: dict) -> None:
    """Reads every record of the files matching ``file_pattern`` with its checksums, in Python (slow: for
    finding the file behind an error TensorFlow reports only as record counts).

    Raises:
        CorruptRecordError: naming the first corrupt file and the byte offset of its bad record.
    """
    for path in match_files(file_pattern):
        with dfiles.open(path) as raw:
            f = gzip.GzipFile(fileobj=raw, mode="rb") if info.get("compression") == "gzip" else raw
            for _ in tfrecord.read_records(f, path):
                pass


def count_examples(file_pattern: str, info: dict) -> int:
    """Examples in the files matching ``file_pattern``, by ``dataset_info.json``."""
    counts: dict[str, int] = {}
    for split in info.get("splits", {}).values():
        counts.update(split.get("files", {}))
    return sum(counts.get(os.path.basename(f), 0) for f in match_files(file_pattern))


def steps_per_epoch(file_pattern: str, cfg: DataConfig, info: dict) -> int:
    """Full batches in one pass over the files matching ``file_pattern`` (the ``epochs`` mode's epoch)."""
    return count_examples(file_pattern, info) // cfg.batch_size


def _pipeline(files, sizes, cfg: DataConfig, info: dict, *, training: bool, seed: int, epoch):
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    compression = info.get("compression", "none")
    spec = {k: v for k, v in schema.feature_spec().items() if k in (schema.IMAGE, schema.IMAGE_SHAPE, _label_key(cfg))}
    deterministic = cfg.deterministic or not training or epoch is not None
    reshuffle = epoch is None
    epoch_seed = seed if epoch is None else seed * 1_000_003 + epoch

    ds = tf.data.Dataset.from_tensor_slices((files, sizes))
    if training:
        ds = ds.shuffle(len(files), seed=epoch_seed, reshuffle_each_iteration=reshuffle)
    ds = ds.interleave(
        lambda f, n: _records(f, n, compression, cfg.skip_corrupt),
        cycle_length=min(cfg.cycle_length, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    if training:
        ds = ds.shuffle(cfg.shuffle_buffer, seed=epoch_seed + 1, reshuffle_each_iteration=reshuffle)
    ds = ds.batch(cfg.batch_size, drop_remainder=epoch is not None)
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter()))  # a batch number, for the flips' seeds

    height, width = (int(n) for n in info.get("image_shape", (-1, -1)))
    transform = _training_transform(cfg, info) if training and cfg.flip else None

    def decode(serialized, batch):
        ex = tf.io.parse_example(serialized, spec)
        shape = [height, width] if height > 0 else tf.cast(ex[schema.IMAGE_SHAPE][0], tf.int32)
        images = tf.reshape(tf.io.decode_raw(ex[schema.IMAGE], tf.float32), tf.concat([[-1], shape], 0))
        if transform is not None:
            flips = tf.random.stateless_uniform(
                [tf.shape(images)[0], 2], seed=tf.stack([batch, tf.constant(epoch_seed, tf.int64)])
            )
            return transform(images, flips < 0.5), ex[_label_key(cfg)]
        return preprocess(images, cfg, info), ex[_label_key(cfg)]

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
