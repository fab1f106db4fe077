"""A seeded mutation fuzzer over valid samples (no fuzzing library: numpy and ``random`` only).

``Mutator(seed)`` mutates bytes (bit flips, interesting bytes and integers, truncation, insertion, deletion,
duplication, swaps) and JSON-like structures (pathological nesting, huge, NaN, infinite and negative
numbers, wrong types, empty and duplicate keys, wrong shapes). The same seed gives the same mutations, so a
failing case is replayed from its seed and index: ``Mutator(seed_for(base, index))``.
"""

from __future__ import annotations

import json
import math
import random
import struct

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x22, 0x5B, 0x7B, 0x2D)
INTERESTING_INTS = (0, 1, -1, 2, 255, 256, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, -(2**63))
HOSTILE_NUMBERS = (
    0,
    -1,
    -(10**9),
    10**9,
    2**31,
    2**63,
    2**64,
    10**30,
    -(10**30),
    1e308,
    -1e308,
    3.4e38,
    5e-324,
    -0.0,
    float("nan"),
    float("inf"),
    float("-inf"),
)


def seed_for(base: int, index: int) -> int:
    """The seed of case ``index`` of a run seeded ``base`` (replay one case without the ones before it)."""
    return base * 1_000_003 + index


class Dup(list):
    """A JSON object written with the (key, value) pairs as given: repeated keys stay repeated."""


class Raw(str):
    """Text written into JSON as it is (e.g. ``[[[[…]]]]`` nested deeper than any parser's recursion)."""


