"""scripts/paper_scale_gpu.sh at a tiny scale on the CPU: every step runs, each run is evaluated, the wall
times are recorded, and a rerun skips what is finished."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_paper_scale_script_runs_end_to_end_at_a_tiny_scale(tmp_path):
    env = {
        **os.environ,
        "SPIZOO": str(Path(sys.executable).with_name("spizoo")),
        "OUT": str(tmp_path),
        "SEEDS": "0",
        "PRECISION": "float32",
        "E1_PATTERNS": "240",
        "E4_PATTERNS": "60",
        "EPOCHS_E1": "1",
        "EPOCHS_E4": "1",
        "E1_SETS": "sim.patterns_per_model=1",  # a particle model per pattern: 4 each in the 1.67 % splits
        "E4_SETS": "dataset.unit_size=5 augment.copies=2",
    }
    script = str(ROOT / "scripts" / "paper_scale_gpu.sh")
    subprocess.run([script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    for run in ("e1_run_seed0", "e4_run"):
        report = json.loads((tmp_path / run / "evaluation" / "report.json").read_text())
        assert report
    times = (tmp_path / "times.txt").read_text().splitlines()
    assert sum(" generate " in t for t in times) == 2 and sum(" train " in t for t in times) == 2
    rerun = subprocess.run([script, "e1"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert "spizoo generate" not in rerun.stderr and "spizoo train" not in rerun.stderr  # finished: skipped
    assert "spizoo evaluate" in rerun.stderr
