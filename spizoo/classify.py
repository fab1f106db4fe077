"""``spizoo classify``: every frame of real experiment files through a model, into a separate results file.

MODEL is a run directory (``spizoo train``), an exported SavedModel (a version directory, or a model's base
path: its newest version), or a model server (``http://host:8501/NAME``, ``grpc://host:8500/NAME``). All
three give the outputs of the exported ``serving_default`` signature: classifiers ``probabilities``,
``classes`` and ``single_hit_score``, the regressor ``quaternion`` and ``radius_nm``. Input files are only
read; results go to HDF5 (``.h5``) or CSV (``.csv``), keyed by file and frame index, written to
``.partial`` and renamed when complete (seed 000 §2: know the dataset's quality while the beam is on).
"""

from __future__ import annotations

import csv
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from spizoo.data.frames import FrameFile

DEFAULT_THRESHOLD = 0.5


class ModelOutputError(RuntimeError):
    """The model does not give the outputs a command needs (e.g. a regressor given to ``spizoo monitor``)."""


class Predictor:
    """``predict(frames [n, H, W] float32) → {name: array}`` and the single-hit threshold that goes with it."""

    def __init__(self, predict: Callable[[np.ndarray], dict], description: str, threshold: float, source: str):
        self.predict, self.description = predict, description
        self.threshold, self.threshold_source = threshold, source


def load_predictor(model: str, threshold: float | None = None) -> Predictor:
    """A :class:`Predictor` for a run directory, a SavedModel, or a server URL (see the module docstring).

    The single-hit threshold is ``threshold`` when given, else the operating point ``spizoo evaluate`` chose
    for a run directory (its ``evaluation/report.json``), else 0.5.

    Raises:
        FileNotFoundError, ValueError: for a path that is none of these, naming what it lacks.
    """
    chosen, source = (threshold, "given") if threshold is not None else (DEFAULT_THRESHOLD, "default")
    if model.startswith(("http://", "https://", "grpc://")):
        from spizoo.serving import Client

        scheme, rest = model.split("://", 1)
        if "/" not in rest.strip("/"):
            raise ValueError(f"name the model in the server URL, e.g. {scheme}://{rest.strip('/')}/hits")
        address, name = rest.strip("/").split("/", 1)
        name = name.removeprefix("v1/models/")
        client = Client(f"{scheme}://{address}")
        return Predictor(lambda x: client.predict(x, name), f"{name} at {scheme}://{address}", chosen, source)
    path = Path(model)
    if (path / "best.keras").exists():
        return _run_predictor(path, chosen, source, threshold is None)
    if (path / "saved_model.pb").exists() or any(p.name.isdigit() for p in path.glob("*")):
        return _saved_model_predictor(path, chosen, source)
    raise FileNotFoundError(
        f"{model}: not a run directory (no best.keras), an exported SavedModel (no saved_model.pb or numbered "
        "versions) or a server URL (http://, grpc://)"
    )


def _as_numpy(predict) -> Callable[[np.ndarray], dict]:
    import tensorflow as tf

    return lambda x: {k: v.numpy() for k, v in predict(tf.constant(x, tf.float32)).items()}


def _run_predictor(run: Path, threshold: float, source: str, from_report: bool) -> Predictor:
    import tensorflow as tf

    from spizoo import experiment
    from spizoo.data.pipeline import load_dataset_info
    from spizoo.models import load_model
    from spizoo.serving.export import serving_outputs

    config = experiment.load(run / "config.yaml")
    outputs = serving_outputs(load_model(run / "best.keras"), config, load_dataset_info(run))
    report = run / "evaluation" / "report.json"
    if from_report and report.exists():
        point = json.loads(report.read_text()).get("operating_point")
        if point:
            threshold = float(point["threshold"])
            source = f"operating point for a false-positive rate <= {point['target']} ({report})"
    return Predictor(_as_numpy(tf.function(outputs)), f"run {run}", threshold, source)


def _saved_model_predictor(path: Path, threshold: float, source: str) -> Predictor:
    import tensorflow as tf

    from spizoo.serving.export import versions

    if not (path / "saved_model.pb").exists():
        path = path / str(versions(path)[-1])
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return Predictor(_as_numpy(lambda x: signature(images=x)), f"SavedModel {path}", threshold, source)


