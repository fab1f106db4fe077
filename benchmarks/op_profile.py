"""Where a TensorFlow step spends its time: milliseconds per op type, from the profiler's trace."""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2


def op_times(step: Callable[[], object], steps: int = 3) -> dict[str, float]:
    """Milliseconds per step of each op type (``Conv2DBackpropFilter``, ``Mul``, …) over ``steps`` calls of
    ``step``, summed over the threads that ran them (so the total may exceed the wall time), largest first."""
    step()  # traced and warm
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            step()
        tf.profiler.experimental.stop()
        traces = sorted(Path(logdir).rglob("*.xplane.pb"))
        space = xplane_pb2.XSpace()
        space.ParseFromString(traces[-1].read_bytes())
    seconds: collections.Counter = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads, which run the ops
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name and not name.startswith("$"):  # "scope/op_name:OpType"
                    kind = name.rsplit(":", 1)[1].removeprefix("_MklNative").removeprefix("_Mkl")
                    if kind != "Process":  # the executor's span around the ops, not an op
                        seconds[kind] += event.duration_ps / 1e12
    return {k: 1e3 * v / steps for k, v in seconds.most_common()}


def print_profile(title: str, times: dict[str, float], top: int = 12) -> None:
    """The ``top`` op types and their share of the op time."""
    total = sum(times.values()) or 1.0
    print(title)
    for kind, ms in list(times.items())[:top]:
        print(f"  {kind:<36}{ms:>9.1f} ms{ms / total:>8.1%}")
