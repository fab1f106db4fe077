"""scripts/compare_patterns.py: the agreement of two evaluations of one classifier on the same patterns."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "compare_patterns.py")


def _evaluation(directory: Path, calls: list[str], p_single: list[float], accuracy: float, precision: str) -> Path:
    directory.mkdir()
    lines = ["index,label,predicted,p_none,p_single,photons,shape"]
    for i, (call, p) in enumerate(zip(calls, p_single, strict=True)):
        lines.append(f"{i},single,{call},{1 - p:.5f},{p:.5f},10,icosahedron")
    (directory / "patterns.csv").write_text("\n".join(lines) + "\n")
    (directory / "report.json").write_text(json.dumps({"accuracy": accuracy, "precision": precision}))
    return directory


def test_agreement_is_counted_and_the_differences_named(tmp_path):
    a = _evaluation(tmp_path / "a", ["single", "single", "none"], [0.9, 0.8, 0.4], 0.667, "float32")
    b = _evaluation(tmp_path / "b", ["single", "none", "none"], [0.9, 0.45, 0.41], 0.333, "mixed_bfloat16")
    out = subprocess.run([sys.executable, SCRIPT, str(a), str(b)], capture_output=True, text=True, check=True).stdout
    assert "patterns: 3; the same class: 2" in out
    assert "pattern 1: label single, single against none" in out
    assert "median 0.01, largest 0.35" in out
    assert f"{a}: accuracy 0.667, precision float32" in out and f"{b}: accuracy 0.333, precision mixed_bfloat16" in out


def test_evaluations_of_other_patterns_are_refused(tmp_path):
    a = _evaluation(tmp_path / "a", ["single", "single"], [0.9, 0.8], 1.0, "float32")
    b = _evaluation(tmp_path / "b", ["single"], [0.9], 1.0, "float32")
    run = subprocess.run([sys.executable, SCRIPT, str(a), str(b)], capture_output=True, text=True)
    assert run.returncode == 1 and "are not evaluations of the same patterns" in run.stderr
