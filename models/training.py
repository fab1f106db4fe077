"""``spizoo train``: fit a registered model on a generated dataset into a run directory.

A run directory holds the resolved ``config.yaml``, the dataset's ``dataset_info.json`` and statistics it
normalised with, ``backup/`` (Keras ``BackupAndRestore``: the same command after a crash resumes from the
last finished epoch, on exactly the data an uninterrupted run would see next), ``best.keras`` (lowest
validation loss), ``last.keras``, ``history.csv`` and TensorBoard ``logs/``. Normalisation is a layer of
the model holding the dataset's mean and standard deviation images (seed 000 §4.1), so the exported graph
preprocesses exactly as training did.

Models registered as trained by ``logistic_regression`` (the VGG16 extractor, seed 000 §4.2) are not fitted
by gradient descent: their features of the training split are computed once, a scikit-learn
``LogisticRegression`` (L2, ``train.logistic_c``) learns single hit against the rest, and the regression is
folded into the network, which is saved as ``best.keras``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import yaml
from tqdm import tqdm

from spizoo.core import compat
from spizoo.core.config import dump_config, to_dict
from spizoo.data import files as dfiles
from spizoo.data.pipeline import (
    INFO_FILE,
    centre_crop,
    check_records,
    count_examples,
    load_dataset_info,
    make_dataset,
    steps_per_epoch,
)
from spizoo.data.tfrecord import CorruptRecordError
from spizoo.models import registry
from spizoo.models.cluster import ensure_tf_config
from spizoo.models.config import ModelConfig, TrainConfig  # noqa: F401 - part of this module's interface
from spizoo.models.precision import global_policy, resolve_precision

BATCH_NORM_BATCHES = 32  # shuffled training batches averaged into batch-norm statistics before validation


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``train.strategy``."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy: multi_worker needs the TF_CONFIG environment variable (cluster and task), or to run as "
                "the tasks of a SLURM job step (srun spizoo train …)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def learning_rate(tc, steps_per_epoch: int):
    """Adam's learning rate for ``train:`` config ``tc``: ``learning_rate`` itself, or with ``schedule: cosine``
    a schedule that decays it along a cosine to 0 over ``epochs × steps_per_epoch`` optimizer steps (it counts
    the optimizer's own steps, so a resumed run goes on where it stopped)."""
    import keras  # loads TensorFlow: only when used

    if tc.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(tc.learning_rate, decay_steps=tc.epochs * steps_per_epoch)
    return tc.learning_rate


def reseed_callback(seed: int):
    """A callback that sets every random layer's seed state from (seed, epoch, layer) at each epoch's start.

    ``BackupAndRestore`` restores weights and optimiser state but not the dropout layers' random state; with
    this, the dropout masks of an epoch no longer depend on what ran before it, so a resumed run continues
    exactly as an uninterrupted one (tested with SIGKILL).
    """
    import keras  # loads TensorFlow: only when used

    class Reseed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            for i, layer in enumerate(self.model._flatten_layers()):
                generator = getattr(layer, "seed_generator", None)
                if generator is not None:
                    value = (seed * 1_000_003 + epoch * 1009 + i) % 2_147_483_647
                    generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))

    return Reseed()


def worker_run_dir(run_dir: Path, strategy: str) -> Path:
    """Where this process writes: ``run_dir`` itself, except for the non-chief workers of a multi-worker run,
    which keep their own checkpoints and backups in ``run_dir/worker-<index>`` (Keras saves on every worker;
    the chief's copy, in ``run_dir``, is the run's result)."""
    if strategy != "multi_worker" or "TF_CONFIG" not in os.environ:
        return run_dir
    tf_config = json.loads(os.environ["TF_CONFIG"])
    kind, index = tf_config.get("task", {}).get("type"), tf_config.get("task", {}).get("index", 0)
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in tf_config.get("cluster", {}))
    return run_dir if chief else run_dir / f"{kind}-{index}"


