"""Every frame of experiment files through a :class:`~spizoo.serving.predictor.Predictor`, into a separate
results file (``spizoo classify``; seed 000 §2: know the dataset's quality while the beam is on).

Input files are only read; results go to HDF5 (``.h5``), CSV (``.csv``: one named column per value,
``p_<class>`` per class probability, ``class_name`` beside ``class``) or CXI 1.6 (``.cxi``: the detector's
``score`` and ``tags`` with ``headings``), keyed by file and frame index, written to ``.partial`` and renamed
when complete.
"""

from __future__ import annotations

import csv
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from spizoo.core.errors import traced_message
from spizoo.core.labels import names_for
from spizoo.data.euxfel import format_trains
from spizoo.data.frames import FrameFile, ViewFinder, open_frames
from spizoo.serving.predictor import Predictor

RUN_IDS = ("train_id", "pulse_id", "cell_id")


def warn_line(line: str) -> None:
    """A warning on standard error, above a progress bar (``tqdm.write``)."""
    tqdm.write(f"warning: {line}", file=sys.stderr)


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
    view: ViewFinder | None = None,
    source: str | None = None,
    trains: slice = slice(None),
    strict: bool = False,
) -> tuple[dict, dict]:
    """Classifies every frame of ``paths`` (CXI/HDF5 files, European XFEL run directories) into ``out``
    (``.h5``, ``.csv`` or ``.cxi``); returns (the summary, the results as columns). Module-stacked frames go through
    ``view`` (:class:`~spizoo.data.frames.ViewFinder`); runs give each frame's ``train_id``, ``pulse_id``
    and ``cell_id`` (-1 for frames of files), from detector ``source`` and the run's ``trains``. Each file's
    first frames are checked against what the model was trained on (:mod:`spizoo.data.frame_check`): a
    warning on standard error and in the summary, or with ``strict`` an error before anything is written.

    Raises:
        FileExistsError: if ``out`` exists.
        ValueError: for an unknown output type or unreadable input (``FrameMismatchError`` with ``strict``).
    """
    out = Path(out)
    if out.suffix not in (".h5", ".hdf5", ".csv", ".cxi"):
        raise ValueError(f"results file must end in .h5, .hdf5, .csv or .cxi (CXI 1.6), got {out.name}")
    if out.exists():
        raise FileExistsError(f"{out} exists; results are never overwritten, choose another name")
    files = []
    try:
        files.extend(open_frames(p, dataset, view=view, source=source, trains=trains) for p in paths)
    except BaseException:
        for f in files:
            f.close()
        raise
    checker = predictor.frame_checker(strict=strict, warn=warn_line)
    try:
        total = sum(len(f) for f in files)
        columns: dict[str, list[np.ndarray]] = {"file_index": [], "frame": []}
        start = time.perf_counter()
        with tqdm(total=total, desc="classify", unit="frame") as bar:
            runs = any(hasattr(f, "frame_ids") for f in files)
            for i, first, frames in _prefetched(files, batch_size):
                checker.check(str(files[i].path), frames, files[i].geometry)
                try:
                    outputs = predictor.predict(frames)
                except ValueError as err:  # frames the model cannot take (smaller than its crop): which file's
                    raise ValueError(f"{files[i].path}: {traced_message(str(err))}") from None
                columns["file_index"].append(np.full(len(frames), i, np.int32))
                columns["frame"].append(np.arange(first, first + len(frames), dtype=np.int64))
                if runs:
                    ids = files[i].frame_ids(first, first + len(frames)) if hasattr(files[i], "frame_ids") else {}
                    for key in RUN_IDS:
                        columns.setdefault(key, []).append(ids.get(key, np.full(len(frames), -1, np.int64)))
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
    reading = {"dataset": dataset or "", "source": source or "", "trains": format_trains(trains)}
    if view is not None:
        reading.update(geometry=str(view.geometry or ""), bin=view.bin, pixels=list(view.pixels))
    _write_results(out, results, names, predictor, reading)
    summary = summarize(results, names, seconds, predictor)
    summary["frame_check"] = checker.verdict()
    if view is not None and view.used:
        summary["geometry"] = {"files": dict(view.used), "bin": view.bin, "pixels": list(view.pixels)}
    summary["out"] = str(out)
    return summary, results


