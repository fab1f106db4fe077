"""Experiment 1 (seed 000 §5.1) at the paper's scale, and its learning curve, on one GPU node with Keras 3 on
JAX: for the GPU nodes that have JAX but no TensorFlow, where ``scripts/paper_scale_gpu.sh`` cannot run
(docs/RESULTS.md §7). It runs on Keras's TensorFlow backend too (as its test does, at a tiny scale).

    KERAS_BACKEND=jax python scripts/e1_scale_jax.py run --out DIR [--budget-s 500] [--processes 8]
    python scripts/e1_scale_jax.py plot DIR/runs.jsonl --out docs/results/e1_learning_curve.png
    python scripts/e1_scale_jax.py rundir OLD/runs.jsonl --out DIR   # runs made before run wrote directories

On a node without spizoo installed, put a folder on ``PYTHONPATH`` that holds a copy of ``spizoo/`` with
links ``sim``, ``data``, ``models``, ``beam_pipelines`` and ``serving`` to the repository's folders of those
names inside it, and carry Keras, optree, namex, finufft and google-crc32c as wheels if the node lacks them.

``run`` simulates one pool of particle models with :mod:`spizoo.sim` (the e1 config, its 50 patterns per
model; in parallel on the node's cores), and a test set of many particle models (``--test-models`` models
of ``--test-patterns-per-model`` patterns, another seed), so that no model's block of patterns moves the
figure. Then it trains the e1 ResNet-10 (``registry.build``; on JAX with Keras's own batch norm and dropout,
which :mod:`spizoo.models.layers`, used on TensorFlow, equals) as ``spizoo train`` does (:func:`fit`): Adam
at the config's rate, its batch size and epochs, random flips, precise batch-norm statistics before each
validation and the best validation loss's weights kept (``spizoo.models.training``'s callbacks); then the
test set, reported by
:func:`spizoo.models.evaluation.classifier_report` and ``physics_report``. Runs: the paper's 58,000 training
patterns with ``--paper-seeds``, smaller training sets (``--curve-halvings``: halving the particle models) with
``--curve-seeds``, each run a subset of models drawn by its seed, and ``--variants`` beside the curve's runs
of the same size and seeds: ``cosine`` (a cosine learning-rate decay, a quarter of the data), ``longer``
(three times the epochs, a sixteenth), ``filters`` (seed 001's artefact filters, a sixteenth: each training
pattern replaced by one copy through a filter drawn from the eleven, identity included, as
``e2c_augmented.yaml``), and ``paper-cosine`` (the paper's scale with the cosine decay). Several runs share
the GPU at once, one per process.

A run that would not finish inside ``--budget-s`` stops there and is written with ``complete: false``; one
that could not start in time, with ``skipped``. Written to ``--out``: ``runs.jsonl`` (a line per run, as it
finishes), ``environment.json``, and for each paper-scale run a run directory ``e1_paper_seed<S>/`` as
``spizoo train`` and ``evaluate`` leave one (:func:`write_run`), which classify, export, evaluate and
``scripts/zoo_entry.py`` take.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import itertools
import json
import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path

import numpy as np

CONFIG = "configs/experiments/e1_resnet10_hits.yaml"
VARIANTS = ("cosine", "longer", "filters", "paper-cosine")
MADE_BY = "scripts/e1_scale_jax.py"
PAPER_TRAIN_PATTERNS = 58_000  # seed 000 §5.1: 58,000 training, 1,000 validation, 1,000 test patterns
VALIDATION_PATTERNS = 1_000


# ---- simulation (worker processes; numpy and finufft only) -------------------------------------------------


def _simulate_model(task) -> list[tuple]:
    """Writes one particle model's patterns, log-normalised and cropped as the pipeline does, into rows
    ``first …`` of the memory-mapped image file; returns each pattern's label and physics."""
    from spizoo.data.frame_check import value_range
    from spizoo.data.pipeline import centre_crop
    from spizoo.sim import spi

    sim_cfg, seed, model_index, first, images_path, crop = task
    images = np.load(images_path, mmap_mode="r+")
    meta = []
    for k, p in enumerate(spi.simulate_model(sim_cfg, seed, model_index)):
        photons = centre_crop(p.image, crop).astype(np.float32)
        images[first + k] = np.log10(1.0 + np.maximum(photons, 0.0))  # the pipeline's normalize: log
        meta.append(
            (
                p.label,
                float(photons.sum()),
                p.model.shape,
                p.model.circumradius_nm,
                p.fluence_photons_per_um2,
                value_range([photons]),
            )
        )
    images.flush()
    return meta


