"""Experiment 4 (seed 001 §3) at the largest scale one GPU node allows, with Keras 3 on JAX, for the GPU nodes
that have JAX but no TensorFlow (as ``scripts/e1_scale_jax.py`` does experiment 1, whose trainer processes,
training loop and run directories this script shares). It runs on Keras's TensorFlow backend too (as its
test does, at a tiny scale).

    KERAS_BACKEND=jax python scripts/e4_scale_jax.py run --out DIR [--train-patterns 20000] [--budget-s 540]

``run`` simulates ``--train-patterns`` distinct wide-angle MSFT patterns with :mod:`spizoo.sim` (the e4
config's silver icosahedra; in parallel on the node's cores), each expanded by seed 001's filters into
``--copies`` images (by default the paper's eleven-fold expansion: each of its eleven filters once, identity
first; ``--copies 2 --filters identity combination`` is the reduced e4 config's), a clean validation set
after them and a clean test set of another seed. Then, per ``--seeds`` (several runs share the GPU, one
process each), it trains the e4 ResNet-34 regressor as ``spizoo train`` does: Adam at the config's rate
(10⁻⁴), batch 32, MSE on (q0, q1, q2, q3, R) scaled to [−1, 1], no flips (a flip changes the orientation
the target states), precise batch-norm statistics before each validation and the weights of the lowest
validation loss; then the test set, reported by :func:`spizoo.models.evaluation.regressor_report` (seed 001
appendix C's relative errors). A run still training at ``--budget-s`` stops there (``complete: false``)
and is tested with its best epoch so far.

Written to ``--out``: ``runs.jsonl`` (a line per run), ``environment.json``, and a run directory
``e4_seed<S>/`` per run (``best.keras``, ``config.yaml``, ``dataset_info.json``, ``training.json``,
``history.csv``, ``evaluation/report.json`` and ``relative_errors.png``), which ``spizoo evaluate`` and
``spizoo export`` take. On a node without spizoo installed, see ``scripts/e1_scale_jax.py``.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import e1_scale_jax as shared  # noqa: I001 - this folder's: trainer processes, training loop, run directories
import numpy as np

CONFIG = "configs/experiments/e4_resnet34_msft.yaml"
MADE_BY = "scripts/e4_scale_jax.py"
BLOCK = 25  # patterns per simulation task


# ---- simulation (worker processes; numpy and finufft only) -------------------------------------------------


def _simulate_block(task) -> list[tuple]:
    """Patterns ``indices`` of ``(sim_cfg, seed)``, centre-cropped as the pipeline does, each through the
    ``policy``'s filters (or as simulated, without one) into ``copies`` consecutive rows of the memory-mapped
    image file from row ``(index - first) * copies``; returns each pattern's target, radius and background."""
    from spizoo.core import seeds
    from spizoo.data.pipeline import centre_crop
    from spizoo.sim import wideangle

    sim_cfg, seed, indices, first, images_path, crop, policy = task
    images = np.load(images_path, mmap_mode="r+")
    copies = policy.copies if policy else 1
    meta = []
    for i in indices:
        p = wideangle.simulate_pattern(sim_cfg, seed, i)
        image = centre_crop(p.image, crop)
        made = policy.apply(image, seeds.augment_rng(seed, i, 0)) if policy else [("none", image)]
        for k, (_, img) in enumerate(made):
            images[(i - first) * copies + k] = img
        meta.append((p.target(sim_cfg.circumradius_nm), p.radius_nm, p.background))
    images.flush()
    return meta


def simulate(sim_cfg, seed: int, first: int, n: int, crop: int, path: Path, pool, policy=None) -> dict:
    """Patterns ``first … first + n - 1`` into ``path`` (``policy.copies`` rows each with a policy), their
    targets and parameters as arrays."""
    copies = policy.copies if policy else 1
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n * copies, crop, crop))
    del images
    blocks = [range(b, min(b + BLOCK, first + n)) for b in range(first, first + n, BLOCK)]
    tasks = [(sim_cfg, seed, block, first, str(path), crop, policy) for block in blocks]
    rows = [r for meta in pool.imap(_simulate_block, tasks) for r in meta]
    return {
        "target": np.array([r[0] for r in rows], np.float32),
        "radius_nm": np.array([r[1] for r in rows]),
        "background": np.array([r[2] for r in rows]),
    }