def _prefetched(files: list[FrameFile], batch_size: int, starts: dict | None = None) -> Iterator[tuple]:
    """(file index, first frame, frames) batches, read by a background thread one batch ahead."""
    out: queue.Queue = queue.Queue(maxsize=2)

    def read():
        try:
            for i, f in enumerate(files):
                for first, frames in f.batches(batch_size, (starts or {}).get(i, 0)):
                    out.put((i, first, frames))
            out.put(None)
        except BaseException as err:  # handed to the consumer
            out.put(err)

    threading.Thread(target=read, daemon=True).start()
    while (item := out.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def classify_files(
    predictor: Predictor,
    paths: list[str | Path],
    out: str | Path,
    *,
    batch_size: int = 64,
    dataset: str | None = None,
    plot: bool = True,
) -> dict:
    """Classifies every frame of ``paths`` into ``out`` (``.h5`` or ``.csv``); returns the summary.

    Raises:
        FileExistsError: if ``out`` exists.
        ValueError: for an unknown output type or unreadable input.
    """
    from tqdm import tqdm

    out = Path(out)
    if out.suffix not in (".h5", ".hdf5", ".csv"):
        raise ValueError(f"results file must end in .h5, .hdf5 or .csv, got {out.name}")
    if out.exists():
        raise FileExistsError(f"{out} exists; results are never overwritten, choose another name")
    files = [FrameFile(p, dataset) for p in paths]
    try:
        total = sum(len(f) for f in files)
        columns: dict[str, list[np.ndarray]] = {"file_index": [], "frame": []}
        start = time.perf_counter()
        with tqdm(total=total, desc="classify", unit="frame") as bar:
            for i, first, frames in _prefetched(files, batch_size):
                outputs = predictor.predict(frames)
                columns["file_index"].append(np.full(len(frames), i, np.int32))
                columns["frame"].append(np.arange(first, first + len(frames), dtype=np.int64))
                for key, value in outputs.items():
                    columns.setdefault(key, []).append(np.asarray(value))
                bar.update(len(frames))
        seconds = time.perf_counter() - start
    finally:
        for f in files:
            f.close()
    results = {k: np.concatenate(v) if v else np.zeros(0) for k, v in columns.items()}
    if "single_hit_score" in results:
        results["single_hit"] = results["single_hit_score"] >= predictor.threshold
    names = [str(Path(p)) for p in paths]
    _write_results(out, results, names, predictor)
    summary = summarize(results, names, seconds, predictor)
    summary["out"] = str(out)
    if plot and "single_hit" in results and total:
        from spizoo import plots

        summary["plot"] = str(plots.hit_rate(results["classes"], results["single_hit"], out.with_suffix(".png")))
    return summary


def summarize(results: dict, names: list[str], seconds: float, predictor: Predictor) -> dict:
    """Frames, frames per class and their fractions, single-hit fraction, throughput."""
    n = len(results["frame"])
    summary = {"files": len(names), "frames": n, "frames_per_second": round(n / max(seconds, 1e-9), 1)}
    summary["model"] = predictor.description
    if "classes" in results:
        from spizoo.serving.export import BINARY_NAMES, CLASS_NAMES

        labels = BINARY_NAMES if results["probabilities"].shape[-1] == 2 else CLASS_NAMES
        counts = np.bincount(results["classes"], minlength=len(labels))
        summary["frames_per_class"] = {labels[k]: int(c) for k, c in enumerate(counts)}
        summary["fraction_per_class"] = {labels[k]: round(float(c) / max(n, 1), 4) for k, c in enumerate(counts)}
        summary["single_hit_fraction"] = round(float(results["single_hit"].mean()) if n else 0.0, 4)
        summary["threshold"] = {"value": predictor.threshold, "from": predictor.threshold_source}
    return summary


def _write_results(out: Path, results: dict, names: list[str], predictor: Predictor) -> None:
    partial = out.with_name(out.name + ".partial")
    if out.suffix == ".csv":
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            keys = [k for k in results if k not in ("file_index",)]
            writer.writerow(["file", *keys])
            for row in range(len(results["frame"])):
                cells = [np.asarray(results[k][row]) for k in keys]
                writer.writerow(
                    [names[results["file_index"][row]], *(c.tolist() if c.ndim else c.item() for c in cells)]
                )
    else:
        import h5py

        with h5py.File(partial, "w") as f:
            f.create_dataset("files", data=np.array(names, dtype=h5py.string_dtype()))
            for key, value in results.items():
                f.create_dataset(key, data=value, compression="gzip" if value.size > 4096 else None)
            f.attrs["model"] = predictor.description
            f.attrs["threshold"] = predictor.threshold
            f.attrs["threshold_from"] = predictor.threshold_source
    os.replace(partial, out)
