"""Peak memory of ``spizoo classify`` on a European XFEL run against the run's length: it must not grow.

    python benchmarks/run_memory.py [--trains 2 8 32]

EXtra-data's mock AGIPD-1M run (``make_spb_run``, calibrated, 64 frames of 16 × 512 × 128 pixels per train)
is classified by an untrained ResNet-10 run directory through an 8×8-binned 128×128 view, for the first N
trains, each in a fresh process; the peak resident memory (``ru_maxrss``) of that process is reported with
the data the run holds (4 MiB per frame). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from untrained_run import make_run, mock_agipd_run  # noqa: E402

CHILD = """
import resource, sys, time
from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving.classify import classify_files
run, data, geom, out, n = sys.argv[1:6]
start = time.perf_counter()
summary, _ = classify_files(load_predictor(run), [data], out, view=ViewFinder(geom, pixels=(128, 128), bin=8),
                            trains=slice(0, int(n)))
seconds = time.perf_counter() - start
print(summary["frames"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, seconds)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trains", type=int, nargs="+", default=[2, 8, 32])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, 128)
        data, geom = mock_agipd_run(root)
        for i, n in enumerate(args.trains):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(run), str(data), str(geom), str(root / f"r{i}.h5"), str(n)],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            frames, peak_kib, seconds = int(out[-3]), int(out[-2]), float(out[-1])
            rows.append({"trains": n, "frames": frames, "data_mib": frames * 4, "peak_rss_mib": peak_kib // 1024,
                         "frames_per_second": round(frames / seconds, 1)})  # fmt: skip
    print("spizoo classify of a mock AGIPD-1M run (64 frames/train), untrained ResNet-10, 128x128 view")
    print(f"{'trains':>7}{'frames':>8}{'run data MiB':>14}{'peak RSS MiB':>14}{'frames/s':>10}")
    for r in rows:
        print(f"{r['trains']:>7}{r['frames']:>8}{r['data_mib']:>14}{r['peak_rss_mib']:>14}{r['frames_per_second']:>10}")
    growth = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"peak memory at {rows[-1]['trains']} trains / at {rows[0]['trains']}: {growth:.2f}")
    print(json.dumps({"benchmark": "run_memory", "rows": rows, "peak_growth": round(growth, 3)}))


if __name__ == "__main__":
    main()
