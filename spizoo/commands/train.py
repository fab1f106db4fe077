"""``spizoo train``: fit a registered model on a generated dataset into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import experiment
from spizoo.commands._common import add_set, input_dir, input_file, output_dir, quoted
from spizoo.core.config import from_dict
from spizoo.data import files as dfiles
from spizoo.data.pipeline import load_dataset_info
from spizoo.models import training

DESCRIPTION = """\
    Fit config.model on DATA's training split, validating on its validation split, into OUT:
    config.yaml, dataset statistics, backup/ (the same command after a crash or Ctrl-C resumes from
    the last finished epoch), best.keras (the lowest validation loss), last.keras, history.csv,
    logs/ (TensorBoard), training.json. VGG16 feature models (model.name: vgg16_features, seed 000
    section 4.2: Han & Li's VGG16 features + logistic regression) are fitted by logistic regression
    instead and give best.keras and training.json. The dataset, its splits and OUT are checked
    before TensorFlow loads.

    example:
      spizoo generate configs/quickstart.yaml --out out/quick_ds
      spizoo train configs/quickstart.yaml --data out/quick_ds --out out/quick_run
    """
INTERRUPTED = "interrupted; the same command resumes from the last finished epoch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with model, train and data sections")
    parser.add_argument(
        "--data",
        required=True,
        help="dataset directory made by spizoo generate (a path, or a URL TensorFlow reads: gs://…)",
    )
    parser.add_argument("--out", required=True, help="run directory (reused to resume)")
    add_set(parser)


def run(args: argparse.Namespace) -> dict:
    input_file(args.config, "CONFIG", suggest="*.yaml")
    if not dfiles.is_url(args.data):  # a URL's dataset_info.json is looked for below
        input_dir(args.data, "--data", hint="make a dataset with `spizoo generate CONFIG --out DIR`")
    output_dir(args.out, "--out")
    config = experiment.load(args.config, args.set)
    # What needs no TensorFlow is checked before it loads (seconds): the dataset, its splits, the run directory.
    info = load_dataset_info(args.data)
    check_splits(config, args.config, args.data, info)
    training._check_same_run(training.worker_run_dir(Path(args.out), config.train.strategy), config, info)
    return {**training.train(config, args.data, args.out), "run": args.out}


def check_splits(config: experiment.Config, config_file: str, data: str, info: dict) -> None:
    """The splits training reads have examples; else an error saying why (splits go by whole particle models)
    and the ``spizoo generate`` command that makes a dataset whose every split has some.

    Raises:
        ValueError: naming the split, the dataset's units per split and the command.
    """
    splits = info.get("splits", {})
    for split in (config.train.train_split, config.train.validation_split):
        if splits.get(split, {}).get("examples"):
            continue
        if split not in splits:
            raise ValueError(
                f"{data} has no split {split!r} (its splits: {', '.join(splits)}); set train.train_split and "
                "train.validation_split to two of them"
            )
        units = {name: s.get("models", 0) for name, s in splits.items()}
        where = " and ".join(f"{n} to {name}" for name, n in units.items() if n)
        needed = _patterns_filling_splits(info)
        again = f"spizoo generate {quoted(config_file)} --out {quoted(data)} --overwrite" + (
            f" --set dataset.patterns={needed}" if needed else " with more dataset.patterns"
        )
        raise ValueError(
            f"{data} has no examples in its {split!r} split, which training needs: splits go by whole particle "
            f"models (or frame blocks), and its {sum(units.values())} went {where}; make the dataset again with "
            f"more patterns: {again}"
        )


def _patterns_filling_splits(info: dict) -> int | None:
    """The ``dataset.patterns`` that gives each split of the dataset's own config a few units (``None`` for a
    dataset not made by ``spizoo generate``, e.g. ``spizoo ingest``)."""
    try:
        config = from_dict(experiment.Config, info.get("config"))
    except (ValueError, TypeError):
        return None
    from spizoo.beam_pipelines.generate import patterns_filling_splits  # loads Beam: only for this message

    return patterns_filling_splits(config)


def summary_line(summary: dict) -> str:
    final = summary.get("final", {})
    shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in ("accuracy", "val_accuracy", "val_loss"))
    return f"trained {summary['run']} (best model {summary['run']}/best.keras){': ' + shown if shown else ''}"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    run = Path(summary["run"])
    final = summary.get("final", {})
    epochs = summary.get("epochs")
    resumed = summary.get("resumed_from_epoch")
    test = dfiles.join(args.data, "*-test.tfrecord-*")
    rows = [
        ("best model", f"{run / 'best.keras'} (lowest validation loss)"),
        ("last model", f"{run / 'last.keras'}" if (run / "last.keras").exists() else None),
        ("history", f"{run / 'history.csv'}; curves: tensorboard --logdir {run / 'logs'}" if epochs else None),
        ("epochs", f"{epochs}" + (f" (resumed after epoch {resumed})" if resumed else "") if epochs else None),
        ("fitted by", "logistic regression on VGG16 features" if summary.get("trained_by") else None),
        ("final", ", ".join(f"{k} {v:.4g}" for k, v in final.items()) if final else None),
        ("next", f"spizoo evaluate {quoted(run)} --data {quoted(test)}"),
    ]
    return rows
