"""Served models: versions loaded from base paths by policy, hot-swapped as new versions appear.

:class:`ModelManager` reads a ``models.config`` (TF Serving's ``model_config_list``) or one name and base
path, loads the versions each model's policy selects (``latest { num_versions }``, ``all``, ``specific``),
and polls the base paths: a new version is loaded first, then made visible, then the old one is dropped.
Requests hold a reference to the version they started on, so none fails while versions change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from spizoo.core.errors import tensorflow_message
from spizoo.data import schema
from spizoo.data.frame_check import TrainedOn
from spizoo.serving.batching import Batcher, BatchingParameters
from spizoo.serving.errors import ServingError, invalid, not_found
from spizoo.serving.export import versions


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One ``config`` entry of a ``model_config_list``."""

    name: str
    base_path: Path
    policy: str = "latest"  # latest | all | specific
    count: int = 1  # latest: how many versions
    specific: tuple[int, ...] = ()
    labels: tuple[tuple[str, int], ...] = ()

    def wanted(self, on_disk: list[int]) -> list[int]:
        if self.policy == "all":
            return on_disk
        if self.policy == "specific":
            return [v for v in on_disk if v in self.specific]
        return on_disk[-self.count :]


def read_model_config(path: str | Path) -> list[ModelSpec]:
    """The models of a TF Serving ``--model_config_file`` (text ``ModelServerConfig``); relative base paths
    are taken relative to the file.

    Raises:
        ValueError: naming the file, for text that is not a ``ModelServerConfig`` or a model without
            ``name`` or ``base_path``.
    """
    from google.protobuf import text_format  # with the TF Serving protos below, only when used
    from tensorflow_serving.config import model_server_config_pb2  # TensorFlow's protos: only when used

    path = Path(path)
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(path.read_text(), config)
    except text_format.ParseError as err:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {err}") from None
    return [spec_from_proto(c, path.parent) for c in config.model_config_list.config]


