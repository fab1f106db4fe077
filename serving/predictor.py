"""The one inference path: a :class:`Predictor` runs frames through a trained run, an exported SavedModel or
a model server, and all three give the outputs of the exported ``serving_default`` signature with the
training preprocessing applied (classifiers ``probabilities``, ``classes`` and ``single_hit_score``; the
regressor ``quaternion`` and ``radius_nm``). ``spizoo classify``, ``monitor``, ``predict`` and
``fit-summary`` use it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from spizoo.core.task import Task
from spizoo.data.frame_check import FrameChecker, TrainedOn
from spizoo.data.pipeline import load_dataset_info
from spizoo.serving.client import Client, ServingClientError
from spizoo.serving.export import serving_outputs, versions

DEFAULT_THRESHOLD = 0.5


class ModelOutputError(RuntimeError):
    """The model does not give the outputs a command needs (e.g. a regressor given to ``spizoo monitor``)."""


class Predictor:
    """``predict(frames [n, H, W] float32) → {name: array}``, the single-hit threshold that goes with it, and
    what the model was trained on (:class:`~spizoo.data.frame_check.TrainedOn`, ``None`` where not known; a
    function of none for a server, asked when first needed)."""

    def __init__(
        self,
        predict: Callable[[np.ndarray], dict],
        description: str,
        threshold: float,
        source: str,
        trained_on: TrainedOn | Callable[[], TrainedOn | None] | None = None,
    ):
        self.predict, self.description = predict, description
        self.threshold, self.threshold_source = threshold, source
        self.trained_on = trained_on

    def frame_checker(self, *, strict: bool = False, warn: Callable[[str], None] = print) -> FrameChecker:
        """The :class:`~spizoo.data.frame_check.FrameChecker` of frames given to this model."""
        return FrameChecker(self.trained_on, strict=strict, warn=warn)


def _threshold(threshold: float | None) -> tuple[float, str]:
    return (threshold, "given") if threshold is not None else (DEFAULT_THRESHOLD, "default")


def from_server(url: str, threshold: float | None = None) -> Predictor:
    """The model named at the end of ``url``: ``http://host:8501/NAME`` (REST) or ``grpc://host:8500/NAME``."""
    scheme, rest = url.split("://", 1)
    if "/" not in rest.strip("/"):
        raise ValueError(f"name the model in the server URL, e.g. {scheme}://{rest.strip('/')}/hits")
    address, name = rest.strip("/").split("/", 1)
    name = name.removeprefix("v1/models/")
    client = Client(f"{scheme}://{address}")
    return Predictor(
        lambda x: client.predict(x, name),
        f"{name} at {scheme}://{address}",
        *_threshold(threshold),
        (lambda: _served_trained_on(client, name)) if scheme != "grpc" else None,
    )


def _served_trained_on(client: Client, name: str) -> TrainedOn | None:
    """What the served model was trained on, from the ``trained_on`` of spizoo's REST metadata (TF Serving
    says nothing, and a server not reachable yet nothing for now)."""
    try:
        described = client.metadata(name).get("trained_on")
        return TrainedOn.from_info(described) if described else None
    except (ServingClientError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _as_numpy(predict) -> Callable[[np.ndarray], dict]:
    import tensorflow as tf  # seconds to import: only once a model is really run

    return lambda x: {k: v.numpy() for k, v in predict(tf.constant(x, tf.float32)).items()}


def from_saved_model(path: str | Path, threshold: float | None = None) -> Predictor:
    """An exported version directory, or a model's base path (its newest version)."""
    import tensorflow as tf  # seconds to import: only once a model is really run

    path = Path(path)
    if not (path / "saved_model.pb").exists():
        path = path / str(versions(path)[-1])
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    info = path / "assets" / "dataset_info.json"
    trained_on = TrainedOn.from_info(json.loads(info.read_text())) if info.is_file() else None
    return Predictor(_as_numpy(lambda x: signature(images=x)), f"SavedModel {path}", *_threshold(threshold), trained_on)


def from_run(
    run_dir: str | Path, data, task: Task, threshold: float | None = None, precision: str = "float32"
) -> Predictor:
    """A run directory's ``best.keras`` with the run's ``data:`` section and task, through the same graph
    ``spizoo export`` writes, computing in ``precision`` (:func:`spizoo.models.inference.load_for_inference`).
    Without ``threshold``, the operating point ``spizoo evaluate`` chose for the run (its
    ``evaluation/report.json``), else 0.5."""
    import tensorflow as tf  # seconds to import: only once a model is really run

    from spizoo.models.inference import load_for_inference  # loads Keras: only once a model is really run

    run = Path(run_dir)
    info = load_dataset_info(run)
    outputs = serving_outputs(load_for_inference(run / "best.keras", precision), data, info, task)
    chosen, source = _threshold(threshold)
    report = run / "evaluation" / "report.json"
    if threshold is None and report.exists():
        point = json.loads(report.read_text()).get("operating_point")
        if point:
            chosen = float(point["threshold"])
            source = f"operating point for a false-positive rate <= {point['target']} ({report})"
    return Predictor(
        _as_numpy(tf.function(outputs, reduce_retracing=True)), f"run {run}", chosen, source, TrainedOn.from_info(info)
    )
