"""``spizoo train``: fit a registered model on a generated dataset into a run directory."""

from __future__ import annotations

import argparse

from spizoo import experiment
from spizoo.commands._common import add_set, input_dir, input_file, output_dir
from spizoo.models import training

DESCRIPTION = """\
    Fit config.model on DATA's training split, validating on its validation split, into OUT:
    config.yaml, dataset statistics, backup/ (the same command after a crash resumes from the last
    finished epoch), best.keras, last.keras, history.csv, logs/ (TensorBoard), training.json.
    VGG16 feature models (model.name: vgg16_features) are fitted by logistic regression instead
    and give best.keras and training.json.

    example:
      spizoo generate configs/quickstart.yaml --out out/quick_ds
      spizoo train configs/quickstart.yaml --data out/quick_ds --out out/quick_run
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with model, train and data sections")
    parser.add_argument("--data", required=True, help="dataset directory made by spizoo generate")
    parser.add_argument("--out", required=True, help="run directory (reused to resume)")
    add_set(parser)


def run(args: argparse.Namespace) -> dict:
    input_file(args.config, "CONFIG", suggest="*.yaml")
    input_dir(args.data, "--data", hint="make a dataset with `spizoo generate CONFIG --out DIR`")
    output_dir(args.out, "--out")
    config = experiment.load(args.config, args.set)
    return {**training.train(config, args.data, args.out), "run": args.out}


def summary_line(summary: dict) -> str:
    final = summary.get("final", {})
    shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in ("accuracy", "val_accuracy", "val_loss"))
    return f"trained {summary['run']} (best model {summary['run']}/best.keras){': ' + shown if shown else ''}"
