"""Server-side batching: concurrent requests to one signature run as one batch (TF Serving's
``--enable_batching`` with a ``--batching_parameters_file``)."""

from __future__ import annotations

import dataclasses
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from spizoo.serving.errors import ServingError


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's ``BatchingParameters`` (the fields spizoo uses).

    Attributes:
        max_batch_size: rows in one batch; a larger request runs alone.
        batch_timeout_micros: how long the first request of a batch waits for others.
        num_batch_threads: batches run at once.
        max_enqueued_batches: queued requests beyond ``max_batch_size`` × this are refused (RESOURCE_EXHAUSTED).
    """

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < (0 if f.name == "batch_timeout_micros" else 1):
                raise ValueError(f"batching parameter {f.name} must be positive, got {getattr(self, f.name)}")


def read_batching_parameters(path: str | Path) -> BatchingParameters:
    """Parses a TF Serving batching parameters file (text proto, ``name { value: N }`` per field)."""
    text = re.sub(r"#[^\n]*", "", Path(path).read_text())
    values = {}
    for name, value in re.findall(r"(\w+)\s*\{\s*value\s*:\s*(\w+)\s*\}", text):
        known = [f.name for f in dataclasses.fields(BatchingParameters)]
        if name not in known and name not in ("pad_variable_length_inputs", "allowed_batch_sizes"):
            raise ValueError(f"{path}: unknown batching parameter {name!r}; known: {', '.join(known)}")
        if name in known:
            values[name] = int(value)
    leftover = re.sub(r"(\w+)\s*\{\s*value\s*:\s*(\w+)\s*\}", "", text).strip()
    if leftover:
        raise ValueError(
            f"{path}: cannot parse {leftover[:60]!r} (expected lines like 'max_batch_size {{ value: 32 }}')"
        )
    return BatchingParameters(**values)


@dataclasses.dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: Future


class Batcher:
    """Runs ``fn(inputs) -> outputs`` (dicts of arrays with a leading batch axis) on merged requests."""

    def __init__(self, fn: Callable[[dict], dict], params: BatchingParameters):
        self.fn = fn
        self.params = params
        self.queue: queue.Queue[_Task | None] = queue.Queue(maxsize=params.max_batch_size * params.max_enqueued_batches)
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(params.num_batch_threads)]
        self._take = threading.Lock()  # one thread gathers a batch at a time
        self._held: _Task | None = None  # a request taken from the queue that did not fit the last batch
        for t in self.threads:
            t.start()

    def submit(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = {len(v) for v in inputs.values()}
        if len(rows) != 1 or next(iter(rows)) > self.params.max_batch_size:
            return self.fn(inputs)  # unequal batch dimensions or a big request: run alone
        if any(v.dtype == object for v in inputs.values()):
            return self.fn(inputs)  # serialized examples: one request's bad example must not shift another's
        task = _Task(inputs, rows.pop(), Future())
        try:
            self.queue.put_nowait(task)
        except queue.Full:
            raise ServingError("RESOURCE_EXHAUSTED", "the batching queue is full; retry later") from None
        return task.future.result()

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)

    def _gather(self) -> list[_Task] | None:
        """The next batch: the first waiting request, then others until the batch is full or the timeout."""
        with self._take:
            first, self._held = self._held or self.queue.get(), None
            if first is None:
                return None
            batch, rows = [first], first.rows
            end = time.monotonic() + self.params.batch_timeout_micros / 1e6
            while rows < self.params.max_batch_size:
                try:
                    task = self.queue.get(timeout=max(end - time.monotonic(), 1e-6))
                except queue.Empty:
                    break
                if task is None:  # closing: leave the sentinel for this thread's next call
                    self._held = None
                    self.queue.put(None)
                    break
                if rows + task.rows > self.params.max_batch_size or not _compatible(first, task):
                    self._held = task  # opens the next batch
                    break
                batch.append(task)
                rows += task.rows
            return batch

    def _loop(self) -> None:
        while (batch := self._gather()) is not None:
            try:
                merged = {k: np.concatenate([t.inputs[k] for t in batch]) for k in batch[0].inputs}
                outputs = self.fn(merged)
                start = 0
                for t in batch:
                    t.future.set_result({k: v[start : start + t.rows] for k, v in outputs.items()})
                    start += t.rows
            except BaseException as err:  # every waiting request gets the error, the thread lives on
                for t in batch:
                    if not t.future.done():
                        t.future.set_exception(err)


def _compatible(a: _Task, b: _Task) -> bool:
    return a.inputs.keys() == b.inputs.keys() and all(
        a.inputs[k].shape[1:] == b.inputs[k].shape[1:] and a.inputs[k].dtype == b.inputs[k].dtype for k in a.inputs
    )