def simulate(sim_cfg, seed: int, models: int, crop: int, path: Path, pool) -> dict[str, np.ndarray]:
    per = sim_cfg.patterns_per_model
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(models * per, crop, crop))
    del images
    tasks = [(sim_cfg, seed, m, m * per, str(path), crop) for m in range(models)]
    rows = [r for meta in pool.imap(_simulate_model, tasks, chunksize=4) for r in meta]
    names = ("label", "photons", "shape", "circumradius_nm", "fluence_photons_per_um2")
    columns = {n: np.array([r[i] for r in rows]) for i, n in enumerate(names)}
    columns["values"] = [r[-1] for r in rows]  # [min, max, integer] of each pattern
    columns["model"] = np.repeat(np.arange(models), per)
    return columns


# ---- training (one process per concurrent run; Keras on JAX) ----------------------------------------------


def _batches(images, labels, rows: np.ndarray, batch: int, seed: int, flips: bool = True):
    """Endless shuffled batches of ``rows``, with random horizontal and vertical ``flips`` (seed 000 §4.1),
    the last partial batch of each epoch dropped, as ``spizoo train``'s pipeline gives them."""
    rng = np.random.default_rng(seed)
    for _ in itertools.count():
        order = rng.permutation(rows)
        for start in range(0, len(order) - batch + 1, batch):
            idx = np.sort(order[start : start + batch])
            x = np.array(images[idx])
            if flips:
                flip = rng.random((batch, 2)) < 0.5
                x[flip[:, 0]] = x[flip[:, 0], :, ::-1]
                x[flip[:, 1]] = x[flip[:, 1], ::-1, :]
            yield x[..., None], labels[idx]


def fit(job: dict, setup: dict, build, train: tuple, validation: tuple, loss: str, metrics: list, flips=True):
    """Trains ``build()`` as ``spizoo train`` does on ``train`` (images, targets and the rows to use) for the
    job's epochs (else the setup's) and schedule: Adam at the config's rate, the setup's batch size and
    precision, precise batch-norm statistics before each validation and the weights of the lowest
    validation loss kept, stopping at ``setup["deadline"]``. Returns the model (with those weights) and the
    run's record: history, epochs done, whether it is complete, best epoch and wall time."""
    import keras

    from spizoo.models.training import (
        BATCH_NORM_BATCHES,
        batch_norm_statistics_callback,
        learning_rate,
        reseed_callback,
    )

    images, targets, rows = train
    seed, batch = job["seed"], setup["batch_size"]
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_dtype_policy(setup["precision"])
    epochs, steps = job.get("epochs", setup["epochs"]), len(rows) // batch
    schedule = job.get("schedule", setup["train"].schedule)
    rate = learning_rate(dataclasses.replace(setup["train"], epochs=epochs, schedule=schedule), steps)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=metrics)
    best = {"val_loss": np.inf, "epoch": -1, "weights": None}
    deadline, stopped = setup["deadline"], []

    class KeepBest(keras.callbacks.Callback):  # spizoo train's best.keras: the lowest validation loss
        def on_epoch_end(self, epoch, logs=None):
            if float(logs["val_loss"]) < best["val_loss"]:
                best.update(val_loss=float(logs["val_loss"]), epoch=epoch, weights=self.model.get_weights())

    class Deadline(keras.callbacks.Callback):
        def on_train_batch_end(self, step, logs=None):
            if step % 50 == 0 and time.time() > deadline:
                self.model.stop_training = True
                stopped.append(step)

    start = time.time()
    history = model.fit(
        _batches(images, targets, rows, batch, seed, flips),
        steps_per_epoch=steps,
        epochs=epochs,
        validation_data=validation,
        validation_batch_size=batch,
        callbacks=[
            reseed_callback(seed),
            batch_norm_statistics_callback(_batches(images, targets, rows, batch, seed + 1, flips), BATCH_NORM_BATCHES),
            KeepBest(),
            Deadline(),
        ],
        verbose=0,
    )
    train_s = time.time() - start
    epochs_done = len(history.history.get("loss", []))
    if best["weights"] is not None:
        model.set_weights(best["weights"])
    return model, {
        "epochs_done": epochs_done,
        "complete": not stopped and epochs_done == epochs,
        "backend": keras.backend.backend(),
        "device": _device(),
        "precision": setup["precision"],
        "best_epoch": best["epoch"] + 1,
        "train_s": round(train_s, 1),
        "train_steps_per_s": round(steps * epochs_done / train_s, 1) if train_s else None,
        "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.history.items()},
    }