def check_name(name: str) -> str:
    """``name`` if it can name a served model: not empty, ``.`` or ``..``, no ``/``, ``\\`` or control
    characters (NUL included); a name is a key, never a path, but it is also a URL segment and a metric label.

    Raises:
        ValueError: naming the name and what is wrong with it.
    """
    if not name or name in (".", ".."):
        raise ValueError(f"model name {name!r} is not allowed")
    bad = sorted({c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise ValueError(f"model name {name!r} holds {bad}; use letters, digits, '-', '_' or '.'")
    return name


def spec_from_proto(c, relative_to: Path = Path(".")) -> ModelSpec:
    """A :class:`ModelSpec` from a ``tensorflow.serving.ModelConfig`` message.

    Raises:
        ValueError: naming the model, for a missing or bad name or base path, or an unsupported platform.
    """
    if not c.name or not c.base_path:
        raise ValueError(f"a model config needs name and base_path, got {str(c)[:300]!r}")
    check_name(c.name)
    if "\0" in c.base_path:
        raise ValueError(f"model {c.name}: base_path {c.base_path!r} holds a NUL byte")
    if c.model_platform not in ("", "tensorflow"):
        raise ValueError(f"model {c.name}: platform {c.model_platform!r} is not supported (only 'tensorflow')")
    policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
    count = c.model_version_policy.latest.num_versions or 1
    specific = tuple(c.model_version_policy.specific.versions)
    base = Path(c.base_path)
    return ModelSpec(
        name=c.name,
        base_path=base if base.is_absolute() else relative_to / base,
        policy=policy,
        count=count,
        specific=specific,
        labels=tuple(sorted(c.version_labels.items())),
    )


class LoadedVersion:
    """One loaded SavedModel version: its signatures and their input specs."""

    def __init__(self, name: str, version: int, path: Path, batching: BatchingParameters | None = None):
        import tensorflow as tf  # TensorFlow loads in seconds: only when used
        from tensorflow.core.protobuf import saved_model_pb2  # TensorFlow's protos: only when used

        self.name, self.version, self.path = name, version, path
        self.saved = tf.saved_model.load(str(path))
        proto = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = proto.meta_graphs[0].signature_def
        self.signatures = dict(self.saved.signatures)
        self.trained_on = _trained_on(path)
        self.image_shape = self.trained_on.image_shape if self.trained_on is not None else None
        self.batchers = {}
        if batching is not None:
            self.batchers = {k: Batcher(lambda x, k=k: self._call(k, x), batching) for k in self.signatures}

    def method(self, signature: str) -> str:
        return self.signature_defs[signature].method_name

    def input_specs(self, signature: str) -> dict:
        """Input name → ``tf.TensorSpec`` of a signature."""
        return self.signatures[self._check_signature(signature)].structured_input_signature[1]

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature on numpy inputs after checking names, dtypes and shapes against it."""
        signature = self._check_signature(signature)
        specs = self.input_specs(signature)
        missing, extra = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or extra:
            raise invalid(
                f"signature {signature!r} takes inputs {sorted(specs)}; "
                + (f"missing {missing}" if missing else f"unknown {extra}")
            )
        checked = {k: _conform(k, np.asarray(v), specs[k]) for k, v in inputs.items()}
        if self.image_shape is not None:
            for k, v in checked.items():
                if v.dtype == object:
                    _check_examples(signature, k, v, self.image_shape)
        if signature in self.batchers:
            outputs = self.batchers[signature].submit(checked)
        else:
            outputs = self._call(signature, checked)
        _check_outputs(signature, checked, outputs)
        return outputs

    def _call(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf  # TensorFlow loads in seconds: only when used

        try:
            outputs = self.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
            raise invalid(f"{signature}: {tensorflow_message(err)}") from None
        return {k: v.numpy() for k, v in outputs.items()}

    def _check_signature(self, signature: str) -> str:
        signature = signature or "serving_default"
        if signature not in self.signatures:
            raise invalid(
                f"Serving signature name: {signature!r} not found in signature def; "
                f"this model has {sorted(self.signatures)}"
            )
        return signature

    def close(self) -> None:
        for b in self.batchers.values():
            b.close()


def _trained_on(path: Path) -> TrainedOn | None:
    """What a spizoo export was trained on (its dataset info), whose ``image_shape`` its ``tf.Example`` inputs
    have; ``None`` for another SavedModel (its examples are the model's business)."""
    info = path / "assets" / "dataset_info.json"
    try:
        return TrainedOn.from_info(json.loads(info.read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _check_examples(signature: str, name: str, values: np.ndarray, image_shape: tuple[int, int]) -> None:
    """Each serialized ``tf.Example`` of a spizoo signature holds one image of ``image_shape`` float32 pixels.

    The exported graph decodes a batch of examples into one run of pixels that it cuts into images: an
    example with too few or too many pixels would shift the images of the others, not fail.
    """
    from google.protobuf.message import DecodeError  # with the TensorFlow protos below, only when used
    from tensorflow.core.example import example_pb2  # TensorFlow's protos: only when used

    want = 4 * image_shape[0] * image_shape[1]
    for i, value in enumerate(values.reshape(-1)):
        try:
            data = value if isinstance(value, bytes) else str(value).encode()
            feature = example_pb2.Example.FromString(data).features.feature.get(schema.IMAGE)
        except (DecodeError, ValueError, RecursionError) as err:
            raise invalid(f"{signature}: input {name!r}: item {i} is not a serialized tf.Example ({err})") from None
        images = list(feature.bytes_list.value) if feature is not None else []
        if len(images) != 1 or len(images[0]) != want:
            got = f"{len(images[0])} bytes" if len(images) == 1 else f"{len(images)} values"
            raise invalid(
                f"{signature}: input {name!r}: example {i}'s feature {schema.IMAGE!r} must be one image of "
                f"{image_shape[0]}x{image_shape[1]} float32 pixels ({want} bytes), got {got}"
            )


def _check_outputs(signature: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
    """One output row per input row, and finite numbers (a NaN is no answer)."""
    rows = {v.shape[0] for v in inputs.values() if v.ndim}
    for k, v in outputs.items():
        if len(rows) == 1 and v.ndim and v.shape[0] not in rows:
            raise invalid(
                f"signature {signature!r} gave {v.shape[0]} rows of {k!r} for {rows.pop()} inputs: an input does "
                "not have the size the model takes"
            )
    bad = sorted(k for k, v in outputs.items() if v.dtype.kind == "f" and not np.isfinite(v).all())
    if bad:
        numbers = [np.abs(v).max() for v in inputs.values() if v.dtype.kind in "biuf" and v.size]
        hint = f" (their largest magnitude is {float(max(numbers)):g}: too large for the model)" if numbers else ""
        raise invalid(f"signature {signature!r} gave NaN or infinite {bad} for these inputs{hint}")


def _conform(name: str, value: np.ndarray, spec) -> np.ndarray:
    """``value`` as ``spec``'s dtype, with a clear error for a wrong dtype, rank or dimension, no values, NaN,
    or values beyond the range of ``spec``'s dtype."""
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.name == "string":
        if value.dtype.kind not in "SUO":
            raise invalid(f"input {name!r} must be strings (bytes), got {value.dtype}")
        value = value.astype(object)
    else:
        if value.dtype.kind not in "biuf":
            raise invalid(f"input {name!r} must be numbers of type {spec.dtype.name}, got {value.dtype}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise invalid(f"input {name!r} holds NaN or infinite values")
        with np.errstate(over="ignore", invalid="ignore"):
            value = value.astype(dtype)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise invalid(f"input {name!r} holds values beyond the range of {spec.dtype.name}")
    if value.size == 0:
        raise invalid(f"input {name!r} is empty (shape {list(value.shape)})")
    expected = spec.shape
    if expected.rank is not None:
        if value.ndim != expected.rank:
            raise invalid(f"input {name!r} must have rank {expected.rank} {expected}, got shape {list(value.shape)}")
        for axis, (want, got) in enumerate(zip(expected.as_list(), value.shape, strict=True)):
            if want is not None and want != got:
                raise invalid(f"input {name!r} must have shape {expected}, got {list(value.shape)} (axis {axis})")
    return value


def _inside(path: Path, root: Path) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([path, root]) == root


class ModelManager:
    """The set of served models and versions, kept in step with their base paths by a polling thread.

    ``model_root``: the directory a reload (``HandleReloadConfigRequest``, sent by any client) may serve
    from; base paths that resolve (links and ``..`` followed) outside it, other than those served at start,
    are refused, and relative ones are taken relative to it. Default: the common parent of the base paths.
    """

    def __init__(
        self,
        specs: list[ModelSpec],
        *,
        poll_seconds: float = 1.0,
        batching: BatchingParameters | None = None,
        model_root: str | Path | None = None,
    ):
        if not specs:
            raise ValueError("no models to serve")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for name in names:
            check_name(name)
        self.started_paths = {os.path.realpath(s.base_path) for s in specs}
        self.model_root = Path(
            os.path.realpath(model_root) if model_root is not None else os.path.commonpath(sorted(self.started_paths))
        )
        self.specs = {s.name: s for s in specs}
        self.poll_seconds = poll_seconds
        self.batching = batching
        self.loaded: dict[str, dict[int, LoadedVersion]] = {s.name: {} for s in specs}
        self.failed: dict[tuple[str, int], str] = {}  # (name, version) -> error message
        self._listing_errors: dict[str, str] = {}  # model -> last error listing its base path
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll()

    def poll(self) -> None:
        """Loads newly selected versions, then unloads those no longer selected (or no longer on disk). A base
        path that cannot be listed keeps what is loaded from it and is reported; the other models are polled."""
        for spec in list(self.specs.values()):
            try:
                wanted = spec.wanted(versions(spec.base_path))
            except (OSError, ValueError) as err:
                message = f"spizoo serve: cannot list the versions of model {spec.name} in {spec.base_path}: {err}"
                if self._listing_errors.get(spec.name) != message:
                    print(message, flush=True)
                self._listing_errors[spec.name] = message
                continue
            self._listing_errors.pop(spec.name, None)
            current = self.loaded.get(spec.name, {})
            fresh = {}
            for v in wanted:
                if v in current or (spec.name, v) in self.failed:
                    continue
                try:
                    fresh[v] = LoadedVersion(spec.name, v, spec.base_path / str(v), self.batching)
                except Exception as err:  # a broken version is reported in its status, not fatal
                    self.failed[(spec.name, v)] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            with self._lock:
                keep = {v: m for v, m in current.items() if v in wanted}
                self.loaded[spec.name] = {**keep, **fresh}
            for v, m in current.items():
                if v not in wanted:
                    m.close()

    def reload(self, specs: list[ModelSpec]) -> None:
        """Serves exactly ``specs`` from now on (``HandleReloadConfigRequest``).

        Raises:
            ServingError: INVALID_ARGUMENT, changing nothing, for no models, a repeated name, or a base path
                outside :attr:`model_root` that was not served at start.
        """
        if not specs:
            raise invalid("the new config lists no models")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise invalid(f"model names must be unique, got {names}")
        for s in specs:
            if os.path.realpath(s.base_path) not in self.started_paths and not _inside(s.base_path, self.model_root):
                raise invalid(
                    f"model {s.name}: base path {str(s.base_path)!r} is outside the model root {str(self.model_root)!r}"
                    " of this server"
                )
        with self._lock:
            dropped = [n for n in self.specs if n not in {s.name for s in specs}]
            self.specs = {s.name: s for s in specs}
            for name in dropped:
                for m in self.loaded.pop(name, {}).values():
                    m.close()
            for s in specs:
                self.loaded.setdefault(s.name, {})
        self.poll()

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedVersion:
        """The loaded version a request names (latest when neither ``version`` nor ``label`` is given).

        Raises:
            ServingError: NOT_FOUND for an unknown model, version or label.
        """
        with self._lock:
            spec = self.specs.get(name)
            loaded = dict(self.loaded.get(name, {}))
        if spec is None:
            raise not_found(f"Servable not found for request: model {name!r} (served: {sorted(self.specs)})")
        if label is not None:
            labels = dict(spec.labels)
            if label not in labels:
                raise not_found(f"Unrecognized servable version label: {label!r} of model {name!r}")
            version = labels[label]
        if version is None:
            if not loaded:
                raise not_found(f"Servable not found for request: Latest({name}): no version is loaded")
            return loaded[max(loaded)]
        if version not in loaded:
            raise not_found(f"Servable not found for request: Specific({name}, {version})")
        return loaded[version]

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[dict]:
        """TF Serving's ``model_version_status`` list for a model (or one version)."""
        if label is not None or version is not None:
            m = self.get(name, version, label)
            return [_status(m.version, "AVAILABLE")]
        with self._lock:
            if name not in self.specs:
                raise not_found(f"Could not find any versions of model {name}")
            loaded = sorted(self.loaded.get(name, {}))
        rows = [_status(v, "AVAILABLE") for v in loaded]
        rows += [_status(v, "END", msg) for (n, v), msg in sorted(self.failed.items()) if n == name]
        if not rows:
            raise not_found(f"Could not find any versions of model {name}")
        return sorted(rows, key=lambda r: -int(r["version"]))

    def start(self) -> None:
        """Polls the base paths every ``poll_seconds`` in a background thread."""

        def loop():
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.poll()
                except Exception as err:  # keep serving what is loaded
                    print(f"spizoo serve: polling failed: {err}")

        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=loop, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for versions_ in self.loaded.values():
            for m in versions_.values():
                m.close()

    def wait_for(self, name: str, version: int, timeout: float = 60.0) -> None:
        """Blocks until ``version`` of ``name`` is loaded (tests and tools)."""
        end = time.monotonic() + timeout
        while version not in self.loaded.get(name, {}):
            if time.monotonic() > end:
                raise TimeoutError(f"version {version} of {name} not loaded after {timeout} s")
            time.sleep(0.05)


def _status(version: int, state: str, message: str = "") -> dict:
    code = "OK" if not message else "UNKNOWN"
    return {"version": str(version), "state": state, "status": {"error_code": code, "error_message": message}}


def unexpected(err: Exception) -> ServingError:
    """An unexpected exception as an INTERNAL error (the server keeps serving)."""
    return ServingError("INTERNAL", f"{type(err).__name__}: {err}")
