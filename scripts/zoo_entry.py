"""Make a zoo entry (models/pretrained/NAME/) from trained and evaluated run directories of one config.

    python scripts/zoo_entry.py --name hits-resnet10 --config configs/experiments/e1_resnet10_hits.yaml \\
        --command "scripts/reproduce.sh e1 e1_seeds" out/results/e1_run out/results/e1_run_seed1 …

Each run must have been evaluated on its own test split (``RUN/evaluation/report.json``). The run that
ships is the one with the best validation accuracy (chosen without looking at any test figure); the card
gives every run's test accuracy, their mean and spread. The check set (``--check-patterns`` patterns of the
config with ``--check-seed``: particle models no run trained on) is generated, and the shipped model's
accuracy on it goes into the card with a tolerance (the seeds' spread, or twice the check set's binomial
standard error where that is larger): ``tests/models/test_zoo.py`` regenerates the set and asserts that
figure within it.

A model too large to ship (``--card-only``, with ``--not-shipped`` saying why and ``--obtain`` the
commands that train it) gets its card and data config alone. Regressor runs make only such entries; their
card gives each run's mean and maximum relative errors (seed 001 appendix C) where a classifier's gives
accuracies.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from spizoo import experiment
from spizoo.beam_pipelines import generate
from spizoo.models import zoo

FILES = ("best.keras", "config.yaml", "dataset_info.json", "training.json", "history.csv")
PER_MODEL = 10  # patterns per particle model in the check set: many models, so no one block moves it


def best_validation_accuracy(run: Path) -> float:
    with (run / "history.csv").open() as f:
        return max(float(row["val_accuracy"]) for row in csv.DictReader(f))


def check_accuracy(model: str, config: Path, overrides: list[str]) -> float:
    """Accuracy of ``model`` on the check set: ``config`` with ``overrides``, generated afresh."""
    spizoo = str(Path(sys.executable).with_name("spizoo"))
    sets = [a for o in overrides for a in ("--set", o)]
    with tempfile.TemporaryDirectory() as tmp:
        data, report = Path(tmp) / "data", Path(tmp) / "evaluation"
        subprocess.run([spizoo, "generate", str(config), "--out", str(data), *sets], check=True)
        subprocess.run([spizoo, "evaluate", model, "--data", f"{data}/*.tfrecord-*", "--out", str(report)], check=True)
        return float(json.loads((report / "report.json").read_text())["accuracy"])


def check_overrides(patterns: int, seed: int) -> list[str]:
    """What turns the card's config into its check set: new particle models, all of it one test split."""
    sets = [f"seed={seed}", f"dataset.patterns={patterns}", f"sim.patterns_per_model={PER_MODEL}"]
    return sets + ["dataset.splits={test: 1.0}", "dataset.shards={test: 1}"]


def ranges(config: experiment.Config) -> dict:
    sim = config.sim
    if sim.kind == "msft":
        det = sim.detector
        return {
            "shapes": f"{sim.shape} (absorption length {sim.absorption_length_nm:g} nm)",
            "circumradius_nm": list(sim.circumradius_nm),
            "photon_energy_eV": [round(sim.photon_energy_eV, 2)] * 2,
            "relative_background": [float(b) for b in sim.background],
            "detector": f"flat {det.pixels[0]}x{det.pixels[1]} pixels up to {det.max_angle_deg:g} degrees "
            f"scattering angle at {det.distance_m:g} m",
            "particles_per_pattern": "1",
        }
    return {
        "shapes": ", ".join(sorted(sim.particle.shapes)),
        "circumradius_nm": list(sim.particle.circumradius_nm),
        "photon_energy_eV": list(sim.beam.photon_energy_eV),
        "fluence_photons_per_um2": [float(f) for f in sim.beam.fluence_photons_per_um2],
        "detector": f"flat {sim.detector.pixels[0]}x{sim.detector.pixels[1]} pixels of "
        f"{sim.detector.pixel_size_um[0]:g}-{sim.detector.pixel_size_um[1]:g} um at "
        f"{sim.detector.distance_m[0]:g}-{sim.detector.distance_m[1]:g} m",
        "particles_per_pattern": f"0-{sim.cluster.max_particles}",
    }


def data_words(config: experiment.Config) -> str:
    """The dataset in words, e.g. "60000 patterns in particle models of 50; splits train 0.9, … by particle model"."""
    unit, _ = generate.unit_words(config)
    _, first, stop = generate.units(config)[0]
    splits = ", ".join(f"{k} {v:g}" for k, v in config.dataset.splits.items())
    return f"{config.dataset.patterns} patterns in {unit}s of {stop - first}; splits {splits} by {unit}"