# ---- training (one process per concurrent run) --------------------------------------------------------------


def _steps(job: dict, setup: dict) -> int:
    return job["patterns"] * setup["copies"] // setup["batch_size"]


def _train_run(job: dict, setup: dict) -> dict:
    from spizoo import plots
    from spizoo.commands.evaluate import TARGETS
    from spizoo.models import evaluation, registry

    train_images = np.load(setup["train_images"], mmap_mode="r")
    train_targets = np.repeat(np.load(setup["train_targets"]), setup["copies"], axis=0)
    x_val, y_val = np.load(setup["validation_images"])[..., None], np.load(setup["validation_targets"])
    name = setup["model"]
    build = functools.partial(shared.build_model, name, x_val.shape[1:])

    rows = np.arange(len(train_targets))
    train = (train_images, train_targets, rows)
    model, record = shared.fit(job, setup, build, train, (x_val, y_val), registry.task(name).loss, [], flips=False)

    test_images, test_targets = np.load(setup["test_images"]), np.load(setup["test_targets"])
    predicted = model.predict(test_images[..., None], batch_size=256, verbose=0).astype(np.float64)
    report = evaluation.regressor_report(predicted, test_targets.astype(np.float64))
    per_pattern = report.pop("_per_pattern")
    report["mean_error_by_parameter"] = dict(zip(TARGETS, report["per_parameter_mean_error"], strict=True))
    result = {**job, "train_images": int(len(rows)), **record, "test": report}

    def errors(directory: Path) -> None:
        plots.error_histograms(per_pattern["mean"], per_pattern["max"], directory / "relative_errors.png")

    run_dir = Path(setup["out"]) / f"e4_seed{job['seed']}"
    shared.write_run(
        run_dir,
        setup["run_configs"][job["seed"]],
        setup["info"],
        result,
        functools.partial(shared.save_float32, build, model),
        errors,
        MADE_BY,
    )
    return result


# ---- the command --------------------------------------------------------------------------------------------


def run(args) -> None:
    from spizoo.sim.augment import AugmentPolicy
    from spizoo.sim.parallel import worker_pool

    t0, out, work, config = shared.start(args)
    if config.sim.kind != "msft" or config.data.normalize != "none" or config.data.flip:
        raise SystemExit(
            f"{args.config}: this script simulates sim.kind: msft and feeds its [0, 1] log images as they are "
            "(data.normalize: none, data.flip: false), as e4_resnet34_msft.yaml"
        )
    policy = AugmentPolicy(copies=args.copies, **({"filters": tuple(args.filters)} if args.filters else {}))
    crop, n_train, n_val = config.data.crop, args.train_patterns, args.validation_patterns
    with worker_pool(args.sim_processes) as pool:
        train = simulate(config.sim, config.seed, 0, n_train, crop, work / "train.npy", pool, policy)
        val = simulate(config.sim, config.seed, n_train, n_val, crop, work / "validation.npy", pool)
        test = simulate(config.sim, args.test_seed, 0, args.test_patterns, crop, work / "test.npy", pool)
    t_sim = time.time() - t0
    for split, columns in (("train", train), ("validation", val), ("test", test)):
        np.save(work / f"{split}_targets.npy", columns["target"])
    print(
        f"simulated {n_train} x {policy.copies} + {n_val} + {args.test_patterns} patterns in {t_sim:.0f} s "
        f"({args.sim_processes} processes)",
        flush=True,
    )

    setup = {
        **{f"{split}_images": str(work / f"{split}.npy") for split in ("train", "validation", "test")},
        **{f"{split}_targets": str(work / f"{split}_targets.npy") for split in ("train", "validation", "test")},
        "copies": policy.copies,
        "batch_size": config.data.batch_size,
        "epochs": args.epochs or config.train.epochs,
        "train": config.train,
        "model": config.model.name,
        "precision": args.precision,
        "out": str(out),
        "run_configs": {s: run_config(args, s, policy) for s in args.seeds},
        "info": dataset_info(config, policy, train, val, test),
        "jax_cache": str(work / "jax_cache"),
        "deadline": t0 + args.budget_s,
    }
    shared.write_environment(
        out,
        args,
        t_sim,
        train_patterns=n_train,
        copies=policy.copies,
        filters=list(policy.filters),
        validation_patterns=n_val,
        test_patterns=args.test_patterns,
        test_seed=args.test_seed,
    )

    def line(r: dict) -> str:
        error = r["test"]["mean_relative_error"]["mean"]
        return (
            f"seed {r['seed']}, {r['train_images']:,} training images: test mean relative error {error:.2%}, "
            f"{r['epochs_done']} epochs, {r['train_s']:.0f} s, complete={r['complete']}"
        )

    jobs = [{"role": "e4", "seed": s, "patterns": n_train} for s in args.seeds]
    shared.run_jobs(mp.get_context("spawn"), jobs, setup, _train_run, _steps, args.processes, out / "runs.jsonl", line)


