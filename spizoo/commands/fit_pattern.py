"""``spizoo fit-pattern``: the Monte-Carlo simplex baseline on one stored MSFT pattern (seed 001 fig. 4b)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spizoo import experiment
from spizoo.commands._common import Progress, add_set, input_file, output_dir, output_file, quoted
from spizoo.data.cxi import read_extras, read_frame
from spizoo.plots import fit_report
from spizoo.sim import icosahedral
from spizoo.sim.forward_fit import fit_pattern, model_image
from spizoo.sim.wideangle import MsftConfig

DESCRIPTION = """\
    Fit (orientation, radius) of frame INDEX of a CXI file made with a kind: msft config, by Nelder-Mead
    from STARTS random points, ITERATIONS steps each, every step running the forward simulator: the
    Monte-Carlo simplex baseline of seed 001 section 3 (Stielow et al., "Fast reconstruction of
    single-shot wide-angle diffraction images through deep learning", MLST 1 045007 (2020)), which
    the network is compared with. Writes OUT/fit_INDEX.json (parameters, errors against the stored
    truth if present, forward simulations, seconds) and OUT/fit_INDEX.png (pattern, best fit, error
    against forward simulations as in the paper's fig. 4b). A bar counts the simplex iterations;
    the defaults (50 x 50) take minutes.

    example:
      spizoo simulate configs/sim_msft.yaml -n 4 --out out/msft4
      spizoo fit-pattern configs/sim_msft.yaml out/msft4/patterns.cxi --index 2 --out out/fit
    """
INTERRUPTED = "interrupted; no fit report was written (the same command starts afresh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with sim.kind: msft (the forward model)")
    parser.add_argument("cxi", help="CXI file holding the pattern")
    parser.add_argument("--index", type=int, default=0, help="frame to fit")
    parser.add_argument("--starts", type=int, default=50, help="random starting points")
    parser.add_argument("--iterations", type=int, default=50, help="simplex iterations per start")
    parser.add_argument("--out", required=True, help="output directory")
    add_set(parser)


def run(args: argparse.Namespace) -> dict:
    input_file(args.config, "CONFIG", suggest="*.yaml")
    config = experiment.load(args.config, args.set)
    report = fit(config, args.cxi, args.index, args.out, starts=args.starts, iterations=args.iterations)
    return {k: v for k, v in report.items() if k != "error_vs_simulations"}


def summary_line(report: dict) -> str:
    error = f", mean relative error {report['mean_relative_error']:.2%}" if "mean_relative_error" in report else ""
    return (
        f"frame {report['index']}: radius {report['radius_nm']:.2f} nm{error} after "
        f"{report['forward_simulations']} forward simulations ({report['seconds']} s); wrote {report['outputs'][0]}"
    )


def summary_rows(report: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    out = Path(report["outputs"][0]).parent
    errors = (
        f"mean {report['mean_relative_error']:.2%}, max {report['max_relative_error']:.2%} against the stored truth "
        "(seed 001 appendix C)"
        if "mean_relative_error" in report
        else None
    )
    if out.name == f"fit_{report['index']}":  # one of DIR/fit_<i>: fit-summary gathers them
        following = f"spizoo fit-summary {quoted(out.parent)}"
    else:
        following = (
            f"spizoo fit-pattern {quoted(args.config)} {quoted(args.cxi)} --index {report['index'] + 1} "
            f"--out {quoted(out)}   (fit-summary gathers DIR/fit_<i>/ of DIR/patterns.cxi)"
        )
    return [
        ("report", report["outputs"][0]),
        ("figure", report["outputs"][1]),
        ("orientation", f"quaternion {report['quaternion']} (fundamental domain)"),
        ("radius", f"{report['radius_nm']:.2f} nm"),
        ("errors", errors),
        ("cost", f"{report['forward_simulations']:,} forward simulations in {report['seconds']:.1f} s"),
        ("next", following),
    ]


def fit(
    config: experiment.Config, cxi: str | Path, index: int, out: str | Path, *, starts: int, iterations: int
) -> dict:
    """Fits frame ``index`` of ``cxi``; writes ``out/fit_<index>.json`` and ``out/fit_<index>.png``."""
    if not isinstance(config.sim, MsftConfig):
        raise ValueError("fit-pattern needs a config with sim.kind: msft (e.g. configs/sim_msft.yaml)")
    if index < 0:
        raise ValueError(f"--index must be a frame number >= 0, got {index}")
    input_file(cxi, "CXI", suggest="*.cxi")
    out = output_dir(out, "--out")
    for name in (f"fit_{index}.json", f"fit_{index}.png"):  # checked before the fit, not after its minutes
        output_file(out / name, "--out")
    image = read_frame(cxi, index)
    truth = read_extras(cxi, index)
    with Progress(total=starts * iterations, desc="fit-pattern", unit="iteration") as bar:
        result = fit_pattern(
            image, config.sim, starts=starts, iterations=iterations, rng=config.seed, progress=bar.update
        )
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
    out.mkdir(parents=True, exist_ok=True)
    fit_report(
        image,
        model_image(config.sim, result.quaternion, result.radius_nm),
        result,
        curve,
        out / f"fit_{index}.png",
        true_radius_nm=float(truth["radius_nm"]) if "radius_nm" in truth else None,
        index=index,
    )
    partial = out / f"fit_{index}.json.partial"  # the report appears whole, last: it marks the fit done
    partial.write_text(json.dumps(report, indent=2))
    partial.replace(out / f"fit_{index}.json")
    report["outputs"] = [str(out / f"fit_{index}.json"), str(out / f"fit_{index}.png")]
    return report