def to_json(value) -> bytes:
    """JSON text of ``value`` that may hold NaN, infinities, huge integers, :class:`Dup` and :class:`Raw`."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Raw):
            out.append(str(item))
        elif isinstance(item, Dup | dict):
            pairs = list(item) if isinstance(item, Dup) else list(item.items())
            parts: list = [Raw("{")]
            for i, (k, v) in enumerate(pairs):
                parts += [Raw("," if i else ""), Raw(json.dumps(str(k)) + ":"), v]
            parts.append(Raw("}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list | tuple):
            parts = [Raw("[")]
            for i, v in enumerate(item):
                parts += [Raw("," if i else ""), v]
            parts.append(Raw("]"))
            stack.extend(reversed(parts))
        elif isinstance(item, float) and not math.isfinite(item):
            out.append("NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity"))
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 10**4000:
            out.append(str(item)[:4000])  # Python's own str() refuses more digits
        else:
            out.append(json.dumps(item))
    return "".join(out).encode("utf-8", "surrogatepass")


class Mutator:
    """Seeded mutations; every method draws from this instance's ``random.Random``."""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)

    # -- bytes ---------------------------------------------------------------------------------------------
    def bytes(self, data: bytes, max_ops: int = 4) -> bytes:
        """``data`` after 1 … ``max_ops`` random byte-level mutations."""
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, max_ops)):
            buf = self._byte_op(buf)
        return bytes(buf)

    def _byte_op(self, buf: bytearray) -> bytearray:
        rng, n = self.rng, len(buf)
        op = rng.randrange(10)
        if n == 0:
            return bytearray(rng.randbytes(rng.randint(1, 16)))
        i = rng.randrange(n)
        if op == 0:  # flip one bit
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # an interesting byte
            buf[i] = rng.choice(INTERESTING_BYTES)
        elif op == 2:  # an interesting integer, 1, 2, 4 or 8 bytes little endian
            size = rng.choice((1, 2, 4, 8))
            value = rng.choice(INTERESTING_INTS) % (1 << (8 * size))
            buf[i : i + size] = value.to_bytes(size, "little")
        elif op == 3:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 4:  # insert random bytes
            buf[i:i] = rng.randbytes(rng.randint(1, 32))
        elif op == 5:  # delete a range
            del buf[i : i + rng.randint(1, max(1, n // 8))]
        elif op == 6:  # duplicate a range
            j = min(n, i + rng.randint(1, max(1, n // 4)))
            buf[j:j] = buf[i:j]
        elif op == 7:  # swap two ranges
            size = rng.randint(1, max(1, n // 8))
            j = rng.randrange(n)
            a, b = bytes(buf[i : i + size]), bytes(buf[j : j + size])
            if len(a) == len(b) and abs(i - j) >= size:
                buf[i : i + size], buf[j : j + size] = b, a
        elif op == 8:  # zero or fill a range
            size = rng.randint(1, max(1, n // 16))
            buf[i : i + size] = bytes([rng.choice((0, 0xFF))]) * len(buf[i : i + size])
        else:  # random bytes over a range
            size = rng.randint(1, 8)
            buf[i : i + size] = rng.randbytes(len(buf[i : i + size]))
        return buf

    # -- JSON-like structures ------------------------------------------------------------------------------
    def value(self, value, max_ops: int = 3):
        """A mutated deep copy of a JSON-like ``value`` (dicts, lists, numbers, strings, bools, None)."""
        value = json.loads(json.dumps(value))
        for _ in range(self.rng.randint(1, max_ops)):
            value = self._mutate_at(value, depth=0)
        return value

    def _mutate_at(self, node, depth: int):
        """Mutates ``node`` itself, or (more often) a random descendant, and returns the result."""
        rng = self.rng
        children = _children(node)
        if children and rng.random() < 0.8 - 0.02 * depth:
            key = rng.choice(children)
            if isinstance(node, Dup):
                k, v = node[key]
                node[key] = (k, self._mutate_at(v, depth + 1))
            else:
                node[key] = self._mutate_at(node[key], depth + 1)
            return node
        return self.hostile(node)

    def hostile(self, node):
        """A hostile replacement for ``node``: another type, a pathological value or a changed structure."""
        rng = self.rng
        kind = rng.randrange(9)
        if kind == 0:
            return rng.choice(HOSTILE_NUMBERS)
        if kind == 1:
            return rng.choice(["", "x", "\u00e9", "\ud800", "\x00", "../../etc/passwd", "1" * 5000, True, False, None])
        if kind == 2:
            return rng.choice([{}, [], [[]], {"": 1}, {"b64": "%%%"}, {"b64": "AAAA"}, {"b64": 3}, [None], [{}]])
        if kind == 3:  # deep nesting, past any recursion limit
            depth = rng.choice((33, 40, 65, 1000, 100_000))
            return Raw("[" * depth + "0" + "]" * depth) if rng.random() < 0.5 else _nest(node, min(depth, 200))
        if kind == 4 and isinstance(node, list) and node:  # wrong shape
            op = rng.randrange(5)
            if op == 0:
                return node[: rng.randrange(len(node))]
            if op == 1:
                return [*node, node[rng.randrange(len(node))]]
            if op == 2:
                return node[0]
            if op == 3:
                return [node]
            i = rng.randrange(len(node))
            node[i] = [node[i], node[i]] if rng.random() < 0.5 else []
            return node
        if kind == 5 and isinstance(node, dict | Dup):  # keys: empty, duplicated, deleted, unknown
            pairs = list(node) if isinstance(node, Dup) else list(node.items())
            op = rng.randrange(4)
            if op == 0 and pairs:
                pairs.pop(rng.randrange(len(pairs)))
            elif op == 1 and pairs:
                k, v = pairs[rng.randrange(len(pairs))]
                pairs.append((k, self.hostile(v) if rng.random() < 0.5 else v))
                return Dup(pairs)
            elif op == 2:
                pairs.append(("", self.hostile(None)))
            else:
                pairs.append((rng.choice(["extra", "\x00", "instances", "inputs", "signature_name"]), 1))
            return dict(pairs)
        if kind == 6 and isinstance(node, int | float) and not isinstance(node, bool):
            options = [-node, node * 10.0 ** rng.randint(1, 40), node + 0.5, str(node), [node]]
            return rng.choice(options + ([int(node)] if math.isfinite(node) else []))
        if kind == 7 and isinstance(node, str):
            return rng.choice([node * rng.randint(2, 50), node[::-1], node[: len(node) // 2], node + "\u0000", 0])
        return rng.choice(HOSTILE_NUMBERS + ("", None, True))

    # -- small helpers -------------------------------------------------------------------------------------
    def choice(self, seq):
        return self.rng.choice(seq)

    def pack(self, fmt: str, *values) -> bytes:
        return struct.pack(fmt, *values)


def _children(node) -> list:
    if isinstance(node, Dup):
        return list(range(len(node)))
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def _nest(node, depth: int):
    for _ in range(depth):
        node = [node]
    return node
