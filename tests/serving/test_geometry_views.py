"""A real detector end to end: simulate module-stacked frames on a geometry, generate, train, classify; the
training data and the classified frames go through the same view."""

import csv

import h5py
import numpy as np
import pytest
import yaml
from mock_runs import euxfel_module_file  # tests/ is on the path

from spizoo import cli, experiment
from spizoo.beam_pipelines import generate, ingest
from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.commands import simulate
from spizoo.commands._common import load_predictor
from spizoo.data import schema
from spizoo.data.emc import read_photons
from spizoo.data.frames import FrameFile, ViewFinder
from spizoo.data.tfrecord import read_records
from spizoo.models import training
from spizoo.serving.classify import classify_files
from spizoo.serving.emc import export_hits
from spizoo.sim.geometry import Geometry, View

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def epix(tmp_path_factory):
    """A tiny classifier trained on an ePix10k (352×384 pixels of 100 µm) seen 8×8-binned, 32×32 around the
    beam; and 6 patterns of the same config simulated to a module-stacked CXI file with its .geom file."""
    root = tmp_path_factory.mktemp("epix")
    text = yaml.safe_load(open("configs/quickstart.yaml"))
    text["sim"]["patterns_per_model"] = 4
    text["sim"]["detector"] = {"geometry": {"detector": "ePix10k"}, "bin": 8, "pixels": [32, 32]}
    text["dataset"].update(patterns=48, shards={"train": 1, "validation": 1, "test": 1})
    text["dataset"]["splits"] = {"train": 0.6, "validation": 0.2, "test": 0.2}
    text["data"] = {"crop": 24, "batch_size": 16}
    text["train"] = {"epochs": 1, "mixed_precision": "float32"}
    (root / "epix.yaml").write_text(yaml.safe_dump(text))
    config = experiment.load(root / "epix.yaml")
    generate.run(config, root / "ds", IN_MEMORY)
    training.train(config, root / "ds", root / "run")
    simulate.simulate(config, 6, root / "sim", workers=1)
    return config, root


def test_simulate_writes_module_stacked_frames_and_a_geometry_extra_geom_reads(epix):
    config, root = epix
    with h5py.File(root / "sim" / "patterns.cxi") as f:
        data = f["entry_1/instrument_1/detector_1/data"]
        assert data.shape == (6, 1, 352, 384)
        assert data.attrs["axes"] == "experiment_identifier:module_identifier:y:x"
        assert f["entry_1/instrument_1/detector_1/mask"].shape == (6, 1, 352, 384)
    layout = Geometry.from_crystfel(root / "sim" / "patterns.geom")
    assert layout.name == "ePix10k"
    np.testing.assert_allclose(layout.positions_m, config.sim.layout().positions_m, atol=1e-12)


def _images(dataset):
    """{(second and third part of the key): image} of every example of a dataset directory."""
    out = {}
    for shard in sorted(dataset.glob("*.tfrecord-*")):
        with open(shard, "rb") as f:
            for record in read_records(f, shard.name):
                ex = schema.decode_example(record)
                key = ex["key"].decode() if isinstance(ex["key"], bytes) else str(ex["key"])
                out[tuple(key.split("/")[1:3])] = ex["image"]
    return out


def test_training_examples_are_the_view_of_the_simulated_frames_as_ingest_reads_them(epix, tmp_path):
    config, root = epix
    view = config.sim.view()
    examples = _images(root / "ds")
    assert len(examples) == 48 and next(iter(examples.values())).shape == (32, 32)
    with h5py.File(root / "sim" / "patterns.cxi") as f:
        frames = f["entry_1/instrument_1/detector_1/data"][()]
    for i, frame in enumerate(frames):  # patterns 0–5 of the same seed: models 0 and 1
        np.testing.assert_array_equal(examples[tuple(map(str, divmod(i, 4)))], view(frame))
    # spizoo ingest of the module-stacked file (its .geom beside it) writes the same images.
    ingest_config = ingest.make_config(
        [str(root / "sim" / "patterns.cxi")], labels=None, dataset=DatasetConfig(name="real"), bin=8, pixels=(32, 32)
    )
    ingest.run(ingest_config, tmp_path / "ingested", IN_MEMORY)
    ingested = _images(tmp_path / "ingested")
    assert len(ingested) == 6
    for i in range(6):
        np.testing.assert_array_equal(ingested[("patterns.cxi", str(i))], examples[tuple(map(str, divmod(i, 4)))])


