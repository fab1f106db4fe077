"""Patterns of either simulator computed by several processes, in order and with the bytes one process
gives (each pattern is a pure function of its config, seed and index: docs/PHYSICS.md, "Reproducibility")."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator

from spizoo.sim import simulate
from spizoo.sim.spi import SpiConfig

MSFT_CHUNK = 16  # MSFT patterns are independent; a task holds a few to amortise process overhead
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _chunks(cfg, n: int) -> list[tuple[int, int]]:
    """[start, stop) index ranges, one per task: one particle model each for SPI."""
    size = cfg.patterns_per_model if isinstance(cfg, SpiConfig) else MSFT_CHUNK
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _simulate_chunk(args: tuple) -> list:
    cfg, seed, start, stop = args
    return list(simulate(cfg, seed, stop - start, start=start))


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


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Processes started inside ignore SIGINT from their first instruction (an ignored signal stays ignored
    across exec, and Python keeps it so): a Ctrl-C at the terminal, which reaches the whole process group,
    interrupts this process alone, which then stops them, instead of a traceback from each one while it imports.
    This process is deaf to Ctrl-C only while it starts them (milliseconds)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def iterate_patterns(cfg, seed: int, n: int, *, workers: int = 1) -> Iterator:
    """Patterns 0 … n-1 of simulator config ``cfg`` under ``seed``, in order, computed by ``workers`` processes.

    The worker processes ignore Ctrl-C; when the caller is interrupted (or stops iterating: close the generator,
    e.g. with :func:`contextlib.closing`) they are terminated and waited for, so none lingers.
    """
    tasks = [(cfg, seed, *chunk) for chunk in _chunks(cfg, n)]
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            yield from _simulate_chunk(task)
        return
    pool = None
    try:
        with _single_threaded_children(), _children_ignore_sigint():
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)))
        for patterns in pool.imap(_simulate_chunk, tasks):
            yield from patterns
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
