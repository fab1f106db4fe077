"""``spizoo train``: fit a registered model on a generated dataset into a run directory.

A run directory holds the resolved ``config.yaml``, the dataset's ``dataset_info.json`` and statistics it
normalised with, ``backup/`` (Keras ``BackupAndRestore``: the same command after a crash resumes from the
last finished epoch, on exactly the data an uninterrupted run would see next), ``best.keras`` (lowest
validation loss), ``last.keras``, ``history.csv`` and TensorBoard ``logs/``. Normalisation is a layer of
the model holding the dataset's mean and standard deviation images (seed 000 §4.1), so the exported graph
preprocesses exactly as training did.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from spizoo.config import dump_config
from spizoo.models.config import ModelConfig, TrainConfig  # noqa: F401 - part of this module's interface


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str) -> str:
    """The Keras dtype policy for ``train.mixed_precision``."""
    if name != "auto":
        return name
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``train.strategy``."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy: multi_worker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def reseed_callback(seed: int):
    """A callback that sets every random layer's seed state from (seed, epoch, layer) at each epoch's start.

    ``BackupAndRestore`` restores weights and optimiser state but not the dropout layers' random state; with
    this, the dropout masks of an epoch no longer depend on what ran before it, so a resumed run continues
    exactly as an uninterrupted one (tested with SIGKILL).
    """
    import keras

    class Reseed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            for i, layer in enumerate(self.model._flatten_layers()):
                generator = getattr(layer, "seed_generator", None)
                if generator is not None:
                    value = (seed * 1_000_003 + epoch * 1009 + i) % 2_147_483_647
                    generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))

    return Reseed()


def resume_epoch(run_dir: Path) -> int:
    """The epoch a rerun starts from: the one after the last backed-up epoch (0 for a new run)."""
    meta = run_dir / "backup" / "training_metadata.json"
    return int(json.loads(meta.read_text())["epoch"]) if meta.exists() else 0


def train(config, data_dir: str | Path, run_dir: str | Path) -> dict:
    """Trains ``config.model`` on ``data_dir`` into ``run_dir``; returns the final metrics.

    Raises:
        FileNotFoundError: if ``data_dir`` has no ``dataset_info.json``.
        ValueError: for a model or split the dataset cannot feed.
    """
    import keras
    import tensorflow as tf

    from spizoo.data.pipeline import load_dataset_info

    data_dir, run_dir = Path(data_dir), Path(run_dir)
    info = load_dataset_info(data_dir)
    tc = config.train
    for split in (tc.train_split, tc.validation_split):
        if not info["splits"].get(split, {}).get("examples"):
            raise ValueError(f"{data_dir} has no examples in split {split!r}; it has {sorted(info['splits'])}")
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, run_dir / "config.yaml")
    for name in ("dataset_info.json", info["stats"]["mean"], info["stats"]["std"]):
        if (data_dir / name).exists():
            shutil.copy(data_dir / name, run_dir / name)

    first = resume_epoch(run_dir)
    if first >= tc.epochs:  # finished (perhaps killed between its last backup and training.json)
        print(f"{run_dir} has already trained {first} of {tc.epochs} epochs; raise train.epochs to continue")
        done = run_dir / "training.json"
        return json.loads(done.read_text()) if done.exists() else {"epochs": tc.epochs, "resumed_from_epoch": first}

    keras.utils.set_random_seed(config.seed)
    if tc.deterministic:
        tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(tc.mixed_precision)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        return _fit(config, info, data_dir, run_dir, first, policy)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _fit(config, info: dict, data_dir: Path, run_dir: Path, first: int, policy: str) -> dict:
    import keras

    from spizoo.data.pipeline import centre_crop, make_dataset, steps_per_epoch
    from spizoo.models import registry
    from spizoo.models.metrics import relative_error_metrics

    tc = config.train
    strategy = make_strategy(tc.strategy)

    crop = config.data.crop
    in_graph = config.data.normalize == "dataset" and config.data.view == "image"
    data_cfg = dataclasses.replace(config.data, normalize="none") if in_graph else config.data
    with strategy.scope():
        model = registry.build(
            config.model.name, input_shape=(crop, crop, 1), standardize=in_graph, **config.model.options
        )
        if in_graph:
            model.get_layer("standardize").set_statistics(
                centre_crop(info["mean_image"], crop), centre_crop(info["std_image"], crop)
            )
        regression = model.get_config().get("head_activation") == "tanh"
        model.compile(
            optimizer=keras.optimizers.Adam(tc.learning_rate),
            loss="mse" if regression else "sparse_categorical_crossentropy",
            metrics=relative_error_metrics() if regression else ["accuracy"],
            jit_compile=False,  # XLA made ResNet-34 training ten times slower on this CPU (benchmarks/train_step.py)
        )

    train_pattern = str(data_dir / f"*-{tc.train_split}.tfrecord-*")
    train_ds = make_dataset(
        train_pattern, data_cfg, training=True, seed=config.seed, info=info, epochs=(first, tc.epochs)
    )
    val_ds = make_dataset(str(data_dir / f"*-{tc.validation_split}.tfrecord-*"), data_cfg, training=False, info=info)
    steps = steps_per_epoch(train_pattern, data_cfg, info)
    if steps < 1:
        raise ValueError(f"the training split has fewer examples than one batch of {data_cfg.batch_size}")
    callbacks = [
        reseed_callback(config.seed),
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.keras"), monitor="val_loss", save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "last.keras")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=first > 0),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
    ]
    history = model.fit(
        train_ds, epochs=tc.epochs, steps_per_epoch=steps, validation_data=val_ds, callbacks=callbacks, verbose=2
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