def test_classify_of_module_stacked_frames_equals_classify_of_their_views(epix, tmp_path):
    config, root = epix
    cxi = root / "sim" / "patterns.cxi"
    predictor = load_predictor(str(root / "run"))
    finder = ViewFinder(pixels=(32, 32), bin=8)  # the .geom beside the file
    summary, stacked = classify_files(predictor, [cxi], tmp_path / "stacked.h5", view=finder)
    assert summary["frames"] == 6 and summary["geometry"]["files"] == {str(cxi): str(cxi.with_suffix(".geom"))}
    view = View(Geometry.from_crystfel(cxi.with_suffix(".geom")), (32, 32), 8)
    with h5py.File(cxi) as f:
        images = view(f["entry_1/instrument_1/detector_1/data"][()], f["entry_1/instrument_1/detector_1/mask"][()])
    with h5py.File(tmp_path / "flat.h5", "w") as f:
        f["entry_1/data_1/data"] = images
    _, flat = classify_files(predictor, [tmp_path / "flat.h5"], tmp_path / "flat_results.h5")
    np.testing.assert_array_equal(stacked["probabilities"], flat["probabilities"])
    # Without a geometry beside the file or given, module-stacked frames are refused, naming what to pass.
    (tmp_path / "alone.cxi").write_bytes(cxi.read_bytes())
    with pytest.raises(ValueError, match=r"alone.cxi: .* module-stacked frames \(1 modules of 352x384 .*--geometry"):
        classify_files(predictor, [tmp_path / "alone.cxi"], tmp_path / "x.h5", view=ViewFinder())


def test_classify_of_a_european_xfel_run_carries_train_pulse_and_cell_ids(runs, euxfel_run, tmp_path):
    """A run directory (EXtra-data's mock AGIPD-1M run) classified through its geometry equals classifying
    the same frames' views from a file; every frame keeps its train, pulse and memory cell."""
    run_dir, _ = runs["hits"]
    predictor = load_predictor(str(run_dir))
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    finder = ViewFinder(geom, pixels=(32, 32), bin=8)
    summary, results = classify_files(predictor, [euxfel_run], tmp_path / "r.h5", view=finder, trains=slice(0, 2))
    assert summary["frames"] == 128
    assert results["train_id"].tolist() == [10000] * 64 + [10001] * 64
    assert results["pulse_id"].tolist() == results["cell_id"].tolist() == [*range(64)] * 2
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["train_id"].shape == (128,) and f["cell_id"][()].tolist() == results["cell_id"].tolist()
    view = View(Geometry.from_crystfel(geom), (32, 32), 8)
    data, mask = [], []
    for m in range(16):
        name, group = euxfel_module_file(euxfel_run, m)
        with h5py.File(name) as f:
            data.append(f[f"{group}/data"][:128])
            mask.append(f[f"{group}/mask"][:128])
    with h5py.File(tmp_path / "views.h5", "w") as f:
        f["entry_1/data_1/data"] = view(np.stack(data, 1), np.stack(mask, 1))
    _, flat = classify_files(predictor, [tmp_path / "views.h5"], tmp_path / "views_results.h5")
    np.testing.assert_array_equal(results["probabilities"], flat["probabilities"])
    assert "train_id" not in flat  # files without runs keep today's columns


