"""``spizoo simulate``: patterns to a CXI file plus a PNG contact sheet a person can look at."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spizoo.config import dump_config
from spizoo.data.cxi import CXIWriter
from spizoo.experiment import Config
from spizoo.plots import contact_sheet
from spizoo.sim import spi

CONTACT_SHEET_TILES = 64


def _model_chunks(cfg: spi.SpiConfig, n: int) -> list[tuple[int, int, int]]:
    """(model_index, first_shot, stop_shot) covering patterns 0 … n-1."""
    per = cfg.patterns_per_model
    return [(m, 0, min(per, n - m * per)) for m in range(-(-n // per))]


def _simulate_chunk(args: tuple[Config, int, int, int]) -> list[spi.Pattern]:
    config, model_index, first, stop = args
    return spi.simulate_model(config.sim, config.seed, model_index, range(first, stop))


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


def iterate_patterns(config: Config, n: int, *, workers: int = 1) -> Iterator[spi.Pattern]:
    """Patterns 0 … n-1 in order, one particle model per task over ``workers`` processes."""
    tasks = [(config, *chunk) for chunk in _model_chunks(config.sim, n)]
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            yield from _simulate_chunk(task)
        return
    with _single_threaded_children():
        pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
    with pool:
        for patterns in pool.imap(_simulate_chunk, tasks):
            yield from patterns


def run(config: Config, n: int, out: str | Path, *, workers: int | None = None, overwrite: bool = False) -> dict:
    """Simulates ``n`` patterns into ``out/patterns.cxi``, ``out/contact_sheet.png`` and ``out/config.yaml``.

    Returns:
        Paths written and the count of patterns per class.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    cxi_path = out / "patterns.cxi"
    counts = np.zeros(spi.NUM_CLASSES, dtype=int)
    tiles, titles = [], []
    max_particles = config.sim.cluster.max_particles
    frame_shape = tuple(config.sim.detector.pixels)
    stride = max(1, n // CONTACT_SHEET_TILES)  # tiles spread over the run, so that several models show
    with CXIWriter(cxi_path, frame_shape, overwrite=overwrite) as writer:
        patterns = iterate_patterns(config, n, workers=workers)
        for i, p in enumerate(tqdm(patterns, total=n, desc="simulate", unit="pattern")):
            det = p.model.detector
            writer.append(
                p.image,
                mask=p.mask,
                distance_m=det.distance_m,
                pixel_size_m=det.pixel_size_um * 1e-6,
                center_px=det.center,
                photon_energy_eV=p.model.photon_energy_eV,
                extras=p.parameters(max_particles),
            )
            counts[p.label] += 1
            if i % stride == 0 and len(tiles) < CONTACT_SHEET_TILES:
                tiles.append(p.image)
                titles.append(f"{spi.CLASS_NAMES[p.label]} · {p.model.shape}")
    sheet = contact_sheet(tiles, titles, out / "contact_sheet.png")
    dump_config(config, out / "config.yaml")
    return {
        "patterns": str(cxi_path),
        "contact_sheet": str(sheet),
        "config": str(out / "config.yaml"),
        "classes": {spi.CLASS_NAMES[i]: int(c) for i, c in enumerate(counts)},
    }