def build_model(name: str, input_shape: tuple):
    """The registry's model ``name``: with spizoo's fused layers where TensorFlow runs them (the same
    computation, faster), else with Keras's own."""
    import keras

    from spizoo.models import registry

    tf = keras.backend.backend() == "tensorflow"
    return registry.build(name, input_shape=input_shape, standardize=False, keras_layers=not tf)


def save_float32(build, model, path: Path) -> None:
    """``model``'s weights in a float32 ``build()`` at ``path``: a model CPUs serve, whatever it trained in."""
    import keras

    keras.mixed_precision.set_dtype_policy("float32")
    saved = build()
    saved.set_weights(model.get_weights())
    saved.save(path)


def start(args) -> tuple:
    """A run's start: its time, ``--out`` and ``--work`` made, and the config with its overrides."""
    from spizoo import experiment

    t0 = time.time()
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # should JAX start here too: the GPU is the runs'
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    return t0, out, work, experiment.load(args.config, args.set)


def _artefact_filtered(images, rows: np.ndarray, seed: int) -> np.ndarray:
    """``images[rows]``, each through one of seed 001's eleven filters drawn at random (identity included),
    as ``e2c_augmented.yaml``'s ``augment`` (copies 1, pick random, scale log10): the stored images are
    already log10(1 + photons), so the filters act on them directly."""
    from spizoo.sim.augment import AugmentPolicy

    policy, rng = AugmentPolicy(copies=1, pick="random"), np.random.default_rng([seed, 1])
    return np.stack([policy.apply(np.asarray(images[r]), rng)[0][1] for r in rows])


def run_name(job: dict) -> str:
    """A paper-scale run's directory: ``e1_paper_seed<S>``, ``_cosine`` added for that variant."""
    return f"e1_paper_seed{job['seed']}" + ("_cosine" if job.get("schedule") == "cosine" else "")


