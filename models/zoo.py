"""The model zoo: trained models that ship inside the package, each a run directory with a model card.

An entry is ``models/pretrained/NAME/``: the files of a ``spizoo train`` run directory that inference needs
(``best.keras``, ``config.yaml``, ``dataset_info.json``, ``evaluation/report.json`` for the operating point;
``training.json`` and ``history.csv`` for the record)
and ``card.yaml``, its model card (the data config and its hash, the training command, test metrics over
seeds, the ranges it was trained on, known limits). Everything that takes a run directory takes
``zoo:NAME`` (:func:`resolve`), from the command line or from Python (:func:`path`).

A model too large for the package ships as its card alone (``card.yaml`` and ``data_config.yaml``, no
``best.keras``): the card's ``not_shipped`` says why and its ``obtain`` how to train it, and
:func:`path` refuses it with both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

ZOO = Path(__file__).parent / "pretrained"
PREFIX = "zoo:"
CARD = "card.yaml"


@dataclass(frozen=True)
class Entry:
    """One zoo model: its name, directory and card."""

    name: str
    path: Path
    card: dict

    @property
    def shipped(self) -> bool:
        """Whether the weights ship (else the card alone does: its ``not_shipped`` says why)."""
        return "not_shipped" not in self.card


def entries() -> list[Entry]:
    """Every zoo model, by name."""
    return [entry(card.parent.name) for card in sorted(ZOO.glob(f"*/{CARD}"))]


def entry(name: str) -> Entry:
    """Zoo model ``name`` (``hits-resnet10`` or ``zoo:hits-resnet10``), shipped or card only.

    Raises:
        KeyError: for a name the zoo does not hold, listing the names it does.
    """
    name = name.removeprefix(PREFIX)
    card = ZOO / name / CARD
    if not name or "/" in name or not card.is_file():
        known = ", ".join(PREFIX + e.name + ("" if e.shipped else " (card only)") for e in entries()) or "none"
        raise KeyError(f"no zoo model {PREFIX}{name}; the zoo holds: {known} (spizoo zoo list)")
    return Entry(name, card.parent, yaml.safe_load(card.read_text()))


def path(name: str) -> Path:
    """The run directory of zoo model ``name`` (``hits-resnet10`` or ``zoo:hits-resnet10``).

    Raises:
        KeyError: for a name the zoo does not hold, listing the names it does; for a model that ships as its
            card alone, saying why and how to obtain it; for a shipped model whose weights are missing.
    """
    found = entry(name)
    if not found.shipped:
        card, commands = found.card, "; ".join(found.card["obtain"]["commands"])
        raise KeyError(
            f"{PREFIX}{found.name} ships as its model card only ({card['not_shipped']}); train it from a spizoo "
            f"checkout with: {commands} (spizoo zoo show {found.name}), and give that run directory instead"
        )
    if not (found.path / "best.keras").is_file():
        raise KeyError(f"{PREFIX}{found.name}: {found.path / 'best.keras'} is missing (reinstall spizoo)")
    return found.path


def resolve(model: str) -> str:
    """``zoo:NAME`` → its run directory; any other model reference (a path, a URL) as given."""
    return str(path(model)) if model.startswith(PREFIX) else model


def is_zoo(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is a zoo model's directory (read-only: nothing is written into it)."""
    try:
        return Path(run_dir).resolve().parent == ZOO.resolve()
    except OSError:
        return False


def config_hash(config_file: str | Path) -> str:
    """SHA-256 of a config file's bytes: the card's ``data.config_sha256``."""
    return hashlib.sha256(Path(config_file).read_bytes()).hexdigest()