def test_record(run: Path, regression: bool) -> dict:
    """A run's line of the card's test table, from its ``evaluation/report.json``."""
    config = experiment.load(run / "config.yaml")
    report = json.loads((run / "evaluation" / "report.json").read_text())
    if regression:
        return {
            "seed": config.seed,
            "mean_relative_error": float(report["mean_relative_error"]["mean"]),
            "max_relative_error": float(report["max_relative_error"]["mean"]),
            "patterns": int(report["patterns"]),
        }
    point = report["operating_point"]
    return {
        "seed": config.seed,
        "accuracy": float(report["accuracy"]),
        "patterns": int(np.sum(report["confusion_matrix"]["counts"])),
        "single_hits_kept": float(point["true_positive_rate"]),
        "at_false_positive_rate": float(point["false_positive_rate"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument(
        "--config", required=True, type=Path, help="the config the runs were generated and trained with"
    )
    parser.add_argument("--command", required=True, help="the command that trained and evaluated the runs")
    parser.add_argument("--summary", required=True, help="one line: what the model does")
    parser.add_argument("--limit", action="append", default=[], help="a known limit (repeat)")
    parser.add_argument("--data", help="how the runs' data was split, in words (default: from the run's config)")
    parser.add_argument("--check-patterns", type=int, default=300)
    parser.add_argument("--check-seed", type=int, default=1000)
    parser.add_argument("--card-only", action="store_true", help="ship the card alone, not the weights")
    parser.add_argument("--not-shipped", help="with --card-only: why the weights do not ship")
    parser.add_argument("--obtain", action="append", default=[], help="with --card-only: a command that trains it")
    parser.add_argument("--obtain-time", help="with --card-only: how long those commands take, and where")
    args = parser.parse_args()
    if args.card_only and not (args.not_shipped and args.obtain and args.obtain_time):
        parser.error("--card-only needs --not-shipped, --obtain (one per command) and --obtain-time")

    config = experiment.load(args.runs[0] / "config.yaml")
    regression = experiment.task(config).is_regression
    if regression and not args.card_only:
        parser.error(
            "regressor runs make a card-only entry (--card-only): a shipped entry's check set is a classifier's"
        )
    seeds = [test_record(run, regression) for run in args.runs]
    metric = "mean_relative_error" if regression else "accuracy"
    values = [s[metric] for s in seeds]
    out = zoo.ZOO / args.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(args.config, out / "data_config.yaml")
    card = {"summary": args.summary, "model": config.model.name, "task": experiment.task(config).name}
    if not args.card_only:
        ship = max(args.runs, key=best_validation_accuracy)
        config = experiment.load(ship / "config.yaml")
        (out / "evaluation").mkdir()
        for f in FILES:
            shutil.copy(ship / f, out / f)
        shutil.copy(ship / "evaluation" / "report.json", out / "evaluation" / "report.json")  # the operating point
        policy = json.loads((ship / "training.json").read_text())["policy"]
        card["precision"] = (
            f"weights float32, trained with the {policy} policy (mixed_precision: {config.train.mixed_precision})"
        )
    card["data"] = {
        "config": args.config.as_posix(),
        "config_sha256": zoo.config_hash(args.config),
        "patterns": args.data or data_words(config),
    }
    card["training_command"] = args.command
    if args.card_only:
        card["not_shipped"] = args.not_shipped
        card["obtain"] = {"commands": args.obtain, "time": args.obtain_time}
    else:
        card["shipped_run"] = {"seed": config.seed, "chosen_by": "best validation accuracy"}
    card["test"] = {
        "metric": "mean relative error (seed 001 appendix C)" if regression else "five-class accuracy",
        "seeds": seeds,
        "mean": float(np.mean(values)),
        "spread": float(np.ptp(values)),
    }
    if not args.card_only:
        overrides = check_overrides(args.check_patterns, args.check_seed)
        check = check_accuracy(str(out), args.config, overrides)
        standard_error = float(np.sqrt(check * (1 - check) / args.check_patterns))
        card["check"] = {
            "patterns": args.check_patterns,
            "overrides": overrides,
            "accuracy": check,
            "tolerance": max(float(np.ptp(values)), 2 * standard_error),
            "how": "spizoo generate data_config.yaml --out DIR --set OVERRIDE …; spizoo evaluate zoo:NAME --data "
            "'DIR/*.tfrecord-*' --out REPORT",
        }
    card["ranges"] = ranges(config)
    card["limits"] = args.limit
    text = yaml.safe_dump(card, sort_keys=False, width=110, allow_unicode=True)
    (out / zoo.CARD).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
