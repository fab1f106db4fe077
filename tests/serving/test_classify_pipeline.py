"""spizoo classify --out-dir: an experiment's inputs classified by a Beam pipeline, each into its own results
file, equal to the single-process command; a rerun skips what is complete; on a Dask cluster too."""

import functools
import json

import h5py
import numpy as np
import pytest
from distributed import LocalCluster

from spizoo import cli, experiment
from spizoo.commands import simulate
from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving import classify_pipeline
from spizoo.serving.classify import classify_files

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
KEYS = ("probabilities", "classes", "single_hit_score", "single_hit", "frame")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    config = experiment.load("configs/quickstart.yaml", ["sim.detector.pixels=[32,32]", "sim.patterns_per_model=3"])
    paths = []
    for i, n in enumerate((5, 3, 4)):
        simulate.simulate(config.__class__(**{**config.__dict__, "seed": i}), n, root / f"s{i}", workers=1)
        paths.append((root / f"s{i}" / "patterns.cxi").rename(root / f"run_{i:04d}.cxi"))
    return paths


def _results(path) -> dict:
    with h5py.File(path) as f:
        return {k: f[k][()] for k in KEYS}


def _same_as_single_process(run, inputs, out_dir, tmp_path) -> None:
    predictor = load_predictor(str(run))
    for path in inputs:
        if not (tmp_path / f"single_{path.stem}.h5").exists():
            classify_files(predictor, [path], tmp_path / f"single_{path.stem}.h5")
        expected, got = _results(tmp_path / f"single_{path.stem}.h5"), _results(out_dir / f"{path.stem}.h5")
        for key in KEYS:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_each_input_gets_the_single_process_results_and_a_rerun_skips_what_is_done(runs, inputs, tmp_path):
    run = str(runs["hits"][0])
    kwargs = {
        "make_predictor": functools.partial(load_predictor, run),
        "make_view": functools.partial(ViewFinder),
        "batch_size": 4,
    }
    out = tmp_path / "results"
    totals = classify_pipeline.run(inputs, out, IN_MEMORY, **kwargs)
    assert totals["inputs"] == 3 and totals["frames"] == 12 and sum(totals["frames_per_class"].values()) == 12
    assert totals["results"] == [str(out / f"run_{i:04d}.h5") for i in range(3)]
    _same_as_single_process(run, inputs, out, tmp_path)
    # a crash after run_0001's results but before its summary; run_0002 never started
    (out / "run_0001.h5.summary.json").unlink()
    (out / "run_0002.h5").unlink()
    (out / "run_0002.h5.summary.json").unlink()
    kept = (out / "run_0000.h5").stat().st_mtime_ns
    assert classify_pipeline.run(inputs, out, IN_MEMORY, **kwargs) == totals
    assert (out / "run_0000.h5").stat().st_mtime_ns == kept  # complete: skipped
    _same_as_single_process(run, inputs, out, tmp_path)
    assert sorted(p.name for p in out.iterdir() if "partial" in p.name) == []
    with pytest.raises(ValueError, match=r"run_0000.cxi and .*other/run_0000.cxi would both write"):
        other = inputs[0].parent / "other"
        other.mkdir(exist_ok=True)
        classify_pipeline.run([inputs[0], other / "run_0000.cxi"], out, IN_MEMORY, **kwargs)


def test_the_cli_classifies_an_experiment_on_a_dask_cluster(runs, inputs, tmp_path, capsys):
    run, out = str(runs["hits"][0]), tmp_path / "dask"
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as c:
        argv = ["classify", run, *map(str, inputs), "--out-dir", str(out), "--batch-size", "4", "--json"]
        assert cli.main([*argv, "--runner", "DaskRunner", "--dask_client_address", c.scheduler_address]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["inputs"] == 3 and summary["frames"] == 12 and summary["out"] == str(out)
    _same_as_single_process(run, inputs, out, tmp_path)
    assert cli.main(["classify", run, str(inputs[0]), "--out", str(tmp_path / "x.h5"), "--runner", "DaskRunner"]) == 2
    assert "need --out-dir" in capsys.readouterr().err