def batch_norm_statistics_callback(dataset, batches: int):
    """A callback that, before each validation (and so before each checkpoint), recomputes every batch-norm
    layer's moving mean and variance as the average over ``batches`` shuffled training batches, with the
    current weights and dropout off ("precise" statistics). ``dataset``: an iterable of (inputs, labels)
    batches; a ``tf.data.Dataset`` starts again at each validation, a generator goes on.

    Keras' moving averages (momentum 0.99) lag the weights: in the seed-000 ResNet-10, whose L2 penalty
    keeps shrinking the kernels that batch norm rescales, they stayed far from the batch statistics and the
    inference-mode network called nearly every pattern a single hit (docs/RESULTS.md).
    """
    import keras  # loads TensorFlow: only when used

    class PreciseBatchNorm(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            layers = list(self.model._flatten_layers())
            norms = [la for la in layers if isinstance(la, keras.layers.BatchNormalization)]
            drops = [la for la in layers if isinstance(la, keras.layers.Dropout)]
            if not norms:
                return
            momenta, rates = [la.momentum for la in norms], [la.rate for la in drops]
            for la in drops:
                la.rate = 0.0
            try:
                for i, (x, _) in enumerate(itertools.islice(dataset, batches)):
                    for la in norms:
                        la.momentum = i / (i + 1)  # a running average over the batches seen
                    self.model(x, training=True)
            finally:
                for la, m in zip(norms, momenta, strict=True):
                    la.momentum = m
                for la, r in zip(drops, rates, strict=True):
                    la.rate = r

    return PreciseBatchNorm()


def epoch_progress_callback(steps: int, *, interval: float = 10.0, clock=time.monotonic):
    """Progress within each epoch where standard output is no terminal (a log file, a pipe), where Keras'
    bar would write a line per batch: ``epoch 2/3: 40/120 batches (33%), loss 0.71, 12 s`` when another tenth
    of the epoch's ``steps`` is done, at most once per ``interval`` seconds. On a terminal Keras' bar runs."""
    import keras  # loads TensorFlow: only when used

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.start, self.last, self.tenths = epoch, clock(), clock(), 0

        def on_train_batch_end(self, batch, logs=None):
            now, tenths = clock(), 10 * (batch + 1) // steps
            if tenths > self.tenths and now - self.last >= interval and batch + 1 < steps:
                loss = f", loss {float(logs['loss']):.4g}" if logs and "loss" in logs else ""
                epochs = self.params.get("epochs")
                print(
                    f"epoch {self.epoch + 1}/{epochs}: {batch + 1}/{steps} batches ({(batch + 1) / steps:.0%})"
                    f"{loss}, {now - self.start:.0f} s",
                    flush=True,
                )
                self.last, self.tenths = now, tenths

    return EpochProgress()


def keep_epochs_before(history: Path, first: int) -> None:
    """Drops the rows of epochs ``first`` and later from a ``history.csv`` (written by an epoch that a crash
    cut off before its backup, and that the rerun from ``first`` trains again); replaced whole."""
    if not history.exists():
        return
    lines = history.read_text().splitlines(keepends=True)
    if not lines:
        return
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",", 1)[0].strip().isdigit()
                          and int(line.split(",", 1)[0]) < first]  # fmt: skip
    if len(kept) != len(lines):
        partial = history.with_name(history.name + ".partial")
        partial.write_text("".join(kept))
        os.replace(partial, history)


