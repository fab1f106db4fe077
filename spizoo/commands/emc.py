"""``spizoo emc``: the single hits of ``spizoo classify``'s results, as Dragonfly EMC input."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo.commands._common import load_predictor, model_reference
from spizoo.commands._view import add_view_args, view_finder
from spizoo.serving.emc import export_hits

DESCRIPTION = """\
    Write the frames that RESULTS (a spizoo classify .h5 results file) scores as single hits to
    OUT/photons.h5 (Dragonfly's sparse photons: place_ones, place_multi, count_multi, num_pix) at the
    detector's full resolution, OUT/detector.h5 (qx, qy, qz, corr, mask, detd, ewald_rad) from their
    detector geometry, and OUT/frames.csv (the file, frame, train/pulse/cell and score of each EMC
    frame; with --regressor, its orientation quaternion q0-q3 and radius). Frames are read again from
    the files (or runs) classify read, as stored: module-stacked frames unbinned, masked pixels 0.

    example:
      spizoo classify out/agipd_run out/agipd/patterns.cxi --out out/agipd_results.h5
      spizoo emc out/agipd_results.h5 --out out/emc
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="a spizoo classify results file (.h5)")
    parser.add_argument("--out", required=True, help="directory for photons.h5, detector.h5 and frames.csv")
    parser.add_argument(
        "--threshold", type=float, help="single-hit score from which a frame is exported (default: classify's)"
    )
    parser.add_argument(
        "--regressor",
        type=model_reference,
        help="a regressor (run, zoo:NAME, SavedModel or URL) for orientation and size estimates",
    )
    parser.add_argument(
        "--ewald-rad", type=float, help="Ewald sphere radius in voxels (default: the detector distance in pixels)"
    )
    add_view_args(parser, model=False)


def run(args: argparse.Namespace) -> dict:
    regressor = load_predictor(args.regressor) if args.regressor else None
    return export_hits(
        args.results,
        args.out,
        views=view_finder(args),
        threshold=args.threshold,
        regressor=regressor,
        regressor_views=view_finder(args, args.regressor) if args.regressor else None,
        ewald_rad=args.ewald_rad,
    )


def summary_line(summary: dict) -> str:
    return (
        f"{summary['frames']:,} single hits (score >= {summary['threshold']:.3g}, "
        f"{summary['photons_per_frame']:,.0f} photons each on average) written for EMC to {summary['out']}"
    )


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    out = Path(summary["out"])
    return [
        ("photons", f"{out / 'photons.h5'} ({summary['frames']:,} frames, sparse)"),
        ("detector", f"{out / 'detector.h5'} ({summary['num_pix']:,} pixels of {summary['detector']})"),
        ("frames", f"{out / 'frames.csv'} (file, frame, train/pulse/cell, score of each)"),
        ("next", f"Dragonfly's config: in_photons_file = {out / 'photons.h5'}, in_detector_file = "
                 f"{out / 'detector.h5'}"),
    ]  # fmt: skip