def _train_run(job: dict, setup: dict) -> dict:
    from spizoo.commands.evaluate import write_patterns
    from spizoo.core.labels import CLASS_NAMES
    from spizoo.models import evaluation, registry

    images = np.load(setup["pool_images"], mmap_mode="r")
    labels = np.load(setup["pool_labels"])
    per, seed = setup["patterns_per_model"], job["seed"]
    rng = np.random.default_rng([seed, job["models"]])
    chosen = np.sort(rng.choice(setup["train_models"], size=job["models"], replace=False))
    rows = (chosen[:, None] * per + np.arange(per)).ravel()
    val_rows = np.arange(setup["train_models"] * per, len(labels))
    x_val, y_val = np.array(images[val_rows])[..., None], labels[val_rows]
    train_images, train_labels = images, labels
    if job.get("filters"):  # the run's training patterns, filtered once, in memory; validation stays clean
        train_images, train_labels = _artefact_filtered(images, rows, seed), labels[rows]
        rows = np.arange(len(rows))

    name = setup["model"]
    build = functools.partial(build_model, name, x_val.shape[1:])
    train = (train_images, train_labels, rows)
    model, record = fit(job, setup, build, train, (x_val, y_val), registry.task(name).loss, ["accuracy"])

    test_images = np.load(setup["test_images"], mmap_mode="r")
    test = {
        k: np.load(setup["test_columns"])[k]
        for k in ("label", "photons", "shape", "circumradius_nm", "fluence_photons_per_um2")
    }
    probabilities = model.predict(np.asarray(test_images)[..., None], batch_size=512, verbose=0).astype(np.float64)
    report = evaluation.classifier_report(probabilities, test["label"], test["shape"], target_fpr=0.01)
    correct = probabilities.argmax(1) == test["label"]
    params = {k: test[k] for k in ("circumradius_nm", "fluence_photons_per_um2")}
    report["accuracy_by"] = evaluation.physics_report(correct, test["label"], test["photons"], params)
    result = {**job, "train_patterns": int(len(rows)), **record, "test": report}
    if job["models"] == setup["train_models"]:  # the paper's scale: a run directory

        def patterns(directory: Path) -> None:
            calls = np.array(CLASS_NAMES)[probabilities.argmax(1)]
            write_patterns(
                directory / "patterns.csv", test["label"], probabilities, calls, test["photons"], test["shape"], params
            )

        write_run(
            Path(setup["out"]) / run_name(job),
            setup["run_configs"][run_name(job)],
            setup["info"],
            result,
            functools.partial(save_float32, build, model),
            patterns,
            MADE_BY,
        )
    return result


