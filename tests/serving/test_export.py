import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from spizoo import experiment
from spizoo.commands.export import export_run
from spizoo.core.labels import CLASS_NAMES
from spizoo.data import schema, tfrecord
from spizoo.data.pipeline import load_dataset_info, preprocess
from spizoo.models import load_model
from spizoo.models.training import pipeline_config
from spizoo.serving import export
from spizoo.sim import icosahedral


def _test_split(data_dir: Path, n: int = 6):
    path = sorted(data_dir.glob("*-test.tfrecord-*"))[0]
    with open(path, "rb") as f:
        records = [r for _, r in zip(range(n), tfrecord.read_records(f, path), strict=False)]
    images = np.stack([schema.decode_example(r)[schema.IMAGE] for r in records]).astype(np.float32)
    return images, records


def _keras_outputs(run: Path, images: np.ndarray) -> np.ndarray:
    config = experiment.load(run / "config.yaml")
    data_cfg, _ = pipeline_config(config.data)
    return load_model(run / "best.keras")(preprocess(images, data_cfg, load_dataset_info(run))).numpy()


def test_classifier_signatures_equal_the_keras_model_on_the_same_inputs(runs, exported):
    run, data = runs["hits"]
    images, records = _test_split(data)
    saved = tf.saved_model.load(str(exported / "hits" / "1"))
    assert set(saved.signatures) == {"serving_default", "predict_examples", "classify"}
    out = {k: v.numpy() for k, v in saved.signatures["serving_default"](images=tf.constant(images)).items()}
    expected = _keras_outputs(run, images)
    np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5, atol=1e-6)
    assert out["probabilities"].dtype == np.float32
    np.testing.assert_array_equal(out["classes"], expected.argmax(axis=1))
    np.testing.assert_allclose(out["single_hit_score"], expected[:, 1], rtol=1e-5, atol=1e-6)
    from_examples = saved.signatures["predict_examples"](examples=tf.constant(records))
    np.testing.assert_allclose(from_examples["probabilities"].numpy(), out["probabilities"], rtol=1e-6)
    classified = saved.signatures["classify"](inputs=tf.constant(records))
    assert classified["classes"].numpy()[0].tolist() == [c.encode() for c in CLASS_NAMES]
    np.testing.assert_allclose(classified["scores"].numpy(), out["probabilities"], rtol=1e-6)
    # Larger frames are cropped about their centre, as a run directory crops them; smaller ones are refused.
    padded = np.pad(images, ((0, 0), (6, 6), (6, 6)))
    larger = saved.signatures["serving_default"](images=tf.constant(padded))["probabilities"].numpy()
    np.testing.assert_allclose(larger, out["probabilities"], rtol=1e-5, atol=1e-6)
    crop = experiment.load(run / "config.yaml").data.crop
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"at least {crop}x{crop} pixels"):
        saved.signatures["serving_default"](images=tf.constant(images[:, : crop - 1, : crop - 1]))


def test_regressor_exports_fundamental_domain_quaternions_and_radius_in_nm(runs, exported):
    run, data = runs["sizes"]
    images, records = _test_split(data)
    saved = tf.saved_model.load(str(exported / "sizes" / "1"))
    assert set(saved.signatures) == {"serving_default", "predict_examples", "regress"}
    out = {k: v.numpy() for k, v in saved.signatures["serving_default"](images=tf.constant(images)).items()}
    q, radius = icosahedral.decode_target(_keras_outputs(run, images))
    # float32 through ResNet-34: the exported graph (batch norm folded into the convolutions) and Keras sum in
    # other orders (1.2e-5 seen on a quaternion component, 1.4e-5 relative on a radius).
    np.testing.assert_allclose(out["quaternion"], q, atol=5e-5)
    np.testing.assert_allclose(out["radius_nm"], radius, rtol=5e-5)
    np.testing.assert_allclose(icosahedral.project(out["quaternion"]), out["quaternion"], atol=1e-5)
    assert ((30 <= out["radius_nm"]) & (out["radius_nm"] <= 160)).all()
    regressed = saved.signatures["regress"](inputs=tf.constant(records))["outputs"].numpy()
    np.testing.assert_allclose(regressed, out["radius_nm"], rtol=1e-6)


def test_a_bfloat16_export_computes_in_bfloat16_to_the_float32_models_classes(runs, tmp_path):
    run, data = runs["hits"]
    images, _ = _test_split(data)
    version = export_run(run, tmp_path, "hits", precision="mixed_bfloat16")
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    ops = {(n.op, n.attr["DstT"].type) for f in signature.graph.as_graph_def().library.function for n in f.node_def}
    assert ("Cast", tf.bfloat16.as_datatype_enum) in ops  # inputs cast to bfloat16 for the convolutions
    out = signature(images=tf.constant(images))["probabilities"].numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _keras_outputs(run, images), atol=0.05)


