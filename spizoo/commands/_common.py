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
    add_dataset(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        help="single-hit score threshold (default: the run's evaluated operating point, else 0.5)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="frames per model call")


def add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        help="path of the image stack inside plain HDF5 files, e.g. /data/frames "
        "(default: the CXI locations, /entry_1/data_1/data first)",
    )


# Checks of the paths a verb is given, before it starts work: a plain error naming the argument, never
# Python's "[Errno 21] Is a directory" after minutes of work or a half-written output.


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def input_file(path: str | Path, what: str, *, suggest: str = "*", hint: str = "") -> Path:
    """``path``, an existing file; else a plain error naming the argument ``what`` and, for a directory, its
    files matching ``suggest``; ``hint`` is added to the error for a missing file.

    Raises:
        IsADirectoryError, FileNotFoundError: with a message for the terminal.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.glob(suggest) if p.is_file())[:3]
        mean = f"; did you mean {' or '.join(str(p) for p in found)}?" if found else ""
        raise IsADirectoryError(f"{what} {path} is a directory, not a file{mean}")
    if not path.exists():
        parent = _first_existing(path.parent)
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"{what} {path}: {parent} is a file, not a directory")
        raise FileNotFoundError(f"{what} {path}: no such file{'; ' + hint if hint else ''}")
    return path


def input_dir(path: str | Path, what: str, *, hint: str = "") -> Path:
    """``path``, an existing directory; else a plain error naming the argument ``what``.

    Raises:
        NotADirectoryError, FileNotFoundError: with a message for the terminal.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a directory{'; ' + hint if hint else ''}")
    if not path.exists():
        raise FileNotFoundError(f"{what} {path}: no such directory{'; ' + hint if hint else ''}")
    return path


def output_dir(path: str | Path, what: str) -> Path:
    """``path``, a directory that exists or can be made (no file on its way); else a plain error.

    Raises:
        NotADirectoryError: with a message for the terminal.
    """
    path = Path(path)
    found = _first_existing(path)
    if found.exists() and not found.is_dir():
        if found == path:
            raise NotADirectoryError(f"{what} {path} is a file, not a directory")
        raise NotADirectoryError(f"{what} {path}: {found} is a file, not a directory")
    return path


def output_file(path: str | Path, what: str, *, example: str = "") -> Path:
    """``path``, a file that can be written (not a directory, no file on the way to it); else a plain error,
    suggesting ``path/example`` for a directory.

    Raises:
        IsADirectoryError, NotADirectoryError: with a message for the terminal.
    """
    path = Path(path)
    if path.is_dir():
        instead = f", e.g. {path / example}" if example else ""
        raise IsADirectoryError(f"{what} {path} is a directory; give the name of a file{instead}")
    found = _first_existing(path.parent)
    if found.exists() and not found.is_dir():
        raise NotADirectoryError(f"{what} {path}: {found} is a file, not a directory")
    return path


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
