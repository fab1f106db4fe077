"""The shell examples of README.md (but its two sections on real data and on facilities) and of every verb's
``--help`` run as written, in order: the README's in one fresh directory, the verbs' (in the order of
``spizoo --help``) in another (issue 18).

``spizoo`` and ``.venv/bin/spizoo`` there are ``tests/commands/example_shim.py``: the real CLI with less work
(fewer patterns, one epoch, a short fit: the examples' own sizes take hours), and ``spizoo serve`` in the
background, as in a second terminal; the examples' ports 8501 and 8500 become free ones. Commands that need
what a test machine lacks are listed in :data:`NOT_RUN`, and a fast test checks that no other command is left
out; the verbs for a facility's data (:data:`FACILITY_VERBS`) are not run here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spizoo.commands import VERBS

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).with_name("example_shim.py")
EXCLUDED_SECTIONS = ("## Real experiment data", "## At a facility")
NOT_RUN = {
    "make ": "the set-up itself",
    "--runner FlinkRunner": "a Beam cluster",
    "--runner SparkRunner": "a Beam cluster",
    "--runner DaskRunner": "a Dask cluster (tests/beam_pipelines/test_dask.py starts one)",
    "TF_CONFIG=": "a second host",
    "docker run": "Docker and TF Serving's image",
    "run_0042.h5": "an experiment's files",
    "--out s3://": "an S3 bucket and credentials (tests/beam_pipelines/test_object_store.py: a local S3 server)",
}
"""A marker in a command → what it needs that a test machine has not."""
FACILITY_VERBS = ("ingest", "classify", "monitor", "emc")
"""Verbs for experiment data, whose examples read a facility's files or live streams (``run_0042.cxi``, a
Karabo bridge) and runs of the README's facility section; tested with mock facility data elsewhere."""
_spec = importlib.util.spec_from_file_location("example_shim", SHIM)
example_shim = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example_shim)


def _commands(text: str) -> list[str]:
    """The commands of shell text: continuation lines joined, comments and blank lines dropped."""
    commands = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = "" if line.lstrip().startswith("#") else re.split(r"\s#\s", line, maxsplit=1)[0].strip()
        if line:
            commands.append(line)
    return commands


def readme_commands() -> list[str]:
    sections = re.split(r"(?m)^(?=## )", (REPO / "README.md").read_text())
    kept = [s for s in sections if not s.startswith(EXCLUDED_SECTIONS)]
    return [c for s in kept for block in re.findall(r"```bash\n(.*?)```", s, flags=re.S) for c in _commands(block)]


def help_commands() -> list[str]:
    """The commands of the ``--help`` examples of every verb (in ``spizoo --help``'s order) but the facility's."""
    commands = []
    for verb in (v for v in VERBS if v not in FACILITY_VERBS):
        description = importlib.import_module(f"spizoo.commands.{verb.replace('-', '_')}").DESCRIPTION
        commands += _commands(textwrap.dedent(textwrap.dedent(description).split("example:\n", 1)[1]))
    return commands


def runnable(commands: list[str]) -> list[str]:
    return [c for c in commands if not any(marker in c for marker in NOT_RUN)]


def test_every_example_is_found_and_only_the_listed_ones_are_left_out():
    readme, helps = readme_commands(), help_commands()
    assert ".venv/bin/spizoo train configs/quickstart.yaml --data out/quick_ds --out out/run" in readme
    assert "curl -s localhost:8501/v1/models/hits" in readme  # its comment is gone
    loop = [c for c in helps if c.startswith("for i in 0 1 2; do spizoo fit-pattern")]
    assert loop and loop[0].endswith("--out out/fits/fit_$i; done")  # continuation lines joined
    for commands in (readme, helps):
        run = runnable(commands)
        assert len(run) >= 10 and all(c.startswith((".venv/bin/spizoo ", "spizoo ", "curl ", "for ")) for c in run)
    # Every marker still stands for an example: a stale one could hide a new example.
    assert all(any(marker in c for c in readme + helps) for marker in NOT_RUN)
    # Every verb's example is run, at least in part, but the facility's.
    for verb in set(VERBS) - set(FACILITY_VERBS):
        assert any(re.match(rf"(\.venv/bin/)?spizoo {verb} ", c) for c in runnable(helps)), verb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_examples(directory: Path, commands: list[str], made: list[str]) -> str:
    """``commands`` as one bash script in the new ``directory`` through the shim (its servers stopped after);
    checks that it succeeds and leaves ``made`` (paths under ``directory``); returns its standard output."""
    directory.mkdir()
    (directory / "configs").symlink_to(REPO / "configs")
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "spizoo").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" "$@"\n')
    (bin_dir / "spizoo").chmod(0o755)
    rest, grpc = str(_free_port()), str(_free_port())
    script = "\n".join(["set -euo pipefail", *(c.replace("8501", rest).replace("8500", grpc) for c in commands)])
    servers = directory / "servers.txt"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "EXAMPLE_SERVERS": str(servers)}
    env.update(EXAMPLE_REST_PORT=rest, EXAMPLE_GRPC_PORT=grpc)
    try:
        done = subprocess.run(["bash", "-c", script], cwd=directory, env=env, capture_output=True, text=True)
    finally:
        for pid in servers.read_text().split() if servers.exists() else []:
            example_shim.stop(int(pid), signal.SIGTERM)
    assert done.returncode == 0, f"status {done.returncode}\n{done.stdout[-8000:]}\n{done.stderr[-8000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-8000:]
    assert [path for path in made if not (directory / path).exists()] == []
    return done.stdout


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path):
    made = ["out/quick/patterns.cxi", "out/msft/augment.png", "out/fit/fit_3.json", "out/msft_ds/dataset_info.json"]
    made += ["out/run/best.keras", "out/run/evaluation/report.json", "out/vgg_run/best.keras", "out/models/hits/1"]
    out = _run_examples(tmp_path / "readme", runnable(readme_commands()), made)
    assert '"model_version_status"' in out  # curl's answer
    assert "spizoo predict: 64 frames predicted" in out


@pytest.mark.slow
def test_help_examples_run_as_written(tmp_path):
    made = ["out/sim/contact_sheet.png", "out/agipd/patterns.geom", "out/fit/fit_2.json", "out/fits/summary.json"]
    made += ["out/msft_run/best.keras", "out/quick_run/evaluation/report.json", "out/models/hits/1", "out/spi_hits"]
    out = _run_examples(tmp_path / "help", runnable(help_commands()), made)
    assert (tmp_path / "help" / "pred.csv").read_text().count("\n") == 65  # a header and 64 frames
    assert '"signature_def"' in out  # curl's metadata
    assert '"network"' in (tmp_path / "help" / "out" / "fits" / "summary.json").read_text()