def test_single_hits_go_to_emc_at_full_resolution_with_a_detector_file_of_their_geometry(epix, runs, tmp_path):
    config, root = epix
    cxi = root / "sim" / "patterns.cxi"
    predictor = load_predictor(str(root / "run"))
    summary, results = classify_files(predictor, [cxi], tmp_path / "r.h5", view=ViewFinder(pixels=(32, 32), bin=8))
    threshold = float(np.median(results["single_hit_score"]))
    chosen = np.flatnonzero(results["single_hit_score"] >= threshold)
    out = export_hits(tmp_path / "r.h5", tmp_path / "emc", views=ViewFinder(), threshold=threshold)
    assert out["frames"] == len(chosen) > 0 and out["num_pix"] == 352 * 384
    with h5py.File(cxi) as f:
        stored = f["entry_1/instrument_1/detector_1/data"][()]
    photons = read_photons(tmp_path / "emc" / "photons.h5")
    np.testing.assert_array_equal(photons, np.rint(stored[chosen]).reshape(len(chosen), -1))
    with open(tmp_path / "emc" / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == chosen.tolist() and rows[0]["file"] == str(cxi)
    # The detector file: q in voxels on the Ewald sphere of radius ewald_rad, ΔΩ·P, seams bad, D in pixels.
    layout = Geometry.from_crystfel(cxi.with_suffix(".geom"))
    with h5py.File(tmp_path / "emc" / "detector.h5") as f:
        det = {k: f[k][()] for k in ("qx", "qy", "qz", "corr", "mask", "detd", "ewald_rad")}
    assert det["detd"] == pytest.approx(layout.distance_m / layout.pixel_size_m) == det["ewald_rad"]
    k = 2 * np.pi / 0.8
    q = layout.q_inv_nm(0.8).reshape(-1, 3) * det["ewald_rad"] / k
    np.testing.assert_allclose(np.stack([det["qx"], det["qy"], det["qz"]], -1), q, atol=1e-9)
    np.testing.assert_allclose(det["corr"], (layout.solid_angle_sr() * layout.polarization()).ravel(), rtol=1e-12)
    assert set(np.unique(det["mask"])) == {0, 2} and np.all(det["mask"][layout.static_mask.ravel() != 0] == 2)
    args = ["emc", str(tmp_path / "r.h5"), "--out", str(tmp_path / "cli"), "--threshold", str(threshold), "--json"]
    assert cli.main(args) == 0  # the verb writes the same files
    assert read_photons(tmp_path / "cli" / "photons.h5").tolist() == photons.tolist()
    # With a regressor, each EMC frame gets its orientation and size estimates (from the frame's view).
    regressor, views = load_predictor(str(runs["sizes"][0])), ViewFinder(pixels=(32, 32), bin=8)
    export_hits(tmp_path / "r.h5", tmp_path / "sized", views=ViewFinder(), threshold=threshold, regressor=regressor,
                regressor_views=views)  # fmt: skip
    with open(tmp_path / "sized" / "frames.csv") as f:
        sized = list(csv.DictReader(f))
    with FrameFile(cxi, view=views) as frames:
        expected = regressor.predict(np.concatenate([frames.read(i, i + 1) for i in chosen]))
    quaternions = [[float(r[f"q{j}"]) for j in range(4)] for r in sized]
    np.testing.assert_allclose(quaternions, expected["quaternion"], atol=1e-5)
    np.testing.assert_allclose([float(r["radius_nm"]) for r in sized], expected["radius_nm"].ravel(), atol=1e-2)
    with pytest.raises(FileExistsError, match="photons.h5 exists; EMC files are never overwritten"):
        export_hits(tmp_path / "r.h5", tmp_path / "emc", views=ViewFinder(), threshold=threshold)
    with pytest.raises(ValueError, match=r"no frame scores >= 2 as a single hit \(the highest score is 0\.\d+\)"):
        export_hits(tmp_path / "r.h5", tmp_path / "none", views=ViewFinder(), threshold=2.0)


def test_single_hits_of_a_european_xfel_run_go_to_emc_with_their_train_pulse_and_cell(runs, euxfel_run, tmp_path):
    predictor = load_predictor(str(runs["hits"][0]))
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    finder = ViewFinder(geom, pixels=(32, 32), bin=8)
    _, results = classify_files(predictor, [euxfel_run], tmp_path / "r.h5", view=finder, trains=slice(1, 2))
    out = export_hits(tmp_path / "r.h5", tmp_path / "emc", views=ViewFinder(), threshold=0.0)  # every frame
    assert out["frames"] == 64 and out["detector"] == "AGIPD-1M"
    with open(tmp_path / "emc" / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["train_id"] for r in rows} == {"10001"} and [int(r["cell_id"]) for r in rows] == list(range(64))
    data = []
    for m in range(16):
        name, group = euxfel_module_file(euxfel_run, m)
        with h5py.File(name) as f:
            data.append(f[f"{group}/data"][64:128])
    np.testing.assert_array_equal(read_photons(tmp_path / "emc" / "photons.h5"), np.stack(data, 1).reshape(64, -1))