def summarize(results: dict, names: list[str], seconds: float, predictor: Predictor) -> dict:
    """Frames, frames per class and their fractions, single-hit fraction, throughput."""
    n = len(results["frame"])
    summary = {"files": len(names), "frames": n, "frames_per_second": round(n / max(seconds, 1e-9), 1)}
    summary["model"] = predictor.description
    if "classes" in results:
        labels = names_for(results["probabilities"].shape[-1])
        counts = np.bincount(results["classes"], minlength=len(labels))
        summary["frames_per_class"] = {labels[k]: int(c) for k, c in enumerate(counts)}
        summary["fraction_per_class"] = {labels[k]: round(float(c) / max(n, 1), 4) for k, c in enumerate(counts)}
        summary["single_hit_fraction"] = round(float(results["single_hit"].mean()) if n else 0.0, 4)
        summary["threshold"] = {"value": predictor.threshold, "from": predictor.threshold_source}
    return summary


def _named_columns(results: dict) -> dict[str, np.ndarray]:
    """The results as 1-D columns with names a person reads: ``p_<class>`` per class probability,
    ``class_name`` beside ``class``, ``q0``…``q3`` for quaternions."""
    out = {}
    for key, value in results.items():
        value = np.asarray(value)
        if key == "file_index":
            continue
        if key == "probabilities":
            labels = names_for(value.shape[-1])
            out.update({f"p_{label}": value[:, j] for j, label in enumerate(labels)})
        elif key == "classes":
            labels = names_for(results["probabilities"].shape[-1]) if "probabilities" in results else None
            out["class"] = value
            if labels is not None:
                out["class_name"] = np.array([labels[c] for c in value], dtype=object)
        elif key == "quaternion":
            out.update({f"q{j}": value[:, j] for j in range(value.shape[-1])})
        elif value.ndim == 2:
            out.update({f"{key}_{j}": value[:, j] for j in range(value.shape[-1])})
        else:
            out[key] = value.reshape(len(value))
    return out


def _write_results(out: Path, results: dict, names: list[str], predictor: Predictor, reading=None) -> None:
    partial = out.with_name(out.name + ".partial")
    if out.suffix == ".csv":
        columns = _named_columns(results)
        with open(partial, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["file", *columns])
            for row in range(len(results["frame"])):
                cells = [columns[k][row] for k in columns]
                cells = [c.item() if isinstance(c, np.generic) else c for c in cells]
                writer.writerow([names[results["file_index"][row]], *cells])
    elif out.suffix == ".cxi":
        _write_cxi(partial, results, names, predictor)
    else:
        with h5py.File(partial, "w") as f:
            f.create_dataset("files", data=np.array(names, dtype=h5py.string_dtype()))
            for key, value in results.items():
                f.create_dataset(key, data=value, compression="gzip" if value.size > 4096 else None)
            if "probabilities" in results:
                labels = names_for(results["probabilities"].shape[-1])
                f.create_dataset("class_names", data=np.array(labels, dtype=h5py.string_dtype()))
            f.attrs["model"] = predictor.description
            f.attrs["threshold"] = predictor.threshold
            f.attrs["threshold_from"] = predictor.threshold_source
            for key, value in (reading or {}).items():  # how the inputs were read, for spizoo emc
                f.attrs[key] = value
    os.replace(partial, out)


def _write_cxi(path: Path, results: dict, names: list[str], predictor: Predictor) -> None:
    """CXI 1.6 results: the detector's per-frame ``score`` (scores × frames, ``headings``: the class
    probabilities and the single-hit score) and ``tags`` (int8, ``headings``: ``hit``, ``single_hit``), and
    under ``/entry_1/result_1`` where each frame came from (file, frame, train, pulse, cell)."""
    n = len(results["frame"])
    scores, headings = [], []
    if "probabilities" in results:
        labels = names_for(results["probabilities"].shape[-1])
        scores += list(np.asarray(results["probabilities"], np.float32).T)
        headings += [f"p_{label}" for label in labels]
    for key in ("single_hit_score", "radius_nm"):
        if key in results:
            scores.append(np.asarray(results[key], np.float32).reshape(n))
            headings.append(key)
    if "quaternion" in results:
        scores += list(np.asarray(results["quaternion"], np.float32).T)
        headings += [f"q{j}" for j in range(4)]
    string = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["score"] = np.stack(scores)
        det["score"].attrs["headings"] = np.array(headings, dtype=string)
        if "classes" in results:
            det["tags"] = np.stack([np.asarray(results["classes"]) >= 1, results["single_hit"]]).astype(np.int8)
            det["tags"].attrs["headings"] = np.array(["hit", "single_hit"], dtype=string)
        result = f.create_group("entry_1/result_1")
        result["description"] = (
            f"spizoo classify with {predictor.description}, single-hit threshold {predictor.threshold:g}"
        )
        result["file"] = np.array([names[i] for i in results["file_index"]], dtype=string)
        for key in ("frame", *RUN_IDS):
            if key in results:
                result[key] = results[key]
