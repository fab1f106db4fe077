"""Arguments and helpers that several verbs share."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import experiment
from spizoo.core.task import Task
from spizoo.serving.predictor import Predictor, from_run, from_saved_model, from_server


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """MODEL and the options of the verbs that run it on experiment files (classify, monitor)."""
    parser.add_argument("model", help="run directory, SavedModel directory, or server URL with the model name")
    parser.add_argument("--dataset", help="image stack inside the files (default: the CXI locations)")
    parser.add_argument("--threshold", type=float, help="single-hit score threshold")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per model call")


def load_run(run_dir: str | Path) -> tuple[experiment.Config, Task]:
    """The config and model task of a run directory made by ``spizoo train``.

    Raises:
        FileNotFoundError: if it holds no trained model.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "best.keras").exists():
        raise FileNotFoundError(f"no best.keras in {run_dir}: train first with `spizoo train … --out {run_dir}`")
    config = experiment.load(run_dir / "config.yaml")
    return config, experiment.task(config)


def load_predictor(model: str, threshold: float | None = None) -> Predictor:
    """The :class:`~spizoo.serving.predictor.Predictor` of a run directory (``spizoo train``), an exported
    SavedModel (a version, or a base path: its newest version) or a server URL naming the model
    (``http://host:8501/NAME``, ``grpc://host:8500/NAME``).

    Raises:
        FileNotFoundError, ValueError: for a path that is none of these, naming what it lacks.
    """
    if model.startswith(("http://", "https://", "grpc://")):
        return from_server(model, threshold)
    path = Path(model)
    if (path / "best.keras").exists():
        config, task = load_run(path)
        return from_run(path, config.data, task, threshold)
    if (path / "saved_model.pb").exists() or any(p.name.isdigit() for p in path.glob("*")):
        return from_saved_model(path, threshold)
    raise FileNotFoundError(
        f"{model}: not a run directory (no best.keras), an exported SavedModel (no saved_model.pb or numbered "
        "versions) or a server URL (http://, grpc://)"
    )