def _trainer(jobs, results, setup: dict, train_run, steps) -> None:
    """One trainer process: takes jobs until none is left, ``train_run(job, setup)`` each, putting its result
    (or why it was skipped or failed) in ``results``."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # several processes share the GPU
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    import keras

    # Keras on a generator ("shuffle=True … ignored") and JAX's int32 labels: expected, said once per run.
    warnings.filterwarnings("ignore", category=UserWarning, module="(keras|jax)")
    if keras.backend.backend() == "jax":
        import jax

        jax.config.update("jax_compilation_cache_dir", setup["jax_cache"])  # later runs reuse the first's XLA code
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    seconds_per_step = 0.0  # this process's last run, with the GPU shared as it was then
    while True:
        try:
            job = jobs.get(timeout=1)  # all were put before the processes started
        except queue.Empty:
            return
        needed = steps(job, setup) * job.get("epochs", setup["epochs"]) * seconds_per_step + 20
        if time.time() + needed > setup["deadline"]:  # a run that cannot finish would only slow the others
            results.put({**job, "skipped": f"needs ~{needed:.0f} s, beyond --budget-s"})
            continue
        try:
            result = train_run(job, setup)
            results.put(result)
            seconds_per_step = result["train_s"] / max(result["epochs_done"] * steps(job, setup), 1)
        except Exception as err:  # noqa: BLE001 - reported with its run; the other runs go on
            results.put({**job, "error": f"{type(err).__name__}: {err}"})


def run_jobs(ctx, jobs: list[dict], setup: dict, train_run, steps, processes: int, runs_file: Path, line) -> None:
    """Runs ``jobs`` in ``processes`` trainer processes (see :func:`_trainer`; ``steps(job, setup)``: a job's
    steps per epoch), appending each result to ``runs_file`` as it comes and printing ``line(result)``."""
    t0 = time.time()
    job_queue, results = ctx.Queue(), ctx.Queue()
    for job in jobs:
        job_queue.put(job)
    trainers = [
        ctx.Process(target=_trainer, args=(job_queue, results, setup, train_run, steps)) for _ in range(processes)
    ]
    for p in trainers:
        p.start()
    with runs_file.open("a") as f:
        for _ in jobs:
            while True:
                try:
                    r = results.get(timeout=10)
                    break
                except queue.Empty:
                    if not any(p.is_alive() for p in trainers):
                        raise SystemExit("every training process has ended without reporting all runs") from None
            f.write(json.dumps(r) + "\n")
            f.flush()
            print(f"{time.time() - t0:5.0f} s  {r.get('error') or r.get('skipped') or line(r)}", flush=True)
    for p in trainers:
        p.join()


# ---- the command --------------------------------------------------------------------------------------------


def _steps(job: dict, setup: dict) -> int:
    return job["models"] * setup["patterns_per_model"] // setup["batch_size"]


def run(args) -> None:
    from spizoo import experiment
    from spizoo.sim.parallel import worker_pool

    t0, out, work, config = start(args)
    if config.data.normalize != "log":
        raise SystemExit(
            f"{args.config}: this script normalises as data.normalize: log; the config has {config.data.normalize!r}"
        )
    per = config.sim.patterns_per_model
    train_models = args.train_patterns // per
    val_models = args.validation_patterns // per
    test_cfg = experiment.load(args.config, [*args.set, f"sim.patterns_per_model={args.test_patterns_per_model}"])
    crop = config.data.crop

    with worker_pool(args.sim_processes) as pool:
        pool_cols = simulate(config.sim, config.seed, train_models + val_models, crop, work / "pool.npy", pool)
        t_pool = time.time() - t0
        test_cols = simulate(test_cfg.sim, args.test_seed, args.test_models, crop, work / "test.npy", pool)
    t_sim = time.time() - t0
    np.save(work / "pool_labels.npy", pool_cols["label"])
    np.savez(work / "test_columns.npz", **{k: v for k, v in test_cols.items() if k != "values"})
    print(
        f"simulated {len(pool_cols['label'])} + {len(test_cols['label'])} patterns in {t_sim:.0f} s "
        f"(pool {t_pool:.0f} s, {args.sim_processes} processes)",
        flush=True,
    )

    setup = {
        "pool_images": str(work / "pool.npy"),
        "pool_labels": str(work / "pool_labels.npy"),
        "test_images": str(work / "test.npy"),
        "test_columns": str(work / "test_columns.npz"),
        "patterns_per_model": per,
        "train_models": train_models,
        "batch_size": config.data.batch_size,
        "epochs": args.epochs or config.train.epochs,
        "train": config.train,
        "model": config.model.name,
        "precision": args.precision,
        "out": str(out),
        "run_configs": {},  # of the paper-scale runs, by directory name: below
        "info": dataset_info(config, pool_cols, test_cols, train_models),
        "jax_cache": str(work / "jax_cache"),
        "deadline": t0 + args.budget_s,
    }
    jobs = [{"role": "paper", "models": train_models, "seed": s} for s in args.paper_seeds]
    sizes = [train_models // 2**k for k in args.curve_halvings]
    jobs += [{"role": "curve", "models": m, "seed": s} for m in sizes for s in args.curve_seeds]
    jobs += variant_jobs(args.variants, train_models, setup["epochs"], args.curve_seeds)
    jobs = [j for j in jobs if j["models"] * per >= setup["batch_size"]]  # at least one batch
    for job in jobs:
        if job["models"] == train_models:
            setup["run_configs"][run_name(job)] = paper_config(args, job, train_models, val_models)
    write_environment(
        out,
        args,
        t_sim,
        train_models=train_models,
        validation_models=val_models,
        test_models=args.test_models,
        test_patterns_per_model=args.test_patterns_per_model,
        test_seed=args.test_seed,
    )

    def line(r: dict) -> str:
        return (
            f"{describe(r, per)}: test {r['test']['accuracy']:.1%}, {r['epochs_done']} epochs, {r['train_s']:.0f} s, "
            f"complete={r['complete']}"
        )

    run_jobs(mp.get_context("spawn"), jobs, setup, _train_run, _steps, args.processes, out / "runs.jsonl", line)


def variant_jobs(names, train_models: int, epochs: int, seeds) -> list[dict]:
    """What costs no extra data (issue 15, part 2), beside the curve's runs of the same size and ``seeds``
    (``paper-cosine``: beside the paper-scale runs); ``names`` from :data:`VARIANTS`."""
    made = {
        "cosine": [{"models": train_models // 4, "seed": s, "schedule": "cosine"} for s in seeds],
        "longer": [{"models": train_models // 16, "seed": s, "epochs": 3 * epochs} for s in seeds],
        "filters": [{"models": train_models // 16, "seed": s, "filters": True} for s in seeds],
        "paper-cosine": [{"models": train_models, "seed": s, "schedule": "cosine"} for s in seeds],
    }
    return [{"role": "variant", **job} for name in names for job in made[name]]


def _device() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    return keras.backend.backend() + " default device"


def dataset_info(config, pool: dict, test: dict, train_models: int) -> dict:
    """What ``spizoo generate`` records of a dataset (``dataset_info.json``), for the arrays simulated here:
    what inference and its frame check read (image shape, kind, the training frames' values, sampling), the
    splits and the config. There are no TFRecord files."""
    import spizoo
    from spizoo.core.config import to_dict
    from spizoo.data.frame_check import merged_range

    def split(columns: dict, rows: np.ndarray) -> dict:
        labels, counts = np.unique(columns["label"][rows], return_counts=True)
        return {
            "models": len(np.unique(columns["model"][rows])),
            "patterns": int(rows.sum()),
            "classes": {str(k): int(n) for k, n in zip(labels, counts, strict=True)},
        }

    train = pool["model"] < train_models
    crop = config.data.crop
    return {
        "name": config.dataset.name,
        "spizoo_version": spizoo.__version__,
        "kind": config.sim.kind,
        "image_shape": [crop, crop],
        "made_by": "scripts/e1_scale_jax.py: simulated into memory (no TFRecord files); test: new particle models",
        "splits": {
            "train": split(pool, train),
            "validation": split(pool, ~train),
            "test": split(test, np.ones(len(test["label"]), bool)),
        },
        "stats": {
            "split": "train",
            "count": int(train.sum()),
            "values": merged_range(v for v, t in zip(pool["values"], train, strict=True) if t),
        },
        "sampling": config.sim.sampling(),
        "config": to_dict(config),
    }


def paper_config(args, job: dict, train_models: int, val_models: int):
    """The resolved config of a paper-scale run ``job``, as ``spizoo train`` would record it."""
    from spizoo import experiment

    config = experiment.load(args.config, args.set)
    train = train_models / (train_models + val_models)
    return experiment.load(
        args.config,
        [
            *args.set,
            f"seed={job['seed']}",
            f"dataset.patterns={(train_models + val_models) * config.sim.patterns_per_model}",
            f"dataset.splits={{train: {train!r}, validation: {1 - train!r}}}",
            "dataset.shards={train: 1, validation: 1}",
            f"train.epochs={args.epochs or config.train.epochs}",
            f"train.mixed_precision={args.precision}",
            *([f"train.schedule={job['schedule']}"] if "schedule" in job else []),
        ],
    )


def write_run(run_dir: Path, config, info: dict, result: dict, save_model, write_evaluation, made_by: str) -> None:
    """A run directory as ``spizoo train`` and ``spizoo evaluate`` leave one, which everything that takes a
    run takes (classify, export, evaluate, ``scripts/zoo_entry.py``): ``best.keras`` (``save_model(path)``),
    ``config.yaml``, ``dataset_info.json``, ``training.json`` (trained by ``made_by``), ``history.csv`` and
    ``evaluation/report.json`` with the rest of ``evaluation/`` (``write_evaluation(directory)``). Written
    under ``RUN.partial``, then renamed."""
    import shutil

    from spizoo.core.config import dump_config

    tmp = run_dir.with_name(run_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "evaluation").mkdir(parents=True)
    save_model(tmp / "best.keras")
    dump_config(config, tmp / "config.yaml")
    (tmp / "dataset_info.json").write_text(json.dumps(info, indent=1))
    history = result["history"]
    training = {
        "policy": result["precision"],
        "strategy": f"one process, Keras on {result['backend']} ({result['device']}), {made_by}",
        "epochs": result["epochs_done"],
        "resumed_from_epoch": 0,
        "best_epoch": result["best_epoch"],
        "train_s": result["train_s"],
        "final": {k: v[-1] for k, v in history.items()},
    }
    (tmp / "training.json").write_text(json.dumps(training, indent=2))
    with (tmp / "history.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *history])
        writer.writerows([e, *(history[k][e] for k in history)] for e in range(result["epochs_done"]))
    (tmp / "evaluation" / "report.json").write_text(json.dumps(result["test"], indent=1))
    write_evaluation(tmp / "evaluation")
    shutil.rmtree(run_dir, ignore_errors=True)
    os.replace(tmp, run_dir)


def describe(job: dict, per: int) -> str:
    keys = ("schedule", "epochs", "filters") if job["role"] == "variant" else ()
    extra = "".join(f", {k} {job[k]}" for k in keys if k in job)
    return f"{job['role']} {job['models'] * per} patterns seed {job['seed']}{extra}"


def write_environment(out: Path, args, t_sim: float, **sizes) -> None:
    """``out/environment.json``: the simulation's wall time, the config and its overrides, the data's ``sizes``,
    the processes, the budget and the versions of the libraries that compute."""
    environment = {
        "simulate_s": round(t_sim, 1),
        "config": args.config,
        "overrides": args.set,
        **sizes,
        "processes": args.processes,
        "budget_s": args.budget_s,
        **_versions(),
    }
    (out / "environment.json").write_text(json.dumps(environment, indent=2))


def _versions() -> dict:
    import importlib.metadata as md

    found = {}
    for name in ("jax", "jaxlib", "keras", "numpy", "finufft"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def rundir(args) -> None:
    """Run directories of paper-scale runs made before ``run`` wrote them (it wrote ``runs.jsonl``,
    ``e1_paper_seed<S>.keras`` and ``patterns_paper_seed<S>.csv``): the data's record is simulated again."""
    import shutil

    from spizoo import experiment
    from spizoo.sim.parallel import worker_pool

    config = experiment.load(args.config, args.set)
    per = config.sim.patterns_per_model
    train_models, val_models = args.train_patterns // per, args.validation_patterns // per
    test_cfg = experiment.load(args.config, [*args.set, f"sim.patterns_per_model={args.test_patterns_per_model}"])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    with worker_pool(args.sim_processes) as pool:
        pool_cols = simulate(
            config.sim, config.seed, train_models + val_models, config.data.crop, work / "pool.npy", pool
        )
        test_cols = simulate(test_cfg.sim, args.test_seed, args.test_models, config.data.crop, work / "test.npy", pool)
    info = dataset_info(config, pool_cols, test_cols, train_models)
    source = Path(args.runs).parent
    for line in Path(args.runs).read_text().splitlines():
        result = json.loads(line)
        if result.get("role") != "paper" or "test" not in result:
            continue
        seed = result["seed"]
        result["test"]["accuracy_by"] = result["test"].pop("physics", result["test"].get("accuracy_by"))
        result.setdefault("backend", "jax")
        result.setdefault("precision", args.precision)
        write_run(
            Path(args.out) / f"e1_paper_seed{seed}",
            paper_config(args, {"seed": seed}, train_models, val_models),
            info,
            result,
            lambda path, s=seed: shutil.copy(source / f"e1_paper_seed{s}.keras", path),
            lambda directory, s=seed: shutil.copy(source / f"patterns_paper_seed{s}.csv", directory / "patterns.csv"),
            MADE_BY,
        )
        print(f"wrote {Path(args.out) / f'e1_paper_seed{seed}'}")


def plot(args) -> None:
    """Test accuracy against training patterns: each seed a dot, the mean ± standard deviation a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    runs = [json.loads(line) for path in args.runs for line in Path(path).read_text().splitlines() if line.strip()]
    done = [r for r in runs if r.get("complete") and "test" in r and r["role"] in ("paper", "curve")]
    if not done:
        raise SystemExit(f"no complete runs in {', '.join(args.runs)}")
    sizes = sorted({r["train_patterns"] for r in done})
    fig, ax = plt.subplots(figsize=(6, 4))
    means, stds = [], []
    for n in sizes:
        acc = np.array([r["test"]["accuracy"] for r in done if r["train_patterns"] == n]) * 100
        ax.plot([n] * len(acc), acc, "o", color="0.6", ms=4)
        means.append(acc.mean())
        stds.append(acc.std(ddof=1) if len(acc) > 1 else 0.0)
        print(f"| {n:,} | {len(acc)} | {acc.mean():.1f} | {stds[-1]:.1f} | {', '.join(f'{a:.1f}' for a in acc)} |")
    ax.errorbar(sizes, means, yerr=stds, color="C0", capsize=3, label="mean ± s.d. over seeds (20 epochs)")
    variants = [r for r in runs if r.get("complete") and "test" in r and r["role"] == "variant"]
    for key, marker, color, label in (
        ("schedule", "^", "C2", "cosine learning-rate decay"),
        ("epochs", "s", "C1", ""),
        ("filters", "D", "C4", "artefact filters"),
    ):
        mine = [r for r in variants if key in r]
        if mine:
            label = label or f"{mine[0]['epochs']} epochs"
            x = [r["train_patterns"] * 1.04 for r in mine]
            ax.plot(x, [r["test"]["accuracy"] * 100 for r in mine], marker, color=color, ms=5, label=label)
    ax.axhline(99, color="C3", ls="--", lw=1, label="paper (99 %)")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], rotation=30)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training patterns")
    ax.set_ylabel("five-class test accuracy (%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


def _data_options(parser: argparse.ArgumentParser) -> None:
    """What the simulated data and the paper-scale runs are: shared by ``run`` and ``rundir``."""
    parser.add_argument("--work", default="/tmp/e1_scale_jax", help="simulated arrays and the XLA cache")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE, as spizoo's --set")
    parser.add_argument("--train-patterns", type=int, default=PAPER_TRAIN_PATTERNS)
    parser.add_argument("--validation-patterns", type=int, default=VALIDATION_PATTERNS)
    parser.add_argument("--epochs", type=int, default=20, help="seed 000: 20 (0: the config's)")
    parser.add_argument("--test-models", type=int, default=600)
    parser.add_argument("--test-patterns-per-model", type=int, default=5)
    parser.add_argument("--test-seed", type=int, default=1000)
    parser.add_argument("--precision", default="mixed_float16")
    parser.add_argument("--sim-processes", type=int, default=os.cpu_count())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="simulate, train and test (Keras on JAX)")
    r.add_argument("--out", required=True, help="where runs.jsonl and the paper-scale run directories go")
    _data_options(r)
    r.add_argument("--paper-seeds", type=int, nargs="*", default=[0, 1])
    r.add_argument("--curve-seeds", type=int, nargs="*", default=[0, 1, 2])
    r.add_argument(
        "--curve-halvings",
        type=int,
        nargs="*",
        default=[1, 2, 3, 4, 5],
        help="the curve's training sets: K for 1/2**K of the paper's particle models (none: no curve)",
    )
    r.add_argument(
        "--variants",
        nargs="*",
        choices=VARIANTS,
        default=["cosine", "longer"],
        help="runs of what costs no extra data, beside the curve's (none: no variants)",
    )
    r.add_argument("--processes", type=int, default=8, help="runs training at once on the GPU")
    r.add_argument("--budget-s", type=float, default=500.0, help="wall time after which training stops")
    r.set_defaults(func=run)
    d = sub.add_parser("rundir", help="run directories of an earlier run's paper-scale models")
    d.add_argument("runs", help="runs.jsonl, beside the e1_paper_seed<S>.keras and patterns_paper_seed<S>.csv files")
    d.add_argument("--out", required=True)
    _data_options(d)
    d.set_defaults(func=rundir)
    p = sub.add_parser("plot", help="the learning curve of runs.jsonl files")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.set_defaults(func=plot)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
