"""``spizoo classify``: every frame of experiment files through a model, into a separate results file."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from spizoo import plots
from spizoo.commands._common import Progress, add_model_args, load_predictor
from spizoo.commands._session import in_own_session
from spizoo.commands._view import add_run_args, add_view_args, view_finder
from spizoo.data.euxfel import format_trains, parse_trains
from spizoo.serving import classify_pipeline
from spizoo.serving.classify import classify_files
from spizoo.serving.classify_pipeline import SUFFIXES, done, result_paths

PASSES_TO_BEAM = True
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

    With --out-dir DIR instead of --out, an Apache Beam pipeline classifies each input into its own
    DIR/NAME.h5 (--suffix), on any Beam runner (the local one on all cores by default; a cluster
    with e.g. --runner DaskRunner --dask_client_address HOST:PORT); a rerun skips the inputs done.

    example:
      spizoo classify out/quick_run run_0042.cxi run_0043.cxi --out results/run_42_43.h5
      spizoo classify out/agipd_run agipd_run_0007.cxi --geometry agipd_p2012.geom --out results/r7.h5
      spizoo classify out/agipd_run /gpfs/exfel/exp/SPB/202401/p002012/proc/r0042 --geometry agipd.geom \
          --source SPB_DET_AGIPD1M-1 --out results/r42.h5
      spizoo classify out/agipd_run /gpfs/exfel/exp/SPB/202401/p002012/proc/r00* --geometry agipd.geom \
          --out-dir results/p002012 --runner DaskRunner --dask_client_address tcp://10.1.2.3:8786
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_args(parser)
    parser.add_argument("files", nargs="+", help="CXI or HDF5 files, or European XFEL run directories")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="results file (.h5, .csv or .cxi for CXI 1.6 score and tags); never overwritten")
    out.add_argument(
        "--out-dir",
        help="classify each input into its own DIR/NAME.h5 with an Apache Beam pipeline (any Beam runner, e.g. "
        "--runner DaskRunner --dask_client_address HOST:PORT); a rerun skips the inputs done",
    )
    parser.add_argument(
        "--suffix", default=".h5", choices=SUFFIXES, help="with --out-dir: the results files' type (default: .h5)"
    )
    add_view_args(parser, model=True)
    add_run_args(parser)


def run(args: argparse.Namespace, beam_args: list[str]) -> dict:
    if args.out_dir:
        return _run_pipeline(args, beam_args)
    if beam_args:
        raise ValueError(f"Apache Beam's options ({' '.join(beam_args)}) need --out-dir (a results file per input)")
    predictor = load_predictor(args.model, args.threshold, args.precision)
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


PIPELINE_ARGS = ("model", "threshold", "precision", "files", "out_dir", "suffix", "batch_size", "dataset", "strict")
PIPELINE_ARGS += ("source", "geometry", "bin", "pixels")


def _run_pipeline(args: argparse.Namespace, beam_args: list[str]) -> dict:
    """``--out-dir``: the Beam pipeline, in a session of its own (one line on Ctrl-C), a bar over the inputs."""
    result_paths(args.files, args.out_dir, args.suffix)  # names that collide: refused before any work
    request = {"pipeline": "classify", "beam_args": list(beam_args), "verbose": args.verbose, "out": args.out_dir}
    request.update({name: getattr(args, name) for name in PIPELINE_ARGS}, trains=format_trains(args.trains))
    progress = Progress(total=len(args.files), desc="classify", unit="input", initial=done(args.out_dir))

    def interrupted() -> str:
        return (
            f"interrupted; {done(args.out_dir)} of {len(args.files)} inputs are classified in {args.out_dir}: the "
            "same command classifies the rest"
        )

    with progress:
        result = in_own_session(request, lambda: progress.set(done(args.out_dir)), interrupted)
    return {**result["summary"], "out": args.out_dir}


def run_pipeline(request: dict) -> dict:
    """The ``--out-dir`` pipeline of a request (in :mod:`spizoo.commands._session`'s child process)."""
    args = argparse.Namespace(**request)
    return classify_pipeline.run(
        args.files,
        args.out_dir,
        args.beam_args,
        make_predictor=functools.partial(load_predictor, args.model, args.threshold, args.precision),
        make_view=functools.partial(view_finder, args, args.model),
        suffix=args.suffix,
        batch_size=args.batch_size,
        dataset=args.dataset,
        source=args.source,
        trains=parse_trains(args.trains),
        strict=args.strict,
    )


def summary_line(summary: dict) -> str:
    if "inputs" in summary:  # --out-dir
        line = f"{summary['frames']:,} frames of {summary['inputs']} inputs"
        if "single_hit_fraction" in summary:
            line += (
                f", single hits {summary['single_hit_fraction']:.1%} at threshold {summary['threshold']['value']:.3g}"
            )
        return f"{line}; wrote {len(summary['results'])} results files into {summary['out']}"
    line = f"{summary['frames']:,} frames of {summary['files']} files ({summary['frames_per_second']:,} frames/s)"
    if "single_hit_fraction" in summary:
        line += f", single hits {summary['single_hit_fraction']:.1%} at threshold {summary['threshold']['value']:.3g}"
    if "unlike" in summary.get("frame_check", ""):
        line += f" ({summary['frame_check']})"
    return f"{line}; wrote {summary['out']}"
