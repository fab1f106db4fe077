"""``spizoo fit-pattern``: the Monte-Carlo simplex baseline on one stored MSFT pattern (seed 001 fig. 4b)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spizoo.data.cxi import read_extras, read_frame
from spizoo.experiment import Config
from spizoo.plots import fit_report, fit_summary
from spizoo.sim import icosahedral
from spizoo.sim.forward_fit import fit_pattern, model_image
from spizoo.sim.wideangle import MsftConfig


def run(config: Config, cxi: str | Path, index: int, out: str | Path, *, starts: int, iterations: int) -> dict:
    """Fits frame ``index`` of ``cxi``; writes ``out/fit_<index>.json`` and ``out/fit_<index>.png``."""
    if not isinstance(config.sim, MsftConfig):
        raise ValueError("fit-pattern needs a config with sim.kind: msft (e.g. configs/sim_msft.yaml)")
    image = read_frame(cxi, index)
    truth = read_extras(cxi, index)
    result = fit_pattern(image, config.sim, starts=starts, iterations=iterations, rng=config.seed)
    report = {
        "file": str(cxi),
        "index": index,
        "quaternion": result.quaternion.round(6).tolist(),
        "radius_nm": round(result.radius_nm, 4),
        "loss": result.loss,
        "forward_simulations": result.simulations,
        "seconds": round(result.seconds, 2),
        "starts": starts,
        "iterations": iterations,
    }
    curve = None
    if "quaternion" in truth and "radius_nm" in truth:
        q_true, r_true = truth["quaternion"].astype(float), float(truth["radius_nm"])
        err = icosahedral.error_measures(
            result.quaternion, result.radius_nm, q_true, r_true, config.sim.circumradius_nm
        )
        report["mean_relative_error"] = float(err["mean"])
        report["max_relative_error"] = float(err["max"])
        curve = [
            (n, float(icosahedral.error_measures(q, r, q_true, r_true, config.sim.circumradius_nm)["mean"]))
            for n, _, q, r in result.history
        ]
        report["error_vs_simulations"] = curve
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fit_report(
        image, model_image(config.sim, result.quaternion, result.radius_nm), result, curve, out / f"fit_{index}.png"
    )
    partial = out / f"fit_{index}.json.partial"  # the report appears whole, last: it marks the fit done
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(out / f"fit_{index}.json")
    report["outputs"] = [str(out / f"fit_{index}.json"), str(out / f"fit_{index}.png")]
    return report


def summarise(directory: str | Path, model: str | None = None) -> dict:
    """Seed 001 fig. 4b over every ``fit_<i>/fit_<i>.json`` under ``directory`` (made by :func:`run`).

    Writes ``directory/summary.json`` and ``directory/error_vs_simulations.png``: the median and the central
    90 % (as the paper's figure) over patterns of the best fit's mean relative error against forward
    simulations, and each method's wall time per pattern. With ``model`` (a run directory, SavedModel or
    server URL, see :func:`spizoo.classify.load_predictor`) the network predicts the same patterns
    (``directory/patterns.cxi``) for the comparison, its time the median of single-pattern calls.

    Raises:
        FileNotFoundError: when ``directory`` holds no fit reports.
        ValueError: when a report lacks its error curve (a pattern without true parameters).
    """
    directory = Path(directory)
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
        from spizoo import experiment

        sim = experiment.load(directory / "config.yaml").sim  # written by spizoo simulate with patterns.cxi
        indices = [r["index"] for r in reports]
        summary["network"] = _network(model, directory / "patterns.cxi", indices, sim.circumradius_nm)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2))
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
    import time

    from spizoo.classify import load_predictor

    frames = np.stack([read_frame(cxi, i) for i in indices]).astype(np.float32)
    truth = [read_extras(cxi, i) for i in indices]
    predictor = load_predictor(model)
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
