"""Every frame of experiment files through a :class:`~spizoo.serving.predictor.Predictor`, into a separate
results file (``spizoo classify``; seed 000 §2: know the dataset's quality while the beam is on).

Input files are only read; results go to HDF5 (``.h5``) or CSV (``.csv``), keyed by file and frame index,
written to ``.partial`` and renamed when complete.
"""

from __future__ import annotations

import csv
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from spizoo.core.labels import names_for
from spizoo.data.frames import FrameFile, ViewFinder, open_frames
from spizoo.serving.predictor import Predictor

RUN_IDS = ("train_id", "pulse_id", "cell_id")


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
) -> tuple[dict, dict]:
    """Classifies every frame of ``paths`` (CXI/HDF5 files, European XFEL run directories) into ``out``
    (``.h5`` or ``.csv``); returns (the summary, the results as columns). Module-stacked frames go through
    ``view`` (:class:`~spizoo.data.frames.ViewFinder`); runs give each frame's ``train_id``, ``pulse_id``
    and ``cell_id`` (-1 for frames of files), from detector ``source`` and the run's ``trains``.

    Raises:
        FileExistsError: if ``out`` exists.
        ValueError: for an unknown output type or unreadable input.
    """
    out = Path(out)
    if out.suffix not in (".h5", ".hdf5", ".csv"):
        raise ValueError(f"results file must end in .h5, .hdf5 or .csv, got {out.name}")
    if out.exists():
        raise FileExistsError(f"{out} exists; results are never overwritten, choose another name")
    files = []
    try:
        files.extend(open_frames(p, dataset, view=view, source=source, trains=trains) for p in paths)
    except BaseException:
        for f in files:
            f.close()
        raise
    try:
        total = sum(len(f) for f in files)
        columns: dict[str, list[np.ndarray]] = {"file_index": [], "frame": []}
        start = time.perf_counter()
        with tqdm(total=total, desc="classify", unit="frame") as bar:
            runs = any(hasattr(f, "frame_ids") for f in files)
            for i, first, frames in _prefetched(files, batch_size):
                outputs = predictor.predict(frames)
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
    _write_results(out, results, names, predictor)
    summary = summarize(results, names, seconds, predictor)
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
        with h5py.File(partial, "w") as f:
            f.create_dataset("files", data=np.array(names, dtype=h5py.string_dtype()))
            for key, value in results.items():
                f.create_dataset(key, data=value, compression="gzip" if value.size > 4096 else None)
            f.attrs["model"] = predictor.description
            f.attrs["threshold"] = predictor.threshold
            f.attrs["threshold_from"] = predictor.threshold_source
    os.replace(partial, out)
