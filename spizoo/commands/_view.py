"""How the verbs that read experiment data (classify, ingest, monitor) find it: ``--geometry``, ``--bin``
and ``--pixels`` (module-stacked frames of AGIPD, JUNGFRAU, … → model images), ``--source`` and ``--trains``
(European XFEL run directories)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import experiment
from spizoo.core.config import ConfigError
from spizoo.data.euxfel import parse_trains
from spizoo.data.frames import ViewFinder
from spizoo.sim import spi


def add_view_args(parser: argparse.ArgumentParser, *, model: bool) -> None:
    """The options; with ``model``, their defaults come from the config the model was trained on."""
    trained = " (default: the model's training config, else %s)" if model else " (default: %s)"
    parser.add_argument(
        "--geometry",
        help="CrystFEL .geom file of module-stacked frames (n, modules, ss, fs) (default: FILE.geom beside each "
        "file" + (", else the detector the model was trained on)" if model else ")"),
    )
    parser.add_argument(
        "--bin", type=int, help="detector pixels per image pixel along each axis" + trained % "1"
    )  # fmt: skip
    parser.add_argument(
        "--pixels", type=int, nargs=2, metavar=("H", "W"), help="image size around the beam" + trained % "128 128"
    )


def _training_config(model: str) -> experiment.Config | None:
    """The resolved config of a run directory or an exported SavedModel (``assets/config.yaml``)."""
    if model.startswith(("http://", "https://", "grpc://")):
        return None
    path = Path(model)
    candidates = [path / "config.yaml", path / "assets" / "config.yaml"]
    candidates += sorted(path.glob("[0-9]*/assets/config.yaml"), key=lambda p: int(p.parent.parent.name))[-1:]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return experiment.load(candidate)
            except (ConfigError, ValueError):
                return None
    return None


def view_finder(args: argparse.Namespace, model: str | None = None) -> ViewFinder:
    """The views of the files a verb reads: ``--geometry``/``--bin``/``--pixels``, defaulting to the
    model's training view (``sim.detector``) when it was trained on a detector geometry."""
    pixels, bin, default = (128, 128), 1, None
    config = _training_config(model) if model else None
    if config is not None and isinstance(config.sim, spi.SpiConfig) and config.sim.detector.geometry is not None:
        pixels, bin, default = tuple(config.sim.detector.pixels), config.sim.detector.bin, config.sim.layout()
    if args.bin is not None and args.bin < 1:
        raise ValueError(f"--bin must be >= 1, got {args.bin}")
    if args.pixels is not None and min(args.pixels) < 1:
        raise ValueError(f"--pixels must be two positive sizes, got {args.pixels}")
    return ViewFinder(
        args.geometry,
        pixels=tuple(args.pixels) if args.pixels else pixels,
        bin=args.bin if args.bin is not None else bin,
        default=default,
    )


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """``--source`` and ``--trains`` for European XFEL run directories."""
    parser.add_argument(
        "--source",
        help="detector of a European XFEL run: its name (SPB_DET_AGIPD1M-1) or a glob of its module sources "
        "(SPB_DET_AGIPD1M-1/DET/*CH0:xtdf) (default: the run's only multi-module detector)",
    )
    parser.add_argument(
        "--trains", type=trains_slice, default=slice(None), metavar="START:STOP",
        help="trains of a run by index, as a Python slice (default: all)",
    )  # fmt: skip


def trains_slice(text: str) -> slice:
    """``--trains START:STOP`` as a slice (argparse reports a bad value as an error of --trains)."""
    try:
        return parse_trains(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
