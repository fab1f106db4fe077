"""``spizoo monitor``: classify frames as the DAQ writes them, and show the hit rate while the beam is on."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import plots
from spizoo.commands._common import add_model_args, input_dir, load_predictor, output_dir
from spizoo.commands._view import add_run_args, add_view_args, view_finder
from spizoo.data.euxfel import is_run_directory
from spizoo.serving.monitor import BridgeMonitor, Monitor, RunMonitor

DESCRIPTION = """\
    Watch DIRECTORY for CXI/HDF5 files (also files still growing), classify new frames every
    --interval seconds, append them to OUT/monitor.csv, print the hit rate and single-hit fraction
    of the last --window frames, and refresh OUT/monitor.png. A half-written file is retried, a
    corrupt one reported and skipped; restarted, it continues without classifying a frame twice.
    MODEL as for spizoo classify; module-stacked frames go through their geometry as there.

    A European XFEL run directory (or any DIRECTORY with --source) is watched as the DAQ writes
    it: each scan classifies the trains after the last one done (rows per frame with train, pulse
    and memory cell); the newest train waits until the files stop changing or a newer one appears.

    With --karabo-bridge ENDPOINT instead of DIRECTORY, classify the frames of European XFEL's live
    stream as trains arrive (rows per frame with train, pulse and memory cell), with the hit rate of
    each train; a paused stream or a restarted bridge is waited for and reconnected, and a restart
    never classifies a train twice.

    example:
      spizoo monitor out/quick_run /data/run_0042 --out monitor_0042 --interval 2
      spizoo monitor out/agipd_run /gpfs/exfel/exp/SPB/202401/p002012/proc/r0042 --geometry agipd.geom \
          --source SPB_DET_AGIPD1M-1 --out monitor_r0042
      spizoo monitor out/agipd_run --karabo-bridge tcp://exflonc05:45000 --geometry agipd.geom --out live
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("directory", nargs="?", help="directory the DAQ writes files into")
    parser.add_argument(
        "--karabo-bridge", metavar="ENDPOINT", help="a karabo-bridge stream to classify instead (tcp://HOST:PORT)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds without a train before reconnecting")
    parser.add_argument("--out", help="results directory (default: ./spizoo-monitor-<DIRECTORY name or PORT>)")
    parser.add_argument("--pattern", default="*.cxi", help="file names to watch")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    parser.add_argument("--window", type=int, default=500, help="frames in the running hit rate")
    parser.add_argument("--retries", type=int, default=5, help="failed reads before a file is skipped as corrupt")
    parser.add_argument("--once", action="store_true", help="scan once and exit")
    add_view_args(parser, model=True)
    add_run_args(parser)


def run(args: argparse.Namespace) -> dict:
    if (args.directory is None) == (args.karabo_bridge is None):
        raise ValueError("give DIRECTORY (files the DAQ writes) or --karabo-bridge ENDPOINT (a live stream), not both")
    if args.karabo_bridge is not None and not args.karabo_bridge.startswith("tcp://"):
        raise ValueError(f"--karabo-bridge must be a tcp://HOST:PORT endpoint, got {args.karabo_bridge!r}")
    if args.directory is not None:
        input_dir(args.directory, "DIRECTORY", hint="give the directory the DAQ writes files into")
    name = Path(args.directory).resolve().name if args.directory else args.karabo_bridge.rsplit(":", 1)[-1]
    out = args.out or f"spizoo-monitor-{name}"
    output_dir(out, "--out")
    predictor, view = load_predictor(args.model, args.threshold, args.precision), view_finder(args, args.model)
    common = {"window": args.window, "batch_size": args.batch_size, "plot": plots.hit_rate, "strict": args.strict}
    if args.karabo_bridge:
        monitor = BridgeMonitor(predictor, args.karabo_bridge, out, view=view, timeout=args.timeout, **common)
    elif args.source or is_run_directory(args.directory):
        monitor = RunMonitor(
            predictor, args.directory, out, view=view, source=args.source, trains=args.trains, **common
        )  # fmt: skip
    else:
        monitor = Monitor(
            predictor, args.directory, out, pattern=args.pattern, retries=args.retries, dataset=args.dataset,
            view=view, **common,
        )  # fmt: skip
    monitor.run(args.interval, once=args.once)
    return {"out": out, **monitor.rates()}


def summary_line(summary: dict) -> str:
    return (
        f"{summary['frames']:,} frames classified into {summary['out']}; last hit rate {summary['hit_rate']:.2f}, "
        f"single hits {summary['single_hit_fraction']:.2f}"
    )
