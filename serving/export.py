"""A trained run as a TF Serving SavedModel version, with its server config files.

``BASE/NAME/<version>/`` holds a SavedModel whose signatures take what a facility has, with the training
preprocessing inside the graph (``spizoo.data.pipeline.preprocess``: crop, dataset or log scaling, VGG view):

- ``serving_default``: ``images`` float32 [batch, H, W] photon counts → float32 ``probabilities``,
  int64 ``classes``, float32 ``single_hit_score`` (classifiers), or float32 ``quaternion`` (projected into
  the icosahedral fundamental domain) and ``radius_nm`` (the regressor, seed 001 §3);
- ``predict_examples``: ``examples``, serialized ``tf.Example`` in the dataset schema → the same outputs;
- ``classify`` (classifiers) / ``regress`` (the regressor's radius in nm): TF Serving's Classify and Regress
  APIs, input ``inputs`` (serialized ``tf.Example``).

Alongside: ``assets/`` (``labels.txt``, the resolved ``config.yaml``, ``dataset_info.json`` and statistics),
``assets.extra/tf_serving_warmup_requests`` (a few requests TF Serving replays before serving a version),
and ``BASE/models.config`` (``model_config_list`` text proto: every model under BASE, version policy,
``stable`` label on the newest export) with ``BASE/monitoring.config`` (Prometheus). A version appears under
its number only once complete (written as ``.partial-<version>``, then renamed): TF Serving and
``spizoo serve`` ignore directories whose name is not a number.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from spizoo.core import compat
from spizoo.core.task import Task
from spizoo.data import schema, tfrecord
from spizoo.data.pipeline import DataConfig, load_dataset_info, preprocess
from spizoo.models.training import pipeline_config
from spizoo.sim import icosahedral, quaternion

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
MODELS_CONFIG = "models.config"
MONITORING_CONFIG = "monitoring.config"
METRICS_PATH = "/monitoring/prometheus/metrics"
WARMUP_FILE = "tf_serving_warmup_requests"


def versions(model_base: Path) -> list[int]:
    """The complete versions under a model's base path, ascending (directories named by an integer)."""
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir() if p.is_dir() and p.name.isascii() and p.name.isdigit())


def export(
    run_dir: str | Path,
    base_path: str | Path,
    name: str,
    *,
    data: DataConfig,
    task: Task,
    version: int | None = None,
    config_base_path: str | None = None,
    precision: str = "float32",
) -> Path:
    """Exports ``run_dir/best.keras`` as ``base_path/name/<version>``; returns that directory.

    Args:
        data, task: the run's ``data:`` config section (the preprocessing put in the graph) and its model's task.
        version: the version number (default: one more than the newest one there).
        config_base_path: the directory ``models.config`` names in place of ``base_path`` (the path the
            server sees, e.g. ``/models`` inside the TF Serving container); default ``base_path``, absolute.
        precision: what the graph computes in (:data:`spizoo.models.precision.PRECISIONS`; ``auto`` is decided
            by this machine, not the server's); batch norm is folded into the convolutions either way.

    Raises:
        FileNotFoundError: if the run has no ``best.keras``.
        FileExistsError: if the version exists.
        ValueError: for a bad name or version.
    """
    from spizoo.models.inference import load_for_inference  # loads Keras: only when a model is exported

    run_dir, base_path = Path(run_dir), Path(base_path)
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"model name must be letters, digits, '-', '_' or '.', got {name!r}")
    if not (run_dir / "best.keras").exists():
        raise FileNotFoundError(f"no best.keras in {run_dir}: train first with `spizoo train … --out {run_dir}`")
    model_base = base_path / name
    if version is None:
        version = (versions(model_base) or [0])[-1] + 1
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = model_base / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; versions are immutable, export as a new version")

    info = load_dataset_info(run_dir)
    model = load_for_inference(run_dir / "best.keras", precision)
    partial = model_base / f".partial-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    model_base.mkdir(parents=True, exist_ok=True)
    try:
        _write_saved_model(model, data, info, task, partial)
        _write_assets(run_dir, partial, task)
        _write_warmup(partial, info)
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    write_server_configs(base_path, name, version, config_base_path)
    return final


def serving_outputs(model, data: DataConfig, info: dict, task: Task):
    """``outputs(images)``: raw detector images float32 [batch, H, W] of any size the crop fits in → the
    named float32 outputs of ``serving_default`` (training preprocessing, the model, and the task's heads), as
    TensorFlow ops."""
    import tensorflow as tf  # seconds to import: only when a graph is built

    data_cfg, _ = pipeline_config(data)

    def outputs(images):
        y = tf.cast(model(preprocess(images, data_cfg, info), training=False), tf.float32)
        if task.is_regression:
            quaternion, radius = decode_target(y)
            return {"quaternion": quaternion, "radius_nm": radius}
        probabilities = tf.stack([1.0 - y, y], axis=-1) if len(task.labels) == 2 else y
        return {
            "probabilities": probabilities,
            "classes": tf.argmax(probabilities, axis=-1),
            "single_hit_score": probabilities[:, 1],
        }

    return outputs


