"""``spizoo simulate``: patterns to a CXI file plus a PNG contact sheet a person can look at."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spizoo import sim
from spizoo.config import dump_config
from spizoo.data.cxi import CXIWriter
from spizoo.experiment import Config
from spizoo.plots import contact_sheet
from spizoo.sim import spi

CONTACT_SHEET_TILES = 64
MSFT_CHUNK = 16  # MSFT patterns are independent; a task holds a few to amortise process overhead


def _chunks(config: Config, n: int) -> list[tuple[int, int]]:
    """[start, stop) index ranges, one per task: one particle model each for SPI."""
    size = config.sim.patterns_per_model if isinstance(config.sim, spi.SpiConfig) else MSFT_CHUNK
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _simulate_chunk(args: tuple[Config, int, int]) -> list:
    config, start, stop = args
    return list(sim.simulate(config.sim, config.seed, stop - start, start=start))


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Processes started inside inherit one BLAS thread each: one process per core, no oversubscription."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def iterate_patterns(config: Config, n: int, *, workers: int = 1) -> Iterator:
    """Patterns 0 … n-1 of ``config`` in order, computed by ``workers`` processes."""
    tasks = [(config, *chunk) for chunk in _chunks(config, n)]
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            yield from _simulate_chunk(task)
        return
    with _single_threaded_children():
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
    with pool:
        for patterns in pool.imap(_simulate_chunk, tasks):
            yield from patterns


def _record(config: Config, p) -> dict:
    """What the CXI writer stores of a pattern, and its contact-sheet title."""
    if isinstance(p, spi.Pattern):
        det = p.model.detector
        return {
            "mask": p.mask,
            "detector": det,
            "photon_energy_eV": p.model.photon_energy_eV,
            "extras": p.parameters(config.sim.cluster.max_particles),
            "title": f"{spi.CLASS_NAMES[p.label]} · {p.model.shape}",
            "label": p.label,
        }
    return {
        "mask": np.zeros(p.image.shape, dtype=np.uint32),
        "detector": p.detector,
        "photon_energy_eV": config.sim.photon_energy_eV,
        "extras": {**p.parameters(), "target": p.target(config.sim.circumradius_nm).astype(np.float32)},
        "title": f"R = {p.radius_nm:.0f} nm",
        "label": None,
    }


def run(config: Config, n: int, out: str | Path, *, workers: int | None = None, overwrite: bool = False) -> dict:
    """Simulates ``n`` patterns into ``out/patterns.cxi``, ``out/contact_sheet.png`` and ``out/config.yaml``.

    Returns:
        Paths written and, for hit classes, the count of patterns per class.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    cxi_path = out / "patterns.cxi"
    counts = np.zeros(spi.NUM_CLASSES, dtype=int)
    tiles, titles = [], []
    stride = max(1, n // CONTACT_SHEET_TILES)  # tiles spread over the run, so that several models show
    with CXIWriter(cxi_path, tuple(config.sim.detector.pixels), overwrite=overwrite) as writer:
        patterns = iterate_patterns(config, n, workers=workers)
        for i, p in enumerate(tqdm(patterns, total=n, desc="simulate", unit="pattern")):
            rec = _record(config, p)
            det = rec["detector"]
            writer.append(
                p.image,
                mask=rec["mask"],
                distance_m=det.distance_m,
                pixel_size_m=det.pixel_size_um * 1e-6,
                center_px=det.center,
                photon_energy_eV=rec["photon_energy_eV"],
                extras=rec["extras"],
            )
            if rec["label"] is not None:
                counts[rec["label"]] += 1
            if i % stride == 0 and len(tiles) < CONTACT_SHEET_TILES:
                tiles.append(p.image)
                titles.append(rec["title"])
    is_spi = isinstance(config.sim, spi.SpiConfig)
    sheet = contact_sheet(tiles, titles, out / "contact_sheet.png", log=is_spi)
    dump_config(config, out / "config.yaml")
    summary = {"patterns": str(cxi_path), "contact_sheet": str(sheet), "config": str(out / "config.yaml")}
    if is_spi:
        summary["classes"] = {spi.CLASS_NAMES[i]: int(c) for i, c in enumerate(counts)}
    return summary


def augment_sheet(config: Config, out: str | Path) -> Path:
    """PNG of pattern 0 under each filter of the config's augmentation policy once, side by side."""
    first = next(iterate_patterns(config, 1))
    policy = dataclasses.replace(config.augment, copies=len(config.augment.filters), pick="cycle")
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(0, 0xA06)))
    filtered = policy.apply(first.image, rng)
    images = [first.image] + [img for _, img in filtered]
    names = ["original"] + [name for name, _ in filtered]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return contact_sheet(images, names, out / "augment.png", columns=6, log=isinstance(config.sim, spi.SpiConfig))