def test_graph_decode_target_matches_numpy_on_random_outputs():
    t = np.random.default_rng(0).uniform(-1, 1, (200, 5)).astype(np.float32)
    q, r = export.decode_target(tf.constant(t))
    q_ref, r_ref = icosahedral.decode_target(t)
    np.testing.assert_allclose(q.numpy(), q_ref, atol=1e-5)
    np.testing.assert_allclose(r.numpy(), r_ref, rtol=1e-5)


def test_saved_model_cli_lists_the_signatures_and_tf_serving_method_names(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(exported / "hits" / "1")], capture_output=True, text=True, check=True
    ).stdout
    for name in ("serving_default", "predict_examples", "classify"):
        assert f"signature_def['{name}']" in shown
    assert "Method name is: tensorflow/serving/classify" in shown
    assert "images" in shown and "DT_FLOAT" in shown


def test_assets_warmup_and_server_configs(exported):
    version = exported / "hits" / "1"
    assert export.read_labels(version) == list(CLASS_NAMES)
    assert (version / "assets" / "config.yaml").exists() and (version / "assets" / "train_mean.npy").exists()
    with open(version / "assets.extra" / export.WARMUP_FILE, "rb") as f:
        logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in tfrecord.read_records(f)]
    saved = tf.saved_model.load(str(version))
    for log in logs:  # TF Serving replays these; each must run
        images = tf.make_ndarray(log.predict_log.request.inputs["images"])
        saved.signatures["serving_default"](images=tf.constant(images))
    assert [len(tf.make_ndarray(log.predict_log.request.inputs["images"])) for log in logs] == [1, 4]
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((exported / export.MODELS_CONFIG).read_text(), config)
    entries = {c.name: c for c in config.model_config_list.config}
    assert set(entries) == {"hits", "sizes"}
    assert entries["hits"].base_path == str((exported / "hits").resolve())
    assert entries["hits"].version_labels["stable"] == 1
    assert "prometheus_config" in (exported / export.MONITORING_CONFIG).read_text()


def test_versions_are_immutable_and_a_failed_export_leaves_nothing(runs, base_path, monkeypatch):
    run, _ = runs["hits"]
    with pytest.raises(FileExistsError, match="immutable"):
        export_run(run, base_path, "hits", version=1)
    second = export_run(run, base_path, "hits", config_base_path="/models")
    assert second.name == "2"
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base_path / export.MODELS_CONFIG).read_text(), config)
    hits = next(c for c in config.model_config_list.config if c.name == "hits")
    assert hits.version_labels["stable"] == 2 and hits.base_path == "/models/hits"
    assert len(config.model_config_list.config) == 2  # the other model is kept

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_write_warmup", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(run, base_path, "hits")
    assert sorted(p.name for p in (base_path / "hits").iterdir()) == ["1", "2"]
    with pytest.raises(ValueError, match="model name"):
        export_run(run, base_path, "bad/name")
    with pytest.raises(FileNotFoundError, match="no best.keras"):
        export_run(base_path, base_path, "x")


@pytest.mark.slow
def test_an_export_killed_at_random_moments_never_leaves_a_version_a_server_would_load(runs, tmp_path):
    """SIGKILL of ``spizoo export`` at 10 seeded random moments of its write: after each, every numbered version
    under the base path loads and has its assets; the rerun of the same command completes the export."""
    run, _ = runs["hits"]
    base = tmp_path / "models"
    command = [sys.executable, "-m", "spizoo.cli", "export", str(run), "--name", "hits", "--base-path", str(base)]
    rng = random.Random(13)
    kills, during_write = 10, 0
    for _ in range(kills):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not list((base / "hits").glob(".partial-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)  # until the version's files are being written (they take ~60 ms here)
        time.sleep(rng.uniform(0.0, 0.12))  # then a moment of the write, the rename or the config files
        during_write += bool(list((base / "hits").glob(".partial-*")))
        assert proc.poll() is None, "the export finished before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for version in export.versions(base / "hits"):  # what a server polling the base path would load
            path = base / "hits" / str(version)
            assert (path / "saved_model.pb").exists() and (path / "assets" / "labels.txt").exists(), path
            assert "serving_default" in tf.saved_model.load(str(path)).signatures
    assert during_write >= 1, f"no kill of {kills} landed while a version was being written"
    assert subprocess.run(command, capture_output=True).returncode == 0
    versions = export.versions(base / "hits")
    assert versions and not list((base / "hits").glob(".partial-*"))  # a killed export's leftover is replaced
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / export.MODELS_CONFIG).read_text(), config)
    assert config.model_config_list.config[0].version_labels["stable"] == versions[-1]


def test_version_directories_are_ascii_numbers_only(tmp_path):
    from spizoo.serving.export import versions

    for name in ("1", "12", "²", "٣", "v2", "007"):
        (tmp_path / name).mkdir()
    assert versions(tmp_path) == [1, 7, 12]