def run_config(args, seed: int, policy):
    """A run's resolved config, as ``spizoo train`` would record it for a dataset of these splits."""
    from spizoo import experiment

    total = args.train_patterns + args.validation_patterns
    train = args.train_patterns / total
    filters = ", ".join(policy.filters)
    return experiment.load(
        args.config,
        [
            *args.set,
            f"seed={seed}",
            f"dataset.patterns={total}",
            f"dataset.splits={{train: {train!r}, validation: {1 - train!r}}}",
            "dataset.shards={train: 1, validation: 1}",
            f"augment.copies={policy.copies}",
            f"augment.filters=[{filters}]",
            f"train.epochs={args.epochs or experiment.load(args.config, args.set).train.epochs}",
            f"train.mixed_precision={args.precision}",
        ],
    )


def dataset_info(config, policy, train: dict, val: dict, test: dict) -> dict:
    """What ``spizoo generate`` records of a dataset (``dataset_info.json``) for the arrays simulated here."""
    import spizoo
    from spizoo.core.config import to_dict

    crop = config.data.crop
    return {
        "name": config.dataset.name,
        "spizoo_version": spizoo.__version__,
        "kind": config.sim.kind,
        "image_shape": [crop, crop],
        "made_by": f"{MADE_BY}: simulated into memory (no TFRecord files); test: another seed",
        "splits": {
            "train": {"patterns": len(train["target"]), "examples": len(train["target"]) * policy.copies},
            "validation": {"patterns": len(val["target"])},
            "test": {"patterns": len(test["target"])},
        },
        "stats": {"split": "train", "count": len(train["target"]) * policy.copies, "values": [0.0, 1.0, False]},
        "sampling": config.sim.sampling(),
        "config": to_dict(config),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="simulate, train and test")
    r.add_argument("--out", required=True, help="where runs.jsonl and the run directories go")
    r.add_argument("--work", default="/tmp/e4_scale_jax", help="simulated arrays and the XLA cache")
    r.add_argument("--config", default=CONFIG)
    r.add_argument("--set", action="append", default=[], help="config override KEY=VALUE, as spizoo's --set")
    r.add_argument("--train-patterns", type=int, default=20_000, help="distinct training patterns")
    r.add_argument("--copies", type=int, default=11, help="images per training pattern (seed 001: 11)")
    r.add_argument("--filters", nargs="*", help="filters, one per copy, cycling (default: the paper's eleven)")
    r.add_argument("--validation-patterns", type=int, default=1_000)
    r.add_argument("--test-patterns", type=int, default=1_000)
    r.add_argument("--test-seed", type=int, default=1000)
    r.add_argument("--epochs", type=int, default=15, help="0: the config's")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--precision", default="mixed_float16")
    r.add_argument("--processes", type=int, default=1, help="runs training at once on the GPU")
    r.add_argument("--sim-processes", type=int, default=os.cpu_count())
    r.add_argument("--budget-s", type=float, default=540.0, help="wall time after which training stops")
    r.set_defaults(func=run)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
