"""``spizoo fit-pattern``: the Monte-Carlo simplex baseline on one stored MSFT pattern (seed 001 fig. 4b)."""

from __future__ import annotations

import json
from pathlib import Path

from spizoo.data.cxi import read_extras, read_frame
from spizoo.experiment import Config
from spizoo.plots import fit_report
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
    (out / f"fit_{index}.json").write_text(json.dumps(report, indent=2))
    fit_report(
        image, model_image(config.sim, result.quaternion, result.radius_nm), result, curve, out / f"fit_{index}.png"
    )
    report["outputs"] = [str(out / f"fit_{index}.json"), str(out / f"fit_{index}.png")]
    return report
