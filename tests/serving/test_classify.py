import csv
import hashlib
import io
import json
import shutil

import h5py
import numpy as np
import pytest

from spizoo import cli, experiment
from spizoo.commands import evaluate, simulate
from spizoo.commands._common import load_predictor
from spizoo.core.labels import CLASS_NAMES
from spizoo.serving.classify import classify_files
from spizoo.serving.server import Server, manager_from_args


@pytest.fixture(scope="module")
def cxi_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cxi")
    config = experiment.load("configs/quickstart.yaml", ["sim.detector.pixels=[32,32]", "sim.patterns_per_model=3"])
    paths = []
    for i, n in enumerate((7, 5)):
        simulate.simulate(config, n, root / f"run_{i}", workers=1)
        paths.append(root / f"run_{i}" / "patterns.cxi")
    return paths


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_dir_saved_model_and_server_give_the_same_results(runs, exported, cxi_files, tmp_path):
    run, _ = runs["hits"]
    before = [_digest(p) for p in cxi_files]
    # In float32, as exported: the same graph to round-off (--precision auto may compute in bfloat16).
    summary, columns = classify_files(load_predictor(str(run), precision="float32"), cxi_files, tmp_path / "run.h5")
    assert summary["frames"] == 12 and sum(summary["frames_per_class"].values()) == 12
    assert summary["threshold"] == {"value": 0.5, "from": "default"}
    assert not (tmp_path / "run.png").exists()  # figures are the command's (below)
    with h5py.File(tmp_path / "run.h5") as f:
        assert [n.decode() for n in f["files"][()]] == [str(p) for p in cxi_files]
        assert f["file_index"][()].tolist() == [0] * 7 + [1] * 5
        assert f["frame"][()].tolist() == [*range(7), *range(5)]
        reference = {k: f[k][()] for k in ("probabilities", "classes", "single_hit_score", "single_hit")}
    for key, value in reference.items():
        np.testing.assert_array_equal(columns[key], value)
    np.testing.assert_array_equal(reference["single_hit"], reference["single_hit_score"] >= 0.5)
    assert summary["single_hit_fraction"] == pytest.approx(reference["single_hit"].mean(), abs=1e-4)

    classify_files(load_predictor(str(exported / "hits")), cxi_files, tmp_path / "saved.h5")
    manager = manager_from_args(None, "hits", str(exported / "hits"), poll_seconds=0)
    with Server(manager, rest_port=0, grpc_port=0) as server:
        for url in (f"http://127.0.0.1:{server.rest_port}/hits", f"grpc://127.0.0.1:{server.grpc_port}/hits"):
            name = url.split(":")[0]
            classify_files(load_predictor(url), cxi_files, tmp_path / f"{name}.h5", batch_size=5)
    for other in ("saved", "http", "grpc"):
        with h5py.File(tmp_path / f"{other}.h5") as f:
            np.testing.assert_allclose(f["probabilities"][()], reference["probabilities"], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(f["classes"][()], reference["classes"])
    assert [_digest(p) for p in cxi_files] == before  # inputs are never modified
    # A SavedModel or server computes as it was exported: --precision is refused for them, naming the way.
    for model in (str(exported / "hits"), "http://127.0.0.1:8501/hits"):
        with pytest.raises(ValueError, match="computes as it was exported \\(spizoo export --precision\\)"):
            load_predictor(model, precision="mixed_bfloat16")


def test_csv_results_threshold_from_the_evaluation_and_errors(runs, cxi_files, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["hits"][0], run)
    evaluate.evaluate(run, str(runs["hits"][1] / "*-test.tfrecord-*"), target_fpr=0.2)
    point = json.loads((run / "evaluation" / "report.json").read_text())["operating_point"]
    predictor = load_predictor(str(run))
    assert predictor.threshold == point["threshold"] and "operating point" in predictor.threshold_source
    assert load_predictor(str(run), threshold=0.9).threshold == 0.9
    out = tmp_path / "results.csv"
    assert cli.main(["classify", str(run), *map(str, cxi_files), "--out", str(out), "--json"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 13
    assert lines[0] == (
        "file,frame,p_none,p_single,p_double,p_triple,p_4+,class,class_name,single_hit_score,single_hit"
    )
    first = next(csv.DictReader(io.StringIO(out.read_text())))
    assert first["class_name"] == CLASS_NAMES[int(first["class"])] and first["single_hit"] in ("True", "False")
    assert abs(sum(float(first[f"p_{n}"]) for n in CLASS_NAMES) - 1) < 1e-5
    assert json.loads(capsys.readouterr().out)["frames"] == 12
    assert (tmp_path / "results.png").stat().st_size > 5000
    assert cli.main(["classify", str(run), str(cxi_files[0]), "--out", str(out)]) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert cli.main(["classify", str(tmp_path), str(cxi_files[0]), "--out", str(tmp_path / "x.h5")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert cli.main(["classify", "http://127.0.0.1:1", str(cxi_files[0]), "--out", str(tmp_path / "y.h5")]) == 2
    assert "name the model in the server URL" in capsys.readouterr().err
    assert cli.main(["classify", "http://127.0.0.1:1/hits", str(cxi_files[0]), "--out", str(tmp_path / "y.h5")]) == 2
    assert "cannot reach the model server at http://127.0.0.1:1:" in capsys.readouterr().err
    assert cli.main(["classify", str(run), str(tmp_path / "none.cxi"), "--out", str(tmp_path / "z.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "z.h5").exists() and not (tmp_path / "z.h5.partial").exists()


def _headings(dataset):
    return [h.decode() if isinstance(h, bytes) else h for h in dataset.attrs["headings"]]


def test_cxi_results_hold_scores_and_tags_with_headings(runs, cxi_files, tmp_path):
    summary, columns = classify_files(load_predictor(str(runs["hits"][0])), cxi_files, tmp_path / "r.cxi")
    with h5py.File(tmp_path / "r.cxi") as f:
        assert f["cxi_version"][()] == 160
        det = f["entry_1/instrument_1/detector_1"]
        assert _headings(det["score"]) == [f"p_{n}" for n in CLASS_NAMES] + ["single_hit_score"]
        assert det["score"].shape == (6, 12)  # scores × frames, frames fastest (CXI 1.6)
        np.testing.assert_allclose(det["score"][5], columns["single_hit_score"], rtol=1e-6)
        tags = det["tags"][()]
        assert tags.dtype == np.int8 and _headings(det["tags"]) == ["hit", "single_hit"]
        np.testing.assert_array_equal(tags[1], columns["single_hit"])
        np.testing.assert_array_equal(tags[0], columns["classes"] >= 1)
        files = [n.decode() for n in f["entry_1/result_1/file"][()]]
        assert files == [str(cxi_files[0])] * 7 + [str(cxi_files[1])] * 5
        assert f["entry_1/result_1/frame"][()].tolist() == [*range(7), *range(5)]


def test_single_hits_of_flat_cxi_files_go_to_emc_with_the_files_own_detector(runs, cxi_files, tmp_path):
    from spizoo.data.emc import read_photons
    from spizoo.data.frames import ViewFinder
    from spizoo.serving.emc import export_hits

    classify_files(load_predictor(str(runs["hits"][0])), cxi_files[:1], tmp_path / "r.h5")
    out = export_hits(tmp_path / "r.h5", tmp_path / "emc", views=ViewFinder(), threshold=0.0)  # every frame
    assert out["frames"] == 7 and out["detector"] == "flat" and out["num_pix"] == 32 * 32
    with h5py.File(cxi_files[0]) as f:
        det = f["entry_1/instrument_1/detector_1"]
        frames, distance, pixel = det["data"][()], det["distance"][0], det["x_pixel_size"][0]
        corner = det["corner_position"][0]
    np.testing.assert_array_equal(read_photons(tmp_path / "emc" / "photons.h5"), frames.reshape(7, -1))
    with h5py.File(tmp_path / "emc" / "detector.h5") as f:
        assert f["detd"][()] == pytest.approx(distance / pixel)
        q = np.hypot(np.hypot(f["qx"][()], f["qy"][()]), f["qz"][()]).reshape(32, 32)
    # The beam (q = 0) is where the file's corner_position puts it: pixel (−y0/p − 0.5, −x0/p − 0.5).
    beam = (-corner[1] / pixel - 0.5, -corner[0] / pixel - 0.5)
    nearest = np.unravel_index(np.argmin(q), q.shape)
    assert abs(nearest[0] - beam[0]) <= 0.5 and abs(nearest[1] - beam[1]) <= 0.5


def test_frames_smaller_than_the_models_crop_are_one_line_naming_the_file(runs, tmp_path, capsys):
    config = experiment.load("configs/quickstart.yaml", ["sim.detector.pixels=[16,16]", "sim.patterns_per_model=2"])
    simulate.simulate(config, 2, tmp_path / "small", workers=1)
    small, out = tmp_path / "small" / "patterns.cxi", tmp_path / "r.h5"
    assert cli.main(["classify", str(runs["hits"][0]), str(small), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1] == (
        f"spizoo classify: error: {small}: frames of 16x16 pixels are smaller than the model's input, their "
        "central 24x24 pixels (data.crop=24)"
    )
    assert not out.exists() and not list(tmp_path.glob("r.h5*"))
