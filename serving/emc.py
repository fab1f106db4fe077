"""The hand-off to 3-D reconstruction: the frames ``spizoo classify`` found to be single hits, at full
detector resolution, as Dragonfly EMC input (:mod:`spizoo.data.emc`).

From a classify results file (``.h5``: its files, frame indices, single-hit scores and how it read them),
the frames scoring at least the threshold (default: the one classify used, e.g. the run's operating point)
are read again as stored — module-stacked frames unbinned, masked pixels 0 — and written to
``OUT/photons.h5``; ``OUT/detector.h5`` is computed from their detector geometry (a module-stacked file's
``.geom``, or a flat CXI file's distance, pixel size and beam position) and ``OUT/frames.csv`` says where
each EMC frame came from (file, frame, train, pulse, cell, score) and, with a regressor, its orientation
quaternion and size estimates.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import h5py
import numpy as np

from spizoo.data import emc
from spizoo.data.euxfel import parse_trains
from spizoo.data.frames import FrameFile, ViewFinder, open_frames
from spizoo.serving.classify import RUN_IDS, warn_line
from spizoo.serving.predictor import Predictor
from spizoo.sim.detector import Detector
from spizoo.sim.geometry import Geometry


def _flat_geometry(frames: FrameFile) -> Geometry:
    """A flat CXI file's detector from its distance, pixel size and beam position (``corner_position``)."""
    g = frames.geometry(0)
    if g.distance_m is None or g.pixel_size_m is None:
        raise ValueError(f"{frames.path}: no detector distance or pixel size to compute an EMC detector from")
    corner = frames.file.get("entry_1/instrument_1/detector_1/corner_position")
    ny, nx = frames.frame_shape
    center = None
    if isinstance(corner, h5py.Dataset):
        x0, y0 = np.asarray(corner[()]).reshape(-1, 3)[0][:2]
        center = (-y0 / g.pixel_size_m - 0.5, -x0 / g.pixel_size_m - 0.5)
    det = Detector(shape=(ny, nx), pixel_size_um=g.pixel_size_m * 1e6, distance_m=g.distance_m, center_px=center)
    return Geometry.from_detector(det)


def export_hits(
    results: str | Path,
    out: str | Path,
    *,
    views: ViewFinder,
    threshold: float | None = None,
    regressor: Predictor | None = None,
    regressor_views: ViewFinder | None = None,
    ewald_rad: float | None = None,
) -> dict:
    """Writes ``out/photons.h5``, ``out/detector.h5`` and ``out/frames.csv`` for the single hits of
    ``results``; returns a summary. ``views`` gives module-stacked files their geometry (as classify did).

    Raises:
        FileExistsError: if ``out`` holds EMC files already.
        ValueError: for results that are not a classifier's, no single hits, or inputs of different
            detectors (one EMC detector file describes every frame).
    """
    out = Path(out)
    for name in ("photons.h5", "detector.h5", "frames.csv"):
        if (out / name).exists():
            raise FileExistsError(f"{out / name} exists; EMC files are never overwritten, choose another --out")
    with h5py.File(results, "r") as f:
        if "single_hit_score" not in f:
            raise ValueError(f"{results}: not the results of a hit classifier (no single_hit_score)")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["files"][()]]
        columns = {k: f[k][()] for k in ("file_index", "frame", "single_hit_score", *RUN_IDS) if k in f}
        attrs = dict(f.attrs)
    if views.geometry is None and attrs.get("geometry"):  # the geometry classify was given
        views = ViewFinder(attrs["geometry"], pixels=views.pixels, bin=views.bin, default=views.default)
    threshold = float(attrs.get("threshold", 0.5) if threshold is None else threshold)
    chosen = np.flatnonzero(columns["single_hit_score"] >= threshold)
    if not len(chosen):
        best = float(columns["single_hit_score"].max()) if len(columns["single_hit_score"]) else float("nan")
        raise ValueError(
            f"{results}: no frame scores >= {threshold:g} as a single hit (the highest score is {best:.3g}); "
            "nothing to export (--threshold sets another)"
        )
    out.mkdir(parents=True, exist_ok=True)
    layout, detector_mask, rows, photons = None, None, [], []
    writer = None
    try:
        for file_index in np.unique(columns["file_index"][chosen]):
            picked = chosen[columns["file_index"][chosen] == file_index]
            path = Path(names[file_index])
            frames = open_frames(
                path, attrs.get("dataset") or None, view=views, source=attrs.get("source") or None,
                trains=parse_trains(attrs.get("trains", ":")),
            )  # fmt: skip
            try:
                here = frames.view.geometry if frames.view is not None else _flat_geometry(frames)
                if layout is None:
                    layout = here
                    mask = frames.frame_mask() if hasattr(frames, "frame_mask") else None
                    base = layout.static_mask
                    detector_mask = base if mask is None else base | mask.reshape(base.shape)
                    writer = emc.PhotonsWriter(out / "photons.h5", int(np.prod(layout.shape)))
                elif here.shape != layout.shape or not np.allclose(here.positions_m, layout.positions_m):
                    raise ValueError(f"{path}: another detector than {names[columns['file_index'][chosen[0]]]}")
                estimates = _estimates(regressor, regressor_views, path, attrs, columns["frame"][picked])
                for k, i in enumerate(picked):
                    frame = int(columns["frame"][i])
                    counts = frames.read(frame, frame + 1, stored=True)[0]
                    writer.append(counts)
                    photons.append(float(np.rint(counts).clip(min=0).sum()))
                    row = {"emc_frame": len(rows), "file": str(path), "frame": frame}
                    row.update({key: int(columns[key][i]) for key in RUN_IDS if key in columns})
                    row["single_hit_score"] = round(float(columns["single_hit_score"][i]), 6)
                    row.update({key: value[k] for key, value in estimates.items()})
                    rows.append(row)
            finally:
                frames.close()
        emc.write_detector(out / "detector.h5", layout, mask=detector_mask, ewald_rad=ewald_rad)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.partial.unlink(missing_ok=True)
        raise
    _write_csv(out / "frames.csv", rows)
    return {
        "out": str(out),
        "frames": len(rows),
        "threshold": threshold,
        "detector": layout.name,
        "num_pix": int(np.prod(layout.shape)),
        "photons_per_frame": round(float(np.mean(photons)), 1),
    }


def _estimates(regressor, views, path: Path, attrs: dict, frames: np.ndarray) -> dict[str, list]:
    """The regressor's orientation quaternion and radius for ``frames`` of ``path`` (none without one)."""
    if regressor is None:
        return {}
    source = open_frames(
        path, attrs.get("dataset") or None, view=views, source=attrs.get("source") or None,
        trains=parse_trains(attrs.get("trains", ":")),
    )  # fmt: skip
    try:
        images = np.concatenate([source.read(int(i), int(i) + 1) for i in frames])
        regressor.frame_checker(warn=warn_line).check(str(path), images, source.geometry)
    finally:
        source.close()
    outputs = regressor.predict(images)
    if "quaternion" not in outputs:
        raise ValueError(f"--regressor must give orientations and sizes; {regressor.description} gives "
                         f"{sorted(outputs)}")  # fmt: skip
    q = np.asarray(outputs["quaternion"]).reshape(len(images), 4)
    estimates = {f"q{j}": [round(float(v), 6) for v in q[:, j]] for j in range(4)}
    estimates["radius_nm"] = [round(float(v), 3) for v in np.asarray(outputs["radius_nm"]).reshape(-1)]
    return estimates


def _write_csv(path: Path, rows: list[dict]) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
