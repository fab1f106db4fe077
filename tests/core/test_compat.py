"""The workarounds in spizoo.core.compat: each undoes itself, and each upstream defect is still there (when a
release fixes one, its test here fails: drop the workaround)."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow import trainer

from spizoo.core import compat


def test_keras_is_a_version_the_workarounds_were_checked_on():
    assert ".".join(keras.__version__.split(".")[:2]) in compat.KERAS_CHECKED


def test_keras_still_reduces_scalar_metrics_along_axis_0_under_multi_worker():
    assert compat.keras_multi_worker_defect_present()


def test_the_multi_worker_fit_scope_is_undone_after_it():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((4, 3), "float32"), np.ones((4, 2), "float32"))).batch(2)
    original = trainer.reduce_per_replica
    with compat.keras_multi_worker_fit(model, data):
        assert trainer.reduce_per_replica is not original
        assert model._maybe_symbolic_build() is None  # built already, from a local batch
        model.fit(data, epochs=1, verbose=0, shuffle=False)  # a single worker: the patched reduction defers to Keras
    assert trainer.reduce_per_replica is original
    assert "_maybe_symbolic_build" not in vars(model)


def test_saved_models_still_get_the_predict_method_and_the_fix_sets_classify(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"scores": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path), signatures={"classify": module.f})
    from tensorflow.core.protobuf import saved_model_pb2

    def method():
        saved = saved_model_pb2.SavedModel.FromString((tmp_path / "saved_model.pb").read_bytes())
        return saved.meta_graphs[0].signature_def["classify"].method_name

    assert method() == "tensorflow/serving/predict"  # the defect: no way to choose it when saving
    compat.set_signature_methods(tmp_path, {"classify": "tensorflow/serving/classify"})
    assert method() == "tensorflow/serving/classify"
    assert sorted(p.name for p in tmp_path.glob("*.partial")) == []
    assert tf.saved_model.load(str(tmp_path)).signatures["classify"](tf.constant([1.0]))["scores"].numpy() == 2.0


def _tensorflow_start(quiet: bool) -> str:
    code = "import os, tensorflow as tf; tf.constant(1.0) + 1.0; os.write(2, b'a real problem\\n')"
    if quiet:
        code = "from spizoo.core import compat\nwith compat.quiet_stderr():\n    " + code.replace("; ", "\n    ")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr


def test_tensorflow_start_up_lines_are_kept_off_the_terminal_and_other_lines_pass():
    noisy = _tensorflow_start(quiet=False)
    assert "absl::InitializeLog" in noisy  # the upstream noise is still there
    assert _tensorflow_start(quiet=True) == "a real problem\n"


def test_beams_s3_client_still_makes_a_session_per_call_and_the_fix_shares_one():
    pytest.importorskip("boto3")
    from apache_beam.io.aws.clients.s3 import boto3_client

    assert compat.beam_s3_makes_a_client_per_call()
    compat.beam_s3_shared_clients()
    compat.beam_s3_shared_clients()  # idempotent
    settings = {"region_name": "us-east-1", "aws_access_key_id": "a", "aws_secret_access_key": "b"}
    first = boto3_client.boto3.session.Session().client(service_name="s3", **settings)
    assert boto3_client.boto3.session.Session().client(service_name="s3", **settings) is first
    other = boto3_client.boto3.session.Session().client(service_name="s3", **{**settings, "region_name": "eu-west-1"})
    assert other is not first