def _write_saved_model(model, data: DataConfig, info: dict, task: Task, path: Path) -> None:
    import keras  # seconds to import: only when a model is exported
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    height, width = (int(n) for n in info["image_shape"])
    heads = serving_outputs(model, data, info, task)

    def images_of(serialized):
        spec = {k: v for k, v in schema.feature_spec().items() if k == schema.IMAGE}
        raw = tf.io.parse_example(serialized, spec)[schema.IMAGE]
        return tf.reshape(tf.io.decode_raw(raw, tf.float32), [-1, height, width])

    archive = keras.export.ExportArchive()
    archive.track(model)
    images_spec = tf.TensorSpec([None, None, None], tf.float32, name="images")  # cropped as in training
    archive.add_endpoint("serving_default", heads, input_signature=[images_spec])
    archive.add_endpoint(
        "predict_examples",
        lambda examples: heads(images_of(examples)),
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")],
    )
    inputs_spec = [tf.TensorSpec([None], tf.string, name="inputs")]
    if task.api == "regress":
        archive.add_endpoint(
            "regress", lambda inputs: {"outputs": heads(images_of(inputs))["radius_nm"]}, input_signature=inputs_spec
        )
    else:

        def classify(inputs):
            scores = heads(images_of(inputs))["probabilities"]
            classes = tf.tile(tf.constant([list(task.labels)]), [tf.shape(scores)[0], 1])
            return {"classes": classes, "scores": scores}

        archive.add_endpoint("classify", classify, input_signature=inputs_spec)
    archive.write_out(str(path), verbose=False)
    compat.set_signature_methods(path, {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD})


def decode_target(t):
    """:func:`spizoo.sim.icosahedral.decode_target` in the graph: network outputs in [-1, 1] → (unit quaternion
    projected into the fundamental domain, radius in nm)."""
    import tensorflow as tf  # seconds to import: only when a graph is built

    ext = icosahedral.fundamental_extents()
    lo = np.append(ext[:, 0], icosahedral.RADIUS_RANGE_NM[0]).astype(np.float32)
    hi = np.append(ext[:, 1], icosahedral.RADIUS_RANGE_NM[1]).astype(np.float32)
    params = lo + (t + 1.0) / 2.0 * (hi - lo)
    q = tf.math.l2_normalize(params[:, :4], axis=-1)
    # q g for the 60 symmetries g is linear in q: (q g)_i = sum_j R[g, i, j] q_j.
    right = np.stack([quaternion.multiply(np.eye(4), g).T for g in icosahedral.group()]).astype(np.float32)
    candidates = tf.einsum("gij,bj->bgi", right, q)
    best = tf.argmax(tf.abs(candidates[..., 0]), axis=-1)
    chosen = tf.gather(candidates, best, axis=1, batch_dims=1)
    return chosen * tf.where(chosen[:, :1] < 0, -1.0, 1.0), params[:, 4]


def _write_assets(run_dir: Path, path: Path, task: Task) -> None:
    assets = path / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "labels.txt").write_text("".join(f"{n}\n" for n in task.labels))
    for f in ("config.yaml", "dataset_info.json", "train_mean.npy", "train_std.npy"):
        if (run_dir / f).exists():
            shutil.copy(run_dir / f, assets / f)


def _write_warmup(path: Path, info: dict, batch_sizes=(1, 4)) -> None:
    """``assets.extra/tf_serving_warmup_requests``: PredictionLogs of ``serving_default`` on the training mean
    image (an input of the right shape and scale), at batch 1 and 4."""
    import tensorflow as tf  # seconds to import: only when a model is exported
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2  # TensorFlow's protos: only when used

    height, width = (int(n) for n in info["image_shape"])
    mean = info.get("mean_image")
    image = np.asarray(mean if mean is not None else np.zeros((height, width)), np.float32)
    extra = path / "assets.extra"
    extra.mkdir(exist_ok=True)
    with open(extra / WARMUP_FILE, "wb") as f:
        for n in batch_sizes:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(np.repeat(image[None], n, axis=0)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            f.write(tfrecord.frame(log.SerializeToString()))


def write_server_configs(base_path: Path, name: str, version: int, config_base_path: str | None = None) -> None:
    """Adds or updates ``name`` in ``base_path/models.config`` (label ``stable`` → ``version``, latest two
    versions served) and writes ``monitoring.config``; other models in the file are kept."""
    from google.protobuf import text_format  # TF Serving's protos load TensorFlow
    from tensorflow_serving.config import model_server_config_pb2  # TensorFlow's protos: only when used

    base_path = Path(base_path)
    path = base_path / MODELS_CONFIG
    server_config = model_server_config_pb2.ModelServerConfig()
    if path.exists():
        try:
            text_format.Parse(path.read_text(), server_config)
        except text_format.ParseError as err:
            raise ValueError(f"{path}: not a ModelServerConfig text proto: {err}") from None
    configs = server_config.model_config_list.config
    entry = next((c for c in configs if c.name == name), None) or configs.add()
    root = config_base_path if config_base_path is not None else str(base_path.resolve())
    entry.name = name
    entry.base_path = f"{root.rstrip('/')}/{name}"
    entry.model_platform = "tensorflow"
    entry.model_version_policy.latest.num_versions = 2
    entry.version_labels["stable"] = version
    _atomic_write(path, text_format.MessageToString(server_config))
    _atomic_write(
        base_path / MONITORING_CONFIG, f'prometheus_config {{\n  enable: true\n  path: "{METRICS_PATH}"\n}}\n'
    )


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def read_labels(version_dir: Path) -> list[str]:
    """Class names of an exported version (empty for the regressor)."""
    labels = Path(version_dir) / "assets" / "labels.txt"
    return labels.read_text().split() if labels.exists() else []


def summary(version_dir: Path) -> dict:
    """Signature names and kinds of an exported version (for the CLI's message)."""
    info = json.loads((Path(version_dir) / "assets" / "dataset_info.json").read_text())
    return {"path": str(version_dir), "image_shape": info["image_shape"], "labels": read_labels(version_dir)}
