"""How far two ``spizoo evaluate`` runs of one classifier on the same data agree (e.g. ``--precision float32``
against ``mixed_bfloat16``, docs/RESULTS.md §5): patterns called the same class, the largest difference of each
pattern's class probabilities (median and largest), and the two accuracies.

    python scripts/compare_patterns.py REPORT_DIR_A REPORT_DIR_B
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    rows, reports = [], []
    for directory in map(Path, argv):
        with open(directory / "patterns.csv", newline="") as f:
            rows.append(list(csv.DictReader(f)))
        reports.append(json.loads((directory / "report.json").read_text()))
    a, b = rows
    same_patterns = len(a) == len(b) and all(
        x["index"] == y["index"] and x["label"] == y["label"] for x, y in zip(a, b, strict=True)
    )
    if not same_patterns:
        raise SystemExit(f"{argv[0]} and {argv[1]} are not evaluations of the same patterns")
    heads = [c for c in a[0] if c.startswith("p_")]
    pa, pb = (np.array([[float(r[c]) for c in heads] for r in rows_]) for rows_ in (a, b))
    largest = np.abs(pa - pb).max(axis=1)
    same = sum(x["predicted"] == y["predicted"] for x, y in zip(a, b, strict=True))
    print(f"patterns: {len(a)}; the same class: {same}")
    for x, y in zip(a, b, strict=True):
        if x["predicted"] != y["predicted"]:
            print(f"  pattern {x['index']}: label {x['label']}, {x['predicted']} against {y['predicted']}")
    print(f"largest probability difference per pattern: median {np.median(largest):.2g}, largest {largest.max():.3g}")
    for directory, report in zip(argv, reports, strict=True):
        print(f"{directory}: accuracy {report['accuracy']:.3f}, precision {report.get('precision', 'not recorded')}")


if __name__ == "__main__":
    main(sys.argv[1:])
