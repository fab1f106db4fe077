"""Arguments and helpers that several verbs share: options, path checks, progress, and the summary a person
reads."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from spizoo import experiment
from spizoo.core.task import Task
from spizoo.models import zoo
from spizoo.models.precision import PRECISIONS
from spizoo.serving.predictor import Predictor, from_run, from_saved_model, from_server


def add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (``--seed``)."""
    return _int_at_least(text, 0, "a non-negative integer")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``--workers``, ``-n``)."""
    return _int_at_least(text, 1, "a positive integer")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def model_reference(text: str) -> str:
    """A MODEL or RUN_DIR argument as a path: ``zoo:NAME`` becomes the zoo model's directory."""
    try:
        return zoo.resolve(text)
    except KeyError as err:
        raise argparse.ArgumentTypeError(err.args[0]) from None


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """MODEL and the options of the verbs that run it on experiment files (classify, monitor)."""
    parser.add_argument(
        "model",
        type=model_reference,
        help="run directory, zoo model (zoo:NAME, spizoo zoo list), SavedModel directory, or server URL with the "
        "model name",
    )
    add_dataset(parser)
    parser.add_argument(
        "--threshold",
        type=float,
        help="single-hit score threshold (default: the run's evaluated operating point, else 0.5)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="frames per model call")
    add_precision(parser)
    add_strict(parser)


def add_precision(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--precision``: what a run directory's or zoo model's network computes in (``default`` None: ``auto``, and
    a SavedModel or server computes as it was exported)."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help=f"what the network computes in (default {default or 'auto'}; auto: bfloat16 on a CPU with bfloat16 "
        "arithmetic, float16 on a GPU, else float32); outputs are float32 either way"
        + ("; a SavedModel or server computes as it was exported" if default is None else ""),
    )


def add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse frames unlike the model's training frames (pixel angle, photon energy, value scale) "
        "instead of warning",
    )


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


def load_predictor(model: str, threshold: float | None = None, precision: str | None = None) -> Predictor:
    """The :class:`~spizoo.serving.predictor.Predictor` of a run directory (``spizoo train``), a zoo model
    (``zoo:NAME``), an exported SavedModel (a version, or a base path: its newest version) or a server URL
    naming the model (``http://host:8501/NAME``, ``grpc://host:8500/NAME``). ``precision``: what a run's
    network computes in (default ``auto``).

    Raises:
        FileNotFoundError: for a path that is none of these, naming what it lacks.
        ValueError: for a ``precision`` given with a SavedModel or server, which compute as exported.
    """
    path = Path(zoo.resolve(model))
    if (path / "best.keras").exists():
        config, task = load_run(path)
        return from_run(path, config.data, task, threshold, precision or "auto")
    if model.startswith(("http://", "https://", "grpc://")):
        kind = "a model server"
    elif (path / "saved_model.pb").exists() or any(p.name.isdigit() for p in path.glob("*")):
        kind = "an exported SavedModel"
    else:
        raise FileNotFoundError(
            f"{model}: not a run directory (no best.keras), an exported SavedModel (no saved_model.pb or numbered "
            "versions) or a server URL (http://, grpc://)"
        )
    if precision is not None:
        raise ValueError(
            f"--precision {precision}: {model} is {kind}, which computes as it was exported (spizoo export --precision)"
        )
    return from_server(model, threshold) if kind == "a model server" else from_saved_model(path, threshold)


# Progress of long loops: a bar on a terminal; in a log file or a pipe a line now and then, never a line per step.


class Progress:
    """Progress over ``total`` steps (``update(n)``, or iterate over ``iterable``), written to ``stream``
    (standard error): a tqdm bar when it is a terminal, otherwise a line ``DESC: 40/120 UNITs (33%), 12 s`` when
    another tenth of the work is done, at most one per ``interval`` seconds, and a last line if any was written.

    Args:
        iterable: what to iterate over (optional).
        total: the number of steps (default: ``len(iterable)`` where it has one).
        desc, unit: the line's label and the name of a step.
        leave: on a terminal, keep the finished bar (tqdm's ``leave``).
        interval: least seconds between two lines when not on a terminal.
        stream, clock: where to write and what time it is (for tests).
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str,
        unit: str,
        initial: int = 0,
        leave: bool = True,
        interval: float = 10.0,
        stream=None,
        clock=time.monotonic,
    ):
        self.iterable = iterable
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.clock = interval, clock
        self.start = self.last = clock()
        self.tenths, self.lines, self.shown = self._tenths(), 0, initial
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm  # a terminal's bar

            self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=self.stream)

    def _tenths(self) -> int:
        return int(10 * self.done / self.total) if self.total else 0

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = self.clock()
        tenths = self._tenths()
        if (tenths > self.tenths or not self.total) and now - self.last >= self.interval:
            self._line(now)
            self.tenths = tenths

    def set(self, done: int) -> None:
        """Moves to ``done`` steps (for a count polled from elsewhere)."""
        if done > self.done:
            self.update(done - self.done)

    def _line(self, now: float) -> None:
        of = f"/{self.total:,}" if self.total else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.done:,}{of} {self.unit}s{share}, {now - self.start:.0f} s", file=self.stream)
        self.stream.flush()
        self.last, self.lines, self.shown = now, self.lines + 1, self.done

    def close(self) -> None:
        """Ends the bar; after lines, the last one (the count reached), once."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.lines and self.done != self.shown:
            self._line(self.clock())


# What a verb prints when it is done: its headline, then a few aligned lines (what is where, the key figures, the
# next command); ``--json`` prints the whole summary instead.


def json_text(value) -> str:
    """``value`` as indented JSON, with every list of plain values on one line (a confusion matrix is a few
    rows of numbers, not one number a line); ``json.loads`` gives back the same value."""

    def text(item, depth: int) -> str:
        pad, end = "  " * (depth + 1), "  " * depth
        if isinstance(item, dict) and item:
            inner = ",\n".join(f"{pad}{json.dumps(str(k))}: {text(v, depth + 1)}" for k, v in item.items())
            return "{\n" + inner + "\n" + end + "}"
        if isinstance(item, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in item):
            return "[\n" + ",\n".join(pad + text(v, depth + 1) for v in item) + "\n" + end + "]"
        return json.dumps(list(item) if isinstance(item, tuple) else item)

    return text(value, 0)


def report_text(headline: str, rows: list[tuple[str, str]]) -> str:
    """The headline, then one ``label  value`` line per row with the values aligned (a value of several lines
    keeps its column)."""
    rows = [(label, str(value)) for label, value in rows if value not in (None, "")]
    width = max((len(label) for label, _ in rows), default=0)
    lines = [headline]
    for label, value in rows:
        first, *more = value.splitlines() or [""]
        lines.append(f"  {label:<{width}}  {first}")
        lines.extend(f"  {'':<{width}}  {line}" for line in more)
    return "\n".join(lines)


def quoted(path: str | Path) -> str:
    """A path as a shell word (quoted where it has to be), for the command a summary suggests next."""
    return shlex.quote(str(path))
