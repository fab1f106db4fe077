"""One line for a TensorFlow runtime error (a corrupt shard, a frame of the wrong size in a served graph),
or for a Python error raised while TensorFlow traced a function: its message, without the graph traceback
and node names around it."""

from __future__ import annotations

import re

_NOISE = ("[[", "{{", "Detected at node", "File ", "Graph execution", "Op:", "Traceback")


def tensorflow_message(err: BaseException) -> str:
    """The last line of ``err``'s message that says what went wrong (``type(err).__name__`` if none does)."""
    lines = [ln.strip() for ln in getattr(err, "message", str(err)).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    return lines[-1] if lines else type(err).__name__


def traced_message(text: str) -> str:
    """The message of a Python error that TensorFlow re-raised from a traced function ("in user code:",
    the traced lines, then ``ValueError: message``), else ``text`` as it is."""
    if not text.lstrip().startswith("in user code:"):
        return text
    last = [ln.strip() for ln in text.splitlines() if ln.strip()][-1]
    return re.sub(r"^\w+(Error|Exception): ", "", last)
