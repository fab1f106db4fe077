"""One line for a TensorFlow runtime error (a corrupt shard, a frame of the wrong size in a served graph):
its message, without the graph traceback and node names around it."""

from __future__ import annotations

_NOISE = ("[[", "{{", "Detected at node", "File ", "Graph execution", "Op:", "Traceback")


def tensorflow_message(err: BaseException) -> str:
    """The last line of ``err``'s message that says what went wrong (``type(err).__name__`` if none does)."""
    lines = [ln.strip() for ln in getattr(err, "message", str(err)).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    return lines[-1] if lines else type(err).__name__
