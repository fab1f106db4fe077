"""``spizoo generate``: simulate → augment → ``tf.train.Example`` → sharded TFRecords, with Apache Beam.

Elements are *units*: one particle model of an SPI config (its ``patterns_per_model`` patterns), or
``dataset.unit_size`` consecutive patterns of an MSFT config. A unit's split comes from a hash of its model
index, so the patterns of one particle model never straddle train/validation/test, and its shard from
another hash. Keys are ``<config-hash>/<model-index>/<shot>[/<copy>]``.

The payload stays on the workers: each unit's examples go, in the fused simulate stage, to a chunk file
named by its model index (written under a temporary name, then renamed: idempotent under retries, and a
rerun resumes from the chunks already there); only (shard, model index, path, counts) is shuffled, and each
shard is the concatenation of its chunks in model-index order (TFRecord records are self-delimiting), so
the output is byte-identical whatever the runner, worker count or order of work. Per-pixel mean and
standard deviation of the training split (Chan et al.'s parallel variance, :class:`MeanStd`) are merged in a
fixed order too: a shard's chunks by model index, then the shards by number.

The pipeline is one chain (units → chunks → shards → statistics) of single-output ParDos and GroupByKeys,
with the counters computed from the shards' summaries rather than the runner's metrics: so it also runs on
runners that support no more than that, such as Beam's DaskRunner (``--runner DaskRunner
--dask_client_address HOST:PORT``), which computes only the pipeline's last transform and its inputs, feeds
every output of a multi-output ParDo to each consumer, and reports no metrics.

Everything is written under ``OUT.incomplete/`` and published as ``OUT`` only when the pipeline succeeds
(:func:`spizoo.beam_pipelines.storage.publish`: a rename on a file system; on an object store such as
``s3://`` or ``gs://``, a copy completed by ``dataset_info.json`` uploaded last). All of it goes through
:mod:`spizoo.beam_pipelines.storage`, so ``OUT`` is a local path or any URL Beam writes.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import logging
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

import spizoo
from spizoo import sim
from spizoo.beam_pipelines import storage
from spizoo.beam_pipelines.config import DatasetConfig  # noqa: F401 - re-exported for users
from spizoo.beam_pipelines.runners import run_pipeline
from spizoo.core import seeds
from spizoo.core.config import config_hash, to_dict
from spizoo.data import schema, tfrecord
from spizoo.data.frame_check import merged_range, value_range
from spizoo.sim import spi

log = logging.getLogger(__name__)
INFO_FILE = "dataset_info.json"
COUNTER_NAMESPACE = "spizoo"


def _hash01(*parts) -> float:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def split_of(config, model_index: int) -> str:
    """The split of a particle model: a stable hash of (seed, model index) against the split fractions."""
    u, acc = _hash01("split", config.seed, model_index), 0.0
    names = list(config.dataset.splits)
    for name in names:
        acc += config.dataset.splits[name]
        if u < acc:
            return name
    return names[-1]


def shard_of(config, split: str, model_index: int) -> int:
    return int(_hash01("shard", config.seed, model_index) * config.dataset.shards[split])


def shard_name(config, split: str, shard: int) -> str:
    n = config.dataset.shards[split]
    suffix = ".gz" if config.dataset.compression == "gzip" else ""
    return f"{config.dataset.name}-{split}.tfrecord-{shard:05d}-of-{n:05d}{suffix}"


def units(config) -> list[tuple[int, int, int]]:
    """(model index, first global pattern index, stop) of every unit."""
    n = config.dataset.patterns
    size = config.sim.patterns_per_model if isinstance(config.sim, spi.SpiConfig) else config.dataset.unit_size
    return [(m, m * size, min((m + 1) * size, n)) for m in range(-(-n // size))]


def unit_words(config) -> tuple[str, str]:
    """(what a unit of ``config`` is, the setting that sizes it), e.g. ("particle model", "sim.patterns_per_model")."""
    if isinstance(config.sim, spi.SpiConfig):
        return "particle model", "sim.patterns_per_model"
    return "block", "dataset.unit_size"


def units_per_split(config, patterns: int | None = None) -> dict[str, int]:
    """How many units each split of ``config``'s dataset gets (with ``patterns`` patterns in place of
    ``dataset.patterns``): splits go by a hash of the unit, so this is exact, and known before any work."""
    if patterns is not None:
        config = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, patterns=patterns))
    counts = dict.fromkeys(config.dataset.splits, 0)
    for model_index, _, _ in units(config):
        counts[split_of(config, model_index)] += 1
    return counts


MIN_SPLIT_UNITS = 2  # a split of fewer units is empty or holds one particle model: worth a warning
SUGGESTED_SPLIT_UNITS = 3  # the units per split the suggested dataset.patterns gives at least


def patterns_filling_splits(config, at_least: int = SUGGESTED_SPLIT_UNITS, limit: int = 1_000_000) -> int | None:
    """The fewest patterns (whole units) with which every split of non-zero share gets ``at_least`` units
    (``None`` beyond ``limit`` units)."""
    size = config.sim.patterns_per_model if isinstance(config.sim, spi.SpiConfig) else config.dataset.unit_size
    wanted = [name for name, share in config.dataset.splits.items() if share > 0]
    counts = dict.fromkeys(config.dataset.splits, 0)
    for model_index in range(limit):
        counts[split_of(config, model_index)] += 1
        if all(counts[name] >= at_least for name in wanted):
            return (model_index + 1) * size
    return None


def small_split_warning(config) -> str | None:
    """One line if a split (of non-zero share) gets fewer than :data:`MIN_SPLIT_UNITS` units, saying why and
    which setting fills it (``spizoo train`` refuses an empty training or validation split); else ``None``."""
    counts = units_per_split(config)
    small = {name: n for name, n in counts.items() if n < MIN_SPLIT_UNITS and config.dataset.splits[name] > 0}
    if not small:
        return None
    unit, sized_by = unit_words(config)
    size = config.sim.patterns_per_model if isinstance(config.sim, spi.SpiConfig) else config.dataset.unit_size
    needed = patterns_filling_splits(config)
    fix = (
        f"--set dataset.patterns={needed} gives every split at least {SUGGESTED_SPLIT_UNITS}"
        if needed
        else "give the small splits larger shares in dataset.splits"
    )
    got = [f"split {name!r} {'none' if n == 0 else 'only 1'}" for name, n in small.items()]
    got[0] = got[0].replace("' ", "' gets ", 1)
    effects = []
    if 0 in small.values():
        effects.append("an empty split stops spizoo train (training, validation) or evaluate (test)")
    if 1 in small.values():
        effects.append(f"a split of one {unit} measures that one alone")
    return (
        f"of the {sum(counts.values())} {unit}s ({size} patterns each, {sized_by}; splits go by whole {unit}s), "
        f"{', '.join(got)}: {'; '.join(effects)}; {fix}"
    )


def units_done(out: str | Path) -> int:
    """How many units of a run into ``out`` are finished so far (their chunks complete under
    ``OUT.incomplete/chunks/``): the pipeline's progress, readable from another process while it runs, whatever
    the runner and wherever ``out`` is."""
    try:
        return len(storage.files(storage.join(f"{out}.incomplete", "chunks", "*", "*.tfrecord.json")))
    except OSError:  # not there (yet, or any more), or the store unreachable for now
        return 0


def check_out(out: str, overwrite: bool) -> None:
    """Refuses an ``out`` that holds a finished dataset (unless ``overwrite``) or, on an object store, other
    objects that no run of spizoo left unfinished; call :func:`storage.configure` first.

    Raises:
        FileExistsError: naming ``out``.
        ValueError: for a URL Beam cannot write here, saying what to install.
    """
    storage.check(out, "--out")
    if overwrite:
        return
    if not storage.is_url(out):
        if Path(out).exists():
            raise FileExistsError(f"{out} exists; add --overwrite to replace it, or give another --out")
        return
    if storage.exists(storage.join(out, INFO_FILE)):
        raise FileExistsError(f"{out} holds a dataset; add --overwrite to replace it, or give another --out")
    if storage.files(storage.join(out, "*")) and not storage.exists(storage.join(f"{out}.incomplete", "config_hash")):
        raise FileExistsError(
            f"{out} holds objects but no {INFO_FILE} (not a dataset spizoo left unfinished); add --overwrite to "
            "replace them, or give another --out"
        )


def unit_examples(config, unit: tuple[int, int, int], chash: str) -> tuple[list[bytes], dict, list[np.ndarray]]:
    """Serialised examples of one unit, its counts, and the images (for statistics)."""
    model_index, start, stop = unit
    split = split_of(config, model_index)
    augment = split in config.dataset.augment_splits
    examples, images = [], []
    classes: dict[int, int] = {}
    view = config.sim.view() if isinstance(config.sim, spi.SpiConfig) else None  # a detector geometry's
    for offset, p in enumerate(sim.simulate(config.sim, config.seed, stop - start, start=start)):
        shot = offset
        image = p.image if view is None else view(p.image)  # the model's input, as classify reads frames
        if isinstance(p, spi.Pattern):
            label, target = p.label, None
            params = p.parameters(config.sim.cluster.max_particles)
            classes[label] = classes.get(label, 0) + 1
        else:
            label, target = -1, p.target(config.sim.circumradius_nm)
            params = p.parameters()
        key = f"{chash}/{model_index}/{shot}"
        copies = [("none", image)]
        if augment:
            rng = seeds.augment_rng(config.seed, model_index, shot)
            copies = config.augment.apply(image, rng)
        for copy, (filt, image) in enumerate(copies):
            feats = schema.example_features(
                image,
                key=key if not augment else f"{key}/{copy}",
                model_index=model_index,
                label=label,
                target=target,
                augmentation=filt,
                params=params,
            )
            examples.append(schema.encode_example(feats))
            images.append(image)
    counts = {"split": split, "patterns": stop - start, "examples": len(examples), "classes": classes}
    return examples, counts, images


class SimulationSource:
    """Where ``spizoo generate``'s units and examples come from: the simulator of ``config.sim``.

    :mod:`spizoo.beam_pipelines.ingest` supplies another source (frames of experiment files) to the same
    pipeline; a source has ``config`` (with ``seed`` and ``dataset``), ``kind``, ``units()``,
    ``split(unit)``, ``examples(unit, chash)``, ``image_shape()``, ``sampling()`` (the pixel angle and photon
    energy ranges of its frames, where known) and ``describe()``.
    """

    def __init__(self, config):
        self.config = config
        self.kind = config.sim.kind

    def units(self) -> list[tuple]:
        return units(self.config)

    def split(self, unit) -> str:
        return split_of(self.config, unit[0])

    def examples(self, unit, chash: str):
        return unit_examples(self.config, unit, chash)

    def image_shape(self) -> list[int]:
        return list(self.config.sim.detector.pixels)

    def sampling(self) -> dict[str, list[float]]:
        return self.config.sim.sampling()

    def describe(self) -> dict:
        return to_dict(self.config)


class MeanStd(beam.CombineFn):
    """Mergeable per-pixel (count, mean, M2) accumulators (Chan, Golub & LeVeque 1979)."""

    def create_accumulator(self):
        return (0, None, None)

    def add_input(self, acc, batch):
        return self.merge_accumulators([acc, batch])

    def merge_accumulators(self, accumulators):
        n, mean, m2 = 0, None, None
        for nb, mb, m2b in accumulators:
            if nb == 0:
                continue
            if n == 0:
                n, mean, m2 = nb, np.array(mb, np.float64), np.array(m2b, np.float64)
                continue
            delta = mb - mean
            total = n + nb
            mean = mean + delta * (nb / total)
            m2 = m2 + m2b + delta**2 * (n * nb / total)
            n = total
        return (n, mean, m2)

    def extract_output(self, acc):
        return acc


def _batch_stats(images: list[np.ndarray]) -> tuple[int, np.ndarray, np.ndarray]:
    stack = np.stack(images).astype(np.float64)
    mean = stack.mean(axis=0)
    return len(images), mean, ((stack - mean) ** 2).sum(axis=0)


class SimulateUnit(beam.DoFn):
    """Makes one unit's examples into its chunk file (training statistics beside it, ``.stats.npz``); emits
    ((split, shard), (model index, path, counts, resumed))."""

    def __init__(self, source, root: str):
        self.source = source
        self.config = source.config
        self.root = root
        self.chash = config_hash(source.config)
        self.storage = storage.options()

    def setup(self):
        storage.use(self.storage)

    def process(self, unit):
        model_index = unit[0]
        split = self.source.split(unit)
        path = storage.join(self.root, "chunks", split, f"{model_index:09d}.tfrecord")
        meta_path = path + ".json"
        resumed = storage.exists(meta_path)
        if resumed:  # the chunk was finished by an earlier run
            meta = json.loads(storage.read(meta_path))
            Metrics.counter(COUNTER_NAMESPACE, "units_resumed").inc()
        else:
            examples, meta, images = self.source.examples(unit, self.chash)
            payload = b"".join(tfrecord.frame(e) for e in examples)
            meta["bytes"] = len(payload)
            meta["values"] = value_range(images)
            stats = _batch_stats(images) if split == "train" else None
            storage.write(path, payload)
            if stats is not None:
                buf = io.BytesIO()
                np.savez(buf, n=stats[0], mean=stats[1], m2=stats[2])
                storage.write(path + ".stats.npz", buf.getvalue())
            storage.write(meta_path, json.dumps(meta).encode())  # last: marks the chunk complete
        Metrics.counter(COUNTER_NAMESPACE, f"patterns_{split}").inc(meta["patterns"])
        Metrics.counter(COUNTER_NAMESPACE, f"examples_{split}").inc(meta["examples"])
        Metrics.counter(COUNTER_NAMESPACE, "bytes").inc(meta["bytes"])
        for label, count in meta["classes"].items():
            Metrics.counter(COUNTER_NAMESPACE, f"class_{label}").inc(count)
        yield ((split, shard_of(self.config, split, model_index)), (model_index, path, meta, resumed))


def _read_stats(path: str) -> tuple[int, np.ndarray, np.ndarray]:
    z = np.load(io.BytesIO(storage.read(path + ".stats.npz")))
    return int(z["n"]), z["mean"], z["m2"]


class WriteShard(beam.DoFn):
    """Concatenates a shard's chunks in model-index order into its shard file and a summary; emits
    (0, (split, shard, the shard's training statistics merged in model-index order))."""

    def __init__(self, config, root: str):
        self.config = config
        self.root = root
        self.storage = storage.options()

    def setup(self):
        storage.use(self.storage)

    def process(self, element):
        (split, shard), grouped = element
        chunks = sorted(chunk for chunk in grouped if chunk is not None)  # None: an empty shard's placeholder
        name = shard_name(self.config, split, shard)
        buf = io.BytesIO()
        sink = gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) if self.config.dataset.compression == "gzip" else buf
        for _, path, _, _ in chunks:
            sink.write(storage.read(path))
        if sink is not buf:
            sink.close()
        payload = buf.getvalue()
        storage.write(storage.join(self.root, name), payload)
        classes: dict[str, int] = {}
        for _, _, meta, _ in chunks:
            for label, count in meta["classes"].items():
                classes[str(label)] = classes.get(str(label), 0) + count
        summary = {
            "split": split,
            "file": name,
            "models": len(chunks),
            "patterns": sum(m["patterns"] for _, _, m, _ in chunks),
            "examples": sum(m["examples"] for _, _, m, _ in chunks),
            "bytes": len(payload),
            "classes": classes,
            "values": merged_range(m.get("values") for _, _, m, _ in chunks),
            "chunk_bytes": sum(m["bytes"] for _, _, m, _ in chunks),  # for the counters
            "resumed": sum(1 for *_, resumed in chunks if resumed),
        }
        storage.write(storage.join(self.root, "summaries", f"{split}-{shard:05d}.json"), json.dumps(summary).encode())
        stats = [_read_stats(path) for _, path, _, _ in chunks] if split == "train" else []
        yield 0, (split, shard, MeanStd().merge_accumulators(stats))


class WriteStats(beam.DoFn):
    """Merges the shards' training statistics in shard order; writes them as ``train_mean.npy`` and
    ``train_std.npy``."""

    def __init__(self, root: str):
        self.root = root
        self.storage = storage.options()

    def setup(self):
        storage.use(self.storage)

    def process(self, element):
        _, per_shard = element
        n, mean, m2 = MeanStd().merge_accumulators([acc for _, _, acc in sorted(per_shard, key=lambda s: s[:2])])
        if n == 0:
            return
        for filename, arr in (("train_mean.npy", mean), ("train_std.npy", np.sqrt(m2 / n))):
            buf = io.BytesIO()
            np.save(buf, arr.astype(np.float32))
            storage.write(storage.join(self.root, filename), buf.getvalue())
        storage.write(storage.join(self.root, "summaries", "stats.json"), json.dumps({"count": int(n)}).encode())
        yield n


def build(pipeline: beam.Pipeline, source, root: str) -> None:
    """Adds the stages that turn ``source``'s units into shards to ``pipeline``, writing under ``root``."""
    config = source.config
    shard_keys = [((s, i), None) for s, n in config.dataset.shards.items() for i in range(n)]
    chunks = (
        pipeline
        | "Units" >> beam.Create(source.units())
        | "Spread" >> beam.Reshuffle()
        | "Simulate" >> beam.ParDo(SimulateUnit(source, root))
    )
    every_shard = pipeline | "Shards" >> beam.Create(shard_keys)  # so that empty shards are written too
    (  # one chain ending in the last transform: a DaskRunner runs only that one and what it depends on
        (chunks, every_shard)
        | "WithEveryShard" >> beam.Flatten()
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(WriteShard(config, root))
        | "AllShards" >> beam.GroupByKey()
        | "WriteStats" >> beam.ParDo(WriteStats(root))
    )


def run(config, out: str | Path, beam_args: list[str] = (), *, overwrite: bool = False) -> tuple[dict, dict]:
    """Generates the dataset of ``config`` into ``out``; returns its ``dataset_info`` and the Beam counters.

    A killed run leaves ``out.incomplete/``; the same command resumes from the units it finished.
    """
    return run_source(SimulationSource(config), out, beam_args, overwrite=overwrite)


def run_source(source, out: str | Path, beam_args: list[str] = (), *, overwrite: bool = False) -> tuple[dict, dict]:
    """Writes ``source``'s dataset into ``out``, a local path or a URL (see :func:`run`)."""
    config = source.config
    out = str(out).rstrip("/")
    root = f"{out}.incomplete"
    chash = config_hash(config)
    storage.configure(beam_args)
    check_out(out, overwrite)
    storage.remove(out)  # with overwrite: the dataset replaced; else only an unfinished copy of this run's
    marker = storage.join(root, "config_hash")
    if not (storage.exists(marker) and storage.read(marker).decode() == chash):
        storage.remove(root)  # nothing, or left by a run of another config: start afresh
    for sub in ["summaries", *(f"chunks/{s}" for s in config.dataset.splits)]:
        storage.makedirs(storage.join(root, sub))
    storage.write(marker, chash.encode())

    run_pipeline(lambda pipeline: build(pipeline, source, root), beam_args, len(source.units()), root)
    summaries = [json.loads(storage.read(p)) for p in storage.files(storage.join(root, "summaries", "*-*.json"))]
    info = _dataset_info(source, root, chash, summaries)
    keep = sorted(
        {s["file"] for s in summaries} | ({"train_mean.npy", "train_std.npy"} if info["stats"]["count"] else set())
    )
    storage.publish(root, out, keep, INFO_FILE, json.dumps(info, indent=2).encode())
    return info, dict(sorted(_counters(summaries).items()))


def _counters(summaries: list[dict]) -> dict:
    """The counters of a run (as the DirectRunner's metrics counted them: a counter only once it counted
    something), from its shards' summaries: whatever the runner, and whether or not it reports metrics."""
    counters: dict[str, int] = {}
    for s in summaries:
        if not s["models"]:
            continue
        for name, value in (
            (f"patterns_{s['split']}", s["patterns"]),
            (f"examples_{s['split']}", s["examples"]),
            ("bytes", s["chunk_bytes"]),
            *((f"class_{label}", count) for label, count in s["classes"].items()),
            *((("units_resumed", s["resumed"]),) if s["resumed"] else ()),
        ):
            counters[name] = counters.get(name, 0) + value
    return counters


def _dataset_info(source, root: str, chash: str, summaries: list[dict]) -> dict:
    config = source.config
    splits = {}
    for split in config.dataset.splits:
        mine = [s for s in summaries if s["split"] == split]
        classes: dict[str, int] = {}
        for s in mine:
            for label, count in s["classes"].items():
                classes[label] = classes.get(label, 0) + count
        splits[split] = {
            "models": sum(s["models"] for s in mine),
            "patterns": sum(s["patterns"] for s in mine),
            "examples": sum(s["examples"] for s in mine),
            "classes": dict(sorted(classes.items())),
            "files": {s["file"]: s["examples"] for s in mine},
            "bytes": {s["file"]: s["bytes"] for s in mine},
        }
    stats_file = storage.join(root, "summaries", "stats.json")
    count = json.loads(storage.read(stats_file))["count"] if storage.exists(stats_file) else 0
    first = np.load(io.BytesIO(storage.read(storage.join(root, "train_mean.npy")))) if count else None
    return {
        "name": config.dataset.name,
        "spizoo_version": spizoo.__version__,
        "config_hash": chash,
        "kind": source.kind,
        "image_shape": list(first.shape) if first is not None else source.image_shape(),
        "compression": config.dataset.compression,
        "feature_spec": schema.feature_spec_json(),
        "splits": splits,
        "stats": {
            "split": "train",
            "count": count,
            "mean": "train_mean.npy",
            "std": "train_std.npy",
            "values": merged_range(s.get("values") for s in summaries if s["split"] == "train"),
        },
        "sampling": source.sampling(),
        "config": source.describe(),
    }
