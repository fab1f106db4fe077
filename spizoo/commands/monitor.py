"""``spizoo monitor``: classify frames as the DAQ writes them, and show the hit rate while the beam is on."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import plots
from spizoo.commands._common import add_model_args, input_dir, load_predictor, output_dir
from spizoo.serving.monitor import Monitor

DESCRIPTION = """\
    Watch DIRECTORY for CXI/HDF5 files (also files still growing), classify new frames every
    --interval seconds, append them to OUT/monitor.csv, print the hit rate and single-hit fraction
    of the last --window frames, and refresh OUT/monitor.png. A half-written file is retried, a
    corrupt one reported and skipped; restarted, it continues without classifying a frame twice.
    MODEL as for spizoo classify.

    example:
      spizoo monitor out/quick_run /data/run_0042 --out monitor_0042 --interval 2
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("directory", help="directory the DAQ writes files into")
    parser.add_argument("--out", help="results directory (default: ./spizoo-monitor-<DIRECTORY name>)")
    parser.add_argument("--pattern", default="*.cxi", help="file names to watch")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    parser.add_argument("--window", type=int, default=500, help="frames in the running hit rate")
    parser.add_argument("--retries", type=int, default=5, help="failed reads before a file is skipped as corrupt")
    parser.add_argument("--once", action="store_true", help="scan once and exit")


def run(args: argparse.Namespace) -> dict:
    input_dir(args.directory, "DIRECTORY", hint="give the directory the DAQ writes files into")
    out = args.out or f"spizoo-monitor-{Path(args.directory).resolve().name}"
    output_dir(out, "--out")
    monitor = Monitor(
        load_predictor(args.model, args.threshold),
        args.directory,
        out,
        pattern=args.pattern,
        window=args.window,
        batch_size=args.batch_size,
        retries=args.retries,
        dataset=args.dataset,
        plot=plots.hit_rate,
    )
    monitor.run(args.interval, once=args.once)
    return {"out": out, **monitor.rates()}


def summary_line(summary: dict) -> str:
    return (
        f"{summary['frames']:,} frames classified into {summary['out']}; last hit rate {summary['hit_rate']:.2f}, "
        f"single hits {summary['single_hit_fraction']:.2f}"
    )
