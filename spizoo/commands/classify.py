"""``spizoo classify``: every frame of experiment files through a model, into a separate results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo import plots
from spizoo.commands._common import add_model_args, load_predictor
from spizoo.commands._view import add_run_args, add_view_args, view_finder
from spizoo.serving.classify import classify_files

DESCRIPTION = """\
    Run MODEL on every frame of FILES (read only, a batch at a time) and write, per file and frame,
    the model's outputs (class probabilities, class, single-hit score and flag; or orientation and
    size) to OUT (.h5, .csv, or .cxi: CXI 1.6 score and tags), a PNG of the hit rate over frames,
    and a summary.

    MODEL: a run directory, an exported SavedModel (version or base path), or a server URL naming
    the model (http://HOST:8501/NAME, grpc://HOST:8500/NAME). The single-hit threshold is
    --threshold, else the run's evaluated operating point, else 0.5.

    Module-stacked frames (n, modules, ss, fs), e.g. AGIPD's (n, 16, 512, 128), are summed into the
    image the model was trained on (--bin x --bin pixels per cell, --pixels around the beam) through
    their detector geometry: --geometry, else FILE.geom beside the file, else the model's detector.
    A European XFEL run directory (calibrated data) is read a few trains at a time (--source, --trains);
    its results carry train_id, pulse_id and cell_id per frame.

    example:
      spizoo classify out/quick_run run_0042.cxi run_0043.cxi --out results/run_42_43.h5
      spizoo classify out/agipd_run agipd_run_0007.cxi --geometry agipd_p2012.geom --out results/r7.h5
      spizoo classify out/agipd_run /gpfs/exfel/exp/SPB/202401/p002012/proc/r0042 --geometry agipd.geom \
          --source SPB_DET_AGIPD1M-1 --out results/r42.h5
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("files", nargs="+", help="CXI or HDF5 files, or European XFEL run directories")
    parser.add_argument(
        "--out", required=True, help="results file (.h5, .csv or .cxi for CXI 1.6 score and tags); never overwritten"
    )
    add_view_args(parser, model=True)
    add_run_args(parser)


def run(args: argparse.Namespace) -> dict:
    predictor = load_predictor(args.model, args.threshold)
    view = view_finder(args, args.model)
    summary, results = classify_files(
        predictor,
        args.files,
        args.out,
        batch_size=args.batch_size,
        dataset=args.dataset,
        view=view,
        source=args.source,
        trains=args.trains,
        strict=args.strict,
    )
    if "single_hit" in results and len(results["frame"]):
        path = Path(args.out).with_suffix(".png")
        summary["plot"] = str(plots.hit_rate(results["classes"], results["single_hit"], path))
    return summary


def summary_line(summary: dict) -> str:
    line = f"{summary['frames']:,} frames of {summary['files']} files ({summary['frames_per_second']:,} frames/s)"
    if "single_hit_fraction" in summary:
        line += f", single hits {summary['single_hit_fraction']:.1%} at threshold {summary['threshold']['value']:.3g}"
    if "unlike" in summary.get("frame_check", ""):
        line += f" ({summary['frame_check']})"
    return f"{line}; wrote {summary['out']}"
