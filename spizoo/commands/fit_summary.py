"""``spizoo fit-summary``: seed 001 fig. 4b, the forward fit's error against forward simulations over many
patterns, beside the network's on the same patterns."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from spizoo import experiment
from spizoo.commands._common import input_dir, load_predictor, model_reference, output_file, quoted
from spizoo.data.cxi import read_extras, read_frame
from spizoo.data.frames import FrameFile
from spizoo.plots import fit_summary
from spizoo.serving.classify import warn_line
from spizoo.sim import icosahedral

DESCRIPTION = """\
    Seed 001 fig. 4b, i.e. figure 4b of Stielow et al., "Fast reconstruction of single-shot
    wide-angle diffraction images through deep learning", MLST 1 045007 (2020): how the error of
    the Monte-Carlo simplex fit (spizoo fit-pattern) falls with the forward simulations it spends,
    against the network's error and time. Gathers DIRECTORY/fit_<i>/fit_<i>.json (spizoo fit-pattern
    on DIRECTORY/patterns.cxi) into DIRECTORY/summary.json and DIRECTORY/error_vs_simulations.png:
    median and central 90 % of the best fit's mean relative error against forward simulations, and
    the wall time per pattern. With --model (a regressor trained on patterns of the same size), the
    network predicts the same patterns and is drawn and timed alongside.

    example:
      spizoo simulate configs/quickstart_msft.yaml -n 3 --out out/fits
      for i in 0 1 2; do spizoo fit-pattern configs/quickstart_msft.yaml out/fits/patterns.cxi \\
        --index $i --starts 5 --out out/fits/fit_$i; done
      spizoo generate configs/quickstart_msft.yaml --out out/msft_ds
      spizoo train configs/quickstart_msft.yaml --data out/msft_ds --out out/msft_run
      spizoo fit-summary out/fits --model out/msft_run
    """
INTERRUPTED = "interrupted; no summary was written (the same command starts afresh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="directory with patterns.cxi, config.yaml and fit_<i>/ reports")
    parser.add_argument(
        "--model",
        default=None,
        type=model_reference,
        help="regressor run directory, zoo:NAME, SavedModel or server URL (default: none, the forward fit alone)",
    )


def run(args: argparse.Namespace) -> dict:
    summary = summarise(args.directory, args.model)
    summary.pop("curve")
    summary.get("network", {}).pop("per_pattern", None)
    return summary


def summary_line(summary: dict) -> str:
    fit = summary["forward_fit"]
    line = f"{summary['patterns']} patterns: forward fit median error {fit['median_mean_relative_error']:.2%}"
    line += f" in {fit['median_seconds_per_pattern']:.0f} s"
    if "network" in summary:
        net = summary["network"]
        line += f", network {net['median_mean_relative_error']:.2%} in {net['median_seconds_per_pattern'] * 1e3:.0f} ms"
    return f"{line}; wrote {summary['outputs'][0]}"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    fit = summary["forward_fit"]
    rows = [
        ("summary", summary["outputs"][0]),
        ("figure", f"{summary['outputs'][1]} (seed 001 fig. 4b)"),
        (
            "forward fit",
            f"median error {fit['median_mean_relative_error']:.2%} (worst max {fit['worst_max_relative_error']:.2%}) "
            f"after {fit['median_forward_simulations']:,.0f} simulations, {fit['median_seconds_per_pattern']:.1f} s "
            f"per pattern ({fit['starts']} starts × {fit['iterations']} iterations)",
        ),
    ]
    if "network" in summary:
        net = summary["network"]
        rows.append(
            (
                "network",
                f"median error {net['median_mean_relative_error']:.2%} "
                f"(worst max {net['worst_max_relative_error']:.2%}), "
                f"{net['median_seconds_per_pattern'] * 1e3:.1f} ms per pattern ({net['model']})",
            )
        )
    else:
        rows.append(("next", f"spizoo fit-summary {quoted(args.directory)} --model RUN   (the network beside it)"))
    return rows


def summarise(directory: str | Path, model: str | None = None) -> dict:
    """Seed 001 fig. 4b over every ``fit_<i>/fit_<i>.json`` under ``directory`` (made by :func:`run`).

    Writes ``directory/summary.json`` and ``directory/error_vs_simulations.png``: the median and the central
    90 % (as the paper's figure) over patterns of the best fit's mean relative error against forward
    simulations, and each method's wall time per pattern. With ``model`` (a run directory, SavedModel or
    server URL, see :func:`spizoo.commands._common.load_predictor`) the network predicts the same patterns
    (``directory/patterns.cxi``) for the comparison, its time the median of single-pattern calls.

    Raises:
        FileNotFoundError: when ``directory`` holds no fit reports.
        ValueError: when a report lacks its error curve (a pattern without true parameters).
    """
    directory = input_dir(directory, "DIRECTORY", hint="give the --out directory of `spizoo simulate`")
    for name in ("summary.json", "error_vs_simulations.png"):
        output_file(directory / name, "DIRECTORY")
    paths = sorted(directory.glob("fit_*/fit_*.json"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise FileNotFoundError(
            f"{directory}: no fit_<i>/fit_<i>.json (run spizoo fit-pattern --out {directory}/fit_<i>)"
        )
    reports = [json.loads(p.read_text()) for p in paths]
    for path, report in zip(paths, reports, strict=True):
        if "error_vs_simulations" not in report:
            raise ValueError(f"{path}: no error_vs_simulations (the pattern's file holds no true parameters)")
    first = min(r["error_vs_simulations"][0][0] for r in reports)
    grid = np.unique(np.geomspace(first, max(r["forward_simulations"] for r in reports), 60).astype(int))
    curves = np.array([_best_so_far(r["error_vs_simulations"], grid) for r in reports])
    band = np.nanpercentile(curves, [5, 50, 95], axis=0)
    summary = {
        "patterns": len(reports),
        "forward_fit": {
            "starts": reports[0]["starts"],
            "iterations": reports[0]["iterations"],
            **_statistics(reports, "mean_relative_error", "max_relative_error"),
            "median_forward_simulations": float(np.median([r["forward_simulations"] for r in reports])),
            "median_seconds_per_pattern": float(np.median([r["seconds"] for r in reports])),
        },
        "curve": {
            "forward_simulations": grid.tolist(),
            "median": band[1].tolist(),
            "q05": band[0].tolist(),
            "q95": band[2].tolist(),
        },
    }
    if model is not None:
        sim = experiment.load(directory / "config.yaml").sim  # written by spizoo simulate with patterns.cxi
        indices = [r["index"] for r in reports]
        summary["network"] = _network(model, directory / "patterns.cxi", indices, sim.circumradius_nm)
    partial = directory / "summary.json.partial"  # appears whole
    partial.write_text(json.dumps(summary, indent=2))
    partial.replace(directory / "summary.json")
    fit_summary(summary, directory / "error_vs_simulations.png")
    summary["outputs"] = [str(directory / "summary.json"), str(directory / "error_vs_simulations.png")]
    return summary


def _best_so_far(curve: list, grid: np.ndarray) -> np.ndarray:
    """The error of the best fit found within each budget of ``grid`` simulations (NaN before the first)."""
    n, error = (np.asarray(v, float) for v in zip(*curve, strict=True))
    at = np.searchsorted(n, grid, side="right") - 1
    return np.where(at >= 0, error[np.maximum(at, 0)], np.nan)


def _statistics(rows: list[dict], mean_key: str, max_key: str) -> dict:
    mean, worst = np.array([r[mean_key] for r in rows]), np.array([r[max_key] for r in rows])
    return {
        "median_mean_relative_error": float(np.median(mean)),
        "mean_mean_relative_error": float(mean.mean()),
        "median_max_relative_error": float(np.median(worst)),
        "worst_max_relative_error": float(worst.max()),
    }


def _network(model: str, cxi: Path, indices: list[int], radius_range_nm) -> dict:
    """The network's errors on the fitted patterns and its median wall time for one pattern."""
    frames = np.stack([read_frame(cxi, i) for i in indices]).astype(np.float32)
    truth = [read_extras(cxi, i) for i in indices]
    predictor = load_predictor(model)
    with FrameFile(cxi) as stack:
        predictor.frame_checker(warn=warn_line).check(str(cxi), frames, stack.geometry(indices[0]))
    out = predictor.predict(frames)
    if "quaternion" not in out or "radius_nm" not in out:
        raise ValueError(f"{model}: not a (quaternion, radius) regressor; its outputs are {sorted(out)}")
    rows = []
    for k, t in enumerate(truth):
        err = icosahedral.error_measures(
            out["quaternion"][k].astype(float),
            float(out["radius_nm"][k].squeeze()),
            t["quaternion"].astype(float),
            float(t["radius_nm"]),
            radius_range_nm,
        )
        rows.append({"mean": float(err["mean"]), "max": float(err["max"])})
    predictor.predict(frames[:1])  # warm
    seconds = []
    for k in range(len(frames)):
        start = time.perf_counter()
        predictor.predict(frames[k : k + 1])
        seconds.append(time.perf_counter() - start)
    return {
        "model": predictor.description,
        **_statistics(rows, "mean", "max"),
        "median_seconds_per_pattern": float(np.median(seconds)),
        "per_pattern": rows,
    }