def save_model_callback(path: Path, *, best_of: str | None = None, history: Path | None = None):
    """A callback that saves the model to ``path`` after each epoch — with ``best_of`` (e.g. ``val_loss``)
    only when that is lower than in every epoch before, also those of the ``history`` CSV of a resumed
    run — through ``<name>.partial.keras`` renamed over ``path``: a kill during the write leaves the
    previous file whole (Keras' ``ModelCheckpoint`` writes in place, and forgets the best on resume)."""
    import keras  # loads TensorFlow: only when used

    best = np.inf
    if best_of and history is not None and history.exists():
        with open(history, newline="") as f:
            values = [float(row[best_of]) for row in csv.DictReader(f) if row.get(best_of)]
        best = min(values, default=np.inf)

    class SaveModel(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal best
            if best_of:
                value = (logs or {}).get(best_of)
                if value is None or not float(value) < best:
                    return
                best = float(value)
            partial = path.with_name(f"{path.stem}.partial.keras")
            self.model.save(partial, overwrite=True)
            os.replace(partial, path)

    return SaveModel()


def resume_epoch(run_dir: Path) -> int:
    """The epoch a rerun starts from: the one after the last backed-up epoch (0 for a new run).

    A backup cut off by a crash while it was written, with no earlier one beside it (``.bkp``, which Keras
    falls back to itself), is removed: the run starts again from its first epoch, and says so.
    """
    backup = run_dir / "backup"
    weights, meta = backup / "latest.weights.h5", backup / "training_metadata.json"
    if weights.exists() and not (backup / "latest.weights.h5.bkp").exists():
        try:
            h5py.File(weights, "r").close()
        except OSError:
            print(f"{weights} was cut off while being written (a crash); training starts again from epoch 1")
            weights.unlink()
            meta.unlink(missing_ok=True)
    return int(json.loads(meta.read_text())["epoch"]) if meta.exists() else 0


def pipeline_config(data):
    """(the ``DataConfig`` tf.data applies, whether the model standardises in its graph).

    Dataset normalisation of plain images happens in the model's ``Standardize`` layer, so the pipeline
    skips it; other normalisations and the VGG view stay in tf.data (and in the exported graph).
    """
    in_graph = data.normalize == "dataset" and data.view == "image"
    return (dataclasses.replace(data, normalize="none") if in_graph else data), in_graph


def _empty_split_message(data_dir: str, info: dict, split: str) -> str:
    """Why ``split`` is empty, and how many patterns a dataset needs to fill it."""
    message = f"{data_dir} has no examples in split {split!r}"
    dataset = (info.get("config") or {}).get("dataset") or {}
    fraction = (dataset.get("splits") or {}).get(split)
    if not fraction:
        return f"{message}; its splits are {sorted(k for k, v in info['splits'].items() if v.get('examples'))}"
    units = sum(v.get("models", 0) for v in info["splits"].values())
    patterns = sum(v.get("patterns", 0) for v in info["splits"].values())
    per_unit = max(1, round(patterns / max(units, 1)))
    needed = int(np.ceil(3 / fraction)) * per_unit  # about three units expected in the split
    return (
        f"{message}: its {patterns} patterns form {units} particle models (or frame blocks) of ~{per_unit}, and "
        f"splits go by whole models, so a {fraction:g} share needs about {needed} patterns "
        f"(e.g. --set dataset.patterns={needed})"
    )


def _flat(tree, prefix: str = "") -> dict:
    """``{"a.b": value}`` for a nested mapping."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix}.{key}" if prefix else key).items()}


def _check_same_run(run_dir: Path, config, info: dict) -> None:
    """A run directory continues only the run that made it: the same config (``train.epochs`` aside, raised to
    train on) on the same dataset.

    Raises:
        ValueError: naming the keys that differ, or both datasets' hashes; nothing in ``run_dir`` is changed.
    """
    saved = run_dir / "config.yaml"
    if saved.exists():
        old, new = _flat(yaml.safe_load(saved.read_text()) or {}), _flat(to_dict(config))
        # Keys only one side has come from another spizoo version's config fields, not from another run.
        differ = sorted(k for k in old.keys() & new.keys() if k != "train.epochs" and old[k] != new[k])
        if differ:
            shown = ", ".join(f"{k} ({old[k]!r} there, {new[k]!r} here)" for k in differ[:3])
            more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
            raise ValueError(
                f"{run_dir} holds a run of another config: {shown}{more}; use another --out, or remove {run_dir} "
                "to train afresh (only train.epochs may change, to train on)"
            )
    previous = run_dir / INFO_FILE
    if previous.exists():
        old_hash = json.loads(previous.read_text()).get("config_hash")
        if old_hash != info.get("config_hash"):
            raise ValueError(
                f"{run_dir} was trained on another dataset (config hash {old_hash}; this one has "
                f"{info.get('config_hash')}); use another --out, or remove {run_dir} to train afresh"
            )


def train(config, data_dir: str | Path, run_dir: str | Path) -> dict:
    """Trains ``config.model`` on ``data_dir`` into ``run_dir``; returns the final metrics.

    Raises:
        FileNotFoundError: if ``data_dir`` has no ``dataset_info.json``.
        ValueError: for a model or split the dataset cannot feed.
    """
    import keras  # loads TensorFlow: only when used
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    tc = config.train
    if tc.strategy == "multi_worker" and (line := ensure_tf_config()):
        print(line, flush=True)
    data_dir, run_dir = str(data_dir), worker_run_dir(Path(run_dir), tc.strategy)  # data: a path or URL
    info = load_dataset_info(data_dir)
    by_regression = registry.trained_by(config.model.name) == "logistic_regression"
    if by_regression and config.data.view != "vgg":
        raise ValueError(f"model {config.model.name} reads VGG16 inputs: set data.view: vgg")
    for split in (tc.train_split, tc.validation_split):
        if not info["splits"].get(split, {}).get("examples"):
            raise ValueError(_empty_split_message(data_dir, info, split))
    _check_same_run(run_dir, config, info)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")
    for name in (INFO_FILE, info["stats"]["mean"], info["stats"]["std"]):
        if dfiles.exists(dfiles.join(data_dir, name)):
            (run_dir / name).write_bytes(dfiles.read(dfiles.join(data_dir, name)))

    first = resume_epoch(run_dir)
    done = run_dir / "training.json"
    if by_regression and done.exists():
        print(f"{run_dir} is already trained (remove it to train again)")
        return json.loads(done.read_text())
    if not by_regression and first >= tc.epochs:  # finished (perhaps killed between its last backup and training.json)
        print(f"{run_dir} has already trained {first} of {tc.epochs} epochs; raise train.epochs to continue")
        return json.loads(done.read_text()) if done.exists() else {"epochs": tc.epochs, "resumed_from_epoch": first}

    keras.utils.set_random_seed(config.seed)
    if tc.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(tc.mixed_precision)
    with global_policy(policy):
        if by_regression:
            return _fit_logistic_regression(config, info, data_dir, run_dir, policy)
        return _fit(config, info, data_dir, run_dir, first, policy)


def _fit(config, info: dict, data_dir: str, run_dir: Path, first: int, policy: str) -> dict:
    import keras  # loads TensorFlow: only when used

    from spizoo.models.metrics import relative_error_metrics  # imports Keras: only when training

    tc = config.train
    strategy = make_strategy(tc.strategy)

    crop = config.data.crop
    data_cfg, in_graph = pipeline_config(config.data)
    train_pattern = dfiles.join(data_dir, f"*-{tc.train_split}.tfrecord-*")
    steps = steps_per_epoch(train_pattern, data_cfg, info)
    if steps < 1:
        raise ValueError(f"the training split has fewer examples than one batch of {data_cfg.batch_size}")
    with strategy.scope():
        model = registry.build(
            config.model.name, input_shape=(crop, crop, 1), standardize=in_graph, **config.model.options
        )
        if in_graph:
            model.get_layer("standardize").set_statistics(
                centre_crop(info["mean_image"], crop), centre_crop(info["std_image"], crop)
            )
        task = registry.task(config.model.name)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(tc, steps)),
            loss=task.loss,
            metrics=relative_error_metrics() if task.metrics == "relative_error" else ["accuracy"],
            jit_compile=False,  # XLA made ResNet-34 training ten times slower on this CPU (benchmarks/train_step.py)
        )

    train_ds = make_dataset(
        train_pattern, data_cfg, training=True, seed=config.seed, info=info, epochs=(first, tc.epochs)
    )
    val_pattern = dfiles.join(data_dir, f"*-{tc.validation_split}.tfrecord-*")
    val_ds = make_dataset(val_pattern, data_cfg, training=False, info=info)
    # Told its length, Keras does not warn that the validation data "ran out" after the first pass; under
    # multi-worker training each worker validates on its own share, whose length Keras finds itself.
    val_steps = None if tc.strategy == "multi_worker" else -(-count_examples(val_pattern, info) // data_cfg.batch_size)
    statistics_batches = make_dataset(
        train_pattern, data_cfg, training=True, seed=config.seed + 1, info=info, epochs=(0, 1)
    )
    history_csv = run_dir / "history.csv"
    keep_epochs_before(history_csv, first)
    callbacks = [
        reseed_callback(config.seed),
        batch_norm_statistics_callback(statistics_batches, BATCH_NORM_BATCHES),
        # An epoch's row and models before its backup: a kill between them reruns the epoch, whose row
        # keep_epochs_before then drops, so history.csv holds each epoch once.
        keras.callbacks.CSVLogger(str(history_csv), append=first > 0),
        save_model_callback(run_dir / "best.keras", best_of="val_loss", history=history_csv),
        save_model_callback(run_dir / "last.keras"),
        # double_checkpoint: the previous backup is kept as .bkp, which Keras restores if the latest is unreadable.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False, double_checkpoint=True),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
    ]
    terminal = sys.stdout.isatty()
    if not terminal:  # Keras' bar (verbose=1) would write a line per batch; a line per epoch, and these within
        callbacks.append(epoch_progress_callback(steps))
    multi_worker = (
        compat.keras_multi_worker_fit(model, val_ds) if tc.strategy == "multi_worker" else contextlib.nullcontext()
    )
    with multi_worker, _naming_corrupt_files((train_pattern, val_pattern), info):
        history = model.fit(
            train_ds,
            epochs=tc.epochs,
            steps_per_epoch=steps,
            validation_data=val_ds,
            validation_steps=val_steps,
            callbacks=callbacks,
            verbose=1 if terminal else 2,
            shuffle=False,  # make_dataset shuffles by (seed, epoch); Keras cannot shuffle a tf.data.Dataset
        )
    final = {k: float(v[-1]) for k, v in history.history.items()} if history.history else {}
    summary = {
        "policy": policy,
        "strategy": tc.strategy,
        "epochs": tc.epochs,
        "resumed_from_epoch": first,
        "final": final,
    }
    (run_dir / "training.json").write_text(json.dumps(summary, indent=2))
    return summary


@contextlib.contextmanager
def _naming_corrupt_files(patterns, info: dict):
    """TensorFlow reports a corrupt shard by record counts alone ("expected to contain N elements"): find the
    file, and say it."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    try:
        yield
    except tf.errors.OpError as err:
        if "expected to contain" not in str(err):
            raise
        for pattern in patterns:
            try:
                check_records(pattern, info)
            except CorruptRecordError as corrupt:
                raise CorruptRecordError(
                    f"{corrupt} (regenerate the dataset, or set data.skip_corrupt: true to leave such files out)"
                ) from None
        raise


def _fit_logistic_regression(config, info: dict, data_dir: str, run_dir: Path, policy: str) -> dict:
    """Seed 000 §4.2: frozen features of the training split → logistic regression (single hit vs the rest),
    folded into the network and saved as ``best.keras``; validation accuracy and log loss in the summary."""
    from sklearn.linear_model import LogisticRegression  # seconds to import: only for feature models
    from sklearn.metrics import log_loss

    from spizoo.models.vgg import fold_logistic_regression  # imports Keras: only when training

    tc = config.train
    features = registry.build(config.model.name, **config.model.options)
    if config.model.options.get("weights") is None:
        print("warning: no weights file given (model.options.weights): features of a randomly initialised network")

    def split_features(split: str):
        ds = make_dataset(dfiles.join(data_dir, f"*-{split}.tfrecord-*"), config.data, training=False, info=info)
        return predict_dataset(features, ds, f"{split} features")

    x, labels = split_features(tc.train_split)
    single = labels == 1
    if single.all() or not single.any():
        raise ValueError(f"the {tc.train_split} split needs both single hits (label 1) and other patterns")
    classifier = LogisticRegression(C=tc.logistic_c, max_iter=2000).fit(x, single)
    x_val, labels_val = split_features(tc.validation_split)
    p_val = classifier.predict_proba(x_val)[:, 1]
    final = {
        "accuracy": float(classifier.score(x, single)),
        "val_accuracy": float(((p_val >= 0.5) == (labels_val == 1)).mean()),
        "val_loss": float(log_loss(labels_val == 1, p_val, labels=[False, True])),
    }
    model = fold_logistic_regression(features, classifier)
    partial = run_dir / "best.partial.keras"
    model.save(partial)
    os.replace(partial, run_dir / "best.keras")
    summary = {"policy": policy, "trained_by": "logistic_regression", "C": tc.logistic_c, "final": final}
    (run_dir / "training.json").write_text(json.dumps(summary, indent=2))
    return summary


def predict_dataset(model, dataset, description: str):
    """(``model``'s outputs, labels) over a finite dataset of (inputs, labels) batches, with a progress bar.

    The model runs as one compiled graph (1.7–1.9× its eager call's images/s on a CPU: benchmarks/inference.py).
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    outputs, labels = [], []
    for x, y in tqdm(dataset, desc=description, unit="batch", leave=False):
        outputs.append(np.asarray(call(x), np.float32))
        labels.append(np.asarray(y))
    return np.concatenate(outputs), np.concatenate(labels)
