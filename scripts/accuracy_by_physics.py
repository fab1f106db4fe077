"""A classifier's accuracy by what the physics gives the network, pooled over evaluated runs (seeds):
markdown tables by class, photons in the model's view, particle size and fluence, the accuracy of each
class in each photon quartile, and the figure of ``spizoo evaluate`` for the pooled patterns.

    python scripts/accuracy_by_physics.py out/results/e1_run/evaluation/patterns.csv \\
        out/results/e1_run_seed1/evaluation/patterns.csv --out docs/results/e1_accuracy_by_physics.png

Each ``patterns.csv`` is written by ``spizoo evaluate`` (one row a test pattern). Quartiles are of the
pooled patterns, so every run's patterns fall into the same bins.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from spizoo import plots
from spizoo.core.labels import CLASS_NAMES
from spizoo.models.evaluation import PHYSICS, accuracy_by, physics_report


def read(paths: list[Path]) -> dict[str, np.ndarray]:
    rows = []
    for path in paths:
        with path.open() as f:
            rows += list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"no patterns in {', '.join(map(str, paths))}")
    columns = {name: np.array([r[name] for r in rows]) for name in rows[0]}
    for name in (*PHYSICS, "photons"):
        if name in columns:
            columns[name] = columns[name].astype(float)
    return columns


def table(title: str, groups: list[dict]) -> str:
    lines = [f"| {title} | patterns | accuracy |", "| --- | --- | --- |"]
    for g in groups:
        where = g["value"] if "value" in g else f"{g['low']:.3g}–{g['high']:.3g}"
        lines.append(f"| {where} | {g['patterns']} | {g['accuracy']:.1%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", nargs="+", type=Path, help="patterns.csv files of spizoo evaluate")
    parser.add_argument("--out", type=Path, help="PNG of the pooled accuracy by physics")
    args = parser.parse_args()
    columns = read(args.patterns)
    correct = columns["label"] == columns["predicted"]
    labels = np.array([CLASS_NAMES.index(name) for name in columns["label"]])
    params = {name: columns[name] for name in PHYSICS if name in columns}
    report = physics_report(correct, labels, columns["photons"], params)
    print(f"{len(correct)} patterns from {len(args.patterns)} runs, accuracy {correct.mean():.1%}\n")
    for name, groups in report.items():
        print(table(name.replace("_", " "), groups) + "\n")
    quartiles = np.quantile(columns["photons"], [0, 0.25, 0.5, 0.75, 1])
    head = " | ".join(f"{lo:.3g}–{hi:.3g}" for lo, hi in zip(quartiles[:-1], quartiles[1:], strict=True))
    print(f"| class \\ photons | {head} |\n| --- |{' --- |' * 4}")
    which = np.clip(np.searchsorted(quartiles, columns["photons"], side="right") - 1, 0, 3)
    for k, name in enumerate(CLASS_NAMES):
        cells = []
        for q in range(4):
            mine = (labels == k) & (which == q)
            cells.append(f"{correct[mine].mean():.0%} of {mine.sum()}" if mine.any() else "—")
        print(f"| {name} | {' | '.join(cells)} |")
    bright = columns["photons"] >= quartiles[2]
    print(f"\nbrighter half (≥ {quartiles[2]:.3g} photons): accuracy {correct[bright].mean():.1%} of {bright.sum()}")
    by_shape = accuracy_by(correct, columns["shape"])
    print(", ".join(f"{g['value']}: {g['accuracy']:.1%} of {g['patterns']}" for g in by_shape))
    if args.out:
        print(plots.accuracy_by(report, args.out))


if __name__ == "__main__":
    main()
