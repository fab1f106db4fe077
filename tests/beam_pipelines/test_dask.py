"""spizoo generate on Beam's DaskRunner against a running dask.distributed cluster (two worker processes on
127.0.0.1, started and stopped here): the same bytes as the DirectRunner, and a worker SIGKILLed mid-run."""

import filecmp
import os
import signal
import threading
import time

import dask
import pytest
from conftest import CLASSIFIER, IN_MEMORY
from distributed import LocalCluster

from spizoo import cli
from spizoo.beam_pipelines import generate
from spizoo.experiment import load


def _cluster():
    return LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)


def _same_files(a, b) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert [n for n in names if not filecmp.cmp(a / n, b / n, shallow=False)] == []


def test_generate_on_a_dask_cluster_writes_the_direct_runners_bytes(tmp_path, capsys):
    sets = [arg for override in CLASSIFIER for arg in ("--set", override)]
    direct, _ = generate.run(load("configs/quickstart.yaml", CLASSIFIER), tmp_path / "direct", IN_MEMORY)
    with _cluster() as cluster:
        argv = ["generate", "configs/quickstart.yaml", "--out", str(tmp_path / "dask"), *sets, "--json"]
        assert cli.main([*argv, "--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address]) == 0
    _same_files(tmp_path / "direct", tmp_path / "dask")
    assert '"splits"' in capsys.readouterr().out
    assert sum(s["examples"] for s in direct["splits"].values()) == 96


def _kill_a_worker(cluster, out, after_units: int) -> None:
    deadline = time.monotonic() + 120
    while generate.units_done(out) < after_units and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(next(iter(cluster.workers.values())).pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("allowed_failures", [3, 0])
def test_a_worker_killed_mid_run_leaves_the_right_bytes_or_a_clear_error_and_the_rerun_completes(
    tmp_path, allowed_failures
):
    """With dask's default ``allowed-failures`` the run goes on without the killed worker; with none allowed,
    it fails naming the dead worker, leaves no OUT, and the same command resumes to the same bytes."""
    config = load("configs/quickstart.yaml", [*CLASSIFIER, "dataset.patterns=400"])  # 100 units
    generate.run(config, tmp_path / "direct", IN_MEMORY)
    out = tmp_path / "dask"
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), _cluster() as cluster:
        args = ["--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address]
        threading.Thread(target=_kill_a_worker, args=(cluster, out, 10), daemon=True).start()
        if allowed_failures:
            generate.run(config, out, args)
        else:
            with pytest.raises(ChildProcessError, match="a Dask worker died while running the pipeline"):
                generate.run(config, out, args)
            assert not out.exists() and generate.units_done(out) >= 10
            cluster.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
            _, counters = generate.run(config, out, args)
            assert counters["units_resumed"] >= 10
    _same_files(tmp_path / "direct", out)
