"""The guard rail of issue 18 on every inference path: frames unlike a model's training frames get the same
warning from a run directory, an export and a REST server (gRPC says it could not check), and ``--strict``
refuses them before anything is written."""

import json

import pytest

from spizoo import cli, experiment
from spizoo.commands import simulate
from spizoo.commands._common import load_predictor
from spizoo.commands.predict import predict_file
from spizoo.data.frame_check import FrameMismatchError
from spizoo.serving.classify import classify_files
from spizoo.serving.monitor import Monitor
from spizoo.serving.server import Server, manager_from_args


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """CXI files: like the hits model's training frames, of 75 µm pixels, and MSFT log-images."""
    root = tmp_path_factory.mktemp("frame_check")
    small = ["sim.detector.pixels=[32,32]", "sim.patterns_per_model=3"]
    for name, config_file, overrides in (
        ("like", "configs/quickstart.yaml", small),
        ("fine", "configs/quickstart.yaml", [*small, "sim.detector.pixel_size_um=[75,75]"]),
        ("log", "configs/quickstart_msft.yaml", ["sim.columns=32", "sim.detector.pixels=[32,32]"]),
    ):
        simulate.simulate(experiment.load(config_file, overrides), 4, root / name, workers=1)
    return {name: root / name / "patterns.cxi" for name in ("like", "fine", "log")}


def test_every_path_warns_alike_and_strict_refuses(runs, exported, frames, tmp_path, capsys):
    run, _ = runs["hits"]
    summary, _ = classify_files(load_predictor(str(run)), [frames["like"]], tmp_path / "like.h5")
    assert summary["frame_check"].startswith("1 sources like the training frames (photon counts")
    assert "warning" not in capsys.readouterr().err

    manager = manager_from_args(None, "hits", str(exported / "hits"), poll_seconds=0)
    with Server(manager, rest_port=0, grpc_port=0) as server:
        models = [str(run), str(exported / "hits"), f"http://127.0.0.1:{server.rest_port}/hits"]
        for k, model in enumerate(models):
            predictor = load_predictor(model)
            summary, _ = classify_files(predictor, [frames["fine"], frames["log"]], tmp_path / f"{k}.h5")
            assert summary["frame_check"].startswith("2 of 2 sources unlike")
            err = capsys.readouterr().err
            assert f"warning: {frames['fine']}: pixels of 75 µm" in err and "patterns look" in err
            log = next(line for line in err.splitlines() if f"warning: {frames['log']}: " in line)
            assert "photon energy 92 eV" in log and "values between" in log and "with fractions" in log
            with pytest.raises(FrameMismatchError, match="75 µm"):
                classify_files(predictor, [frames["fine"]], tmp_path / f"strict{k}.h5", strict=True)
            assert not list(tmp_path.glob(f"strict{k}*"))  # nothing written, not even a .partial
        rows = predict_file(load_predictor(models[-1]), frames["log"], strict=False)
        assert len(rows) == 4 and "with fractions" in capsys.readouterr().err
        grpc = load_predictor(f"grpc://127.0.0.1:{server.grpc_port}/hits")
        summary, _ = classify_files(grpc, [frames["fine"]], tmp_path / "grpc.h5")
        assert summary["frame_check"].startswith("not checked")


def test_the_cli_says_it_in_one_line(runs, frames, tmp_path, capsys):
    run, _ = runs["hits"]
    out = tmp_path / "r.h5"
    assert cli.main(["classify", str(run), str(frames["fine"]), "--out", str(out), "--strict"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "75 µm" in err[-1] and "(--strict)" in err[-1] and "Traceback" not in "".join(err)
    assert not out.exists()
    assert cli.main(["classify", str(run), str(frames["fine"]), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert "75 µm" in captured.err and json.loads(captured.out)["frame_check"].startswith("1 of 1 sources unlike")


def test_monitor_notes_the_warning_and_strict_skips_the_file(runs, frames, tmp_path):
    run, _ = runs["hits"]
    watched = tmp_path / "daq"
    watched.mkdir()
    (watched / "r1.cxi").write_bytes(frames["log"].read_bytes())
    predictor = load_predictor(str(run))
    scan = Monitor(predictor, watched, tmp_path / "warned").poll()
    assert scan["new_frames"] == 4 and scan["notes"][0].startswith("warning: r1.cxi: pixels of 3,608 µm")
    strict = Monitor(predictor, watched, tmp_path / "strict", strict=True, retries=2)
    notes = [n for _ in range(2) for n in strict.poll()["notes"]]
    assert strict.frames_done() == 0
    assert "with fractions" in notes[0] and notes[-1].startswith("skipping r1.cxi after 2 failed reads")
