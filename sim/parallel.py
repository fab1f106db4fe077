"""Patterns of either simulator computed by several processes, in order and with the bytes one process
gives (each pattern is a pure function of its config, seed and index: docs/PHYSICS.md, "Reproducibility")."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.pool
import multiprocessing.spawn
import os
import shlex
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

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
def _sigint_deferred() -> Iterator[None]:
    """A SIGINT inside is delivered on leaving, to the handler there was before: a KeyboardInterrupt inside a
    pool's constructor would leave the workers it had started without an owner to stop them."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def worker_pool(processes: int) -> Iterator[multiprocessing.pool.Pool]:
    """A spawn pool of ``processes`` workers, one BLAS thread each, that ignore SIGINT from their first
    instruction; terminated and waited for on leaving, so none lingers.

    A Ctrl-C at the terminal reaches the whole process group: the workers ignore it and this process stops
    them, instead of a traceback from each one while it imports. Each worker starts through a two-line shell
    script that ignores SIGINT and executes Python (an ignored signal stays ignored across exec, and Python
    keeps it so); this process never ignores it (one arriving while the pool starts is raised once it has).
    """
    ctx = multiprocessing.get_context("spawn")
    python = multiprocessing.spawn.get_executable()
    pool = None
    with tempfile.TemporaryDirectory(prefix="spizoo-workers-") as tmp:
        launcher = Path(tmp) / "python"
        launcher.write_text(f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(os.fsdecode(python))} \"$@\"\n")
        launcher.chmod(0o700)
        # In a temporary folder mounted noexec (some clusters' /tmp) the workers start as Python itself, and a
        # Ctrl-C while they import prints their tracebacks too; everything else is the same.
        executable = str(launcher) if os.access(launcher, os.X_OK) else python
        try:
            with _single_threaded_children(), _sigint_deferred():
                ctx.set_executable(executable)
                try:
                    pool = ctx.Pool(processes)
                finally:
                    ctx.set_executable(python)
            yield pool
        finally:  # the launcher is kept until here: a worker's shell reads it after this process started it
            if pool is not None:
                pool.terminate()
                pool.join()


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
    with worker_pool(min(workers, len(tasks))) as pool:
        for patterns in pool.imap(_simulate_chunk, tasks):
            yield from patterns
