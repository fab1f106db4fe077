"""``spizoo ingest``: frames of experiment CXI/HDF5 files → the TFRecord schema of simulated data.

The same Beam pipeline as ``spizoo generate`` (:func:`spizoo.beam_pipelines.generate.run_source`: chunk
files, shards, training statistics, ``dataset_info.json``, resume after a crash, byte-identical reruns),
fed by :class:`IngestSource`: units of ``unit_size`` consecutive frames of one file, assigned to a split
by a hash of (seed, file name, unit), so neighbouring frames stay in one split. Labels come from a CSV
with columns ``file`` (a name or path; matched by file name), ``frame`` and ``label`` (0–4+ particles,
e.g. the diffusion-map labels seed 000 used); with a labels file only labelled frames are kept, without
one every frame is kept with label -1 (for inference or self-supervised use). The result trains or
fine-tunes any model with ``spizoo train`` exactly as simulated data does.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.beam_pipelines.generate import MIN_SPLIT_UNITS, SUGGESTED_SPLIT_UNITS, run_source
from spizoo.core.config import to_dict
from spizoo.data import schema
from spizoo.data.euxfel import is_run_directory, parse_trains
from spizoo.data.frames import ViewFinder, open_frames


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """What to ingest (also hashed into the example keys; a changed input file restarts a resumed run).

    Attributes:
        files: absolute paths of the input files, in order.
        fingerprints: (size, mtime in ns) of each file when the run began.
        labels: a CSV of ``file,frame,label``, or empty for unlabelled frames.
        image_dataset: the stack inside the files (empty: the CXI locations).
        unit_size: consecutive frames per unit of work and of split assignment.
        geometry: CrystFEL ``.geom`` file of module-stacked frames (empty: the ``.geom`` beside each file).
        geometry_fingerprint: (size, mtime in ns) of ``geometry`` when the run began.
        bin, pixels: the view of module-stacked frames (:class:`~spizoo.sim.geometry.View`).
        source, trains: the detector and the trains (``START:STOP`` by index) of European XFEL runs.
    """

    seed: int = 0
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    files: tuple[str, ...] = ()
    fingerprints: tuple[tuple[int, int], ...] = ()
    labels: str = ""
    image_dataset: str = ""
    unit_size: int = 256
    geometry: str = ""
    geometry_fingerprint: tuple[int, int] = (0, 0)
    bin: int = 1
    pixels: tuple[int, int] = (128, 128)
    source: str = ""
    trains: str = ":"

    def __post_init__(self):
        if not self.files:
            raise ValueError("no input files")
        if self.unit_size < 1:
            raise ValueError(f"unit_size must be >= 1, got {self.unit_size}")
        parse_trains(self.trains)  # a ValueError naming it
        if self.bin < 1 or min(self.pixels) < 1:
            raise ValueError(f"bin and pixels must be positive, got bin={self.bin}, pixels={list(self.pixels)}")

    def open(self, path: str):
        """The frames of input ``path`` (a file or a run); module-stacked frames through their view (the
        geometries read once per process)."""
        if "_views" not in self.__dict__:
            self.__dict__["_views"] = ViewFinder(self.geometry or None, pixels=self.pixels, bin=self.bin)
        trains, source = parse_trains(self.trains), self.source or None
        return open_frames(path, self.image_dataset or None, view=self._views, source=source, trains=trains)

    def __getstate__(self):  # Beam pickles the config to its workers: not the geometries read so far
        return {k: v for k, v in self.__dict__.items() if k != "_views"}

    def __setstate__(self, state):
        self.__dict__.update(state)


def make_config(
    files: list[str], *, labels: str | None, dataset: DatasetConfig, seed: int = 0, **kwargs
) -> IngestConfig:
    """An :class:`IngestConfig` for ``files`` (checked to exist) with their fingerprints."""
    paths = [Path(f).resolve() for f in files]
    for p in paths:
        if p.is_dir() and not is_run_directory(p):
            raise IsADirectoryError(f"{p} is a directory, not a CXI/HDF5 file or a European XFEL run")
        if not p.exists():
            raise FileNotFoundError(f"no such file: {p}")
    if labels and not Path(labels).is_file():
        raise FileNotFoundError(f"no such labels file: {labels}")
    prints = tuple(_fingerprint(p) for p in paths)
    geometry = kwargs.pop("geometry", "")
    if geometry:
        if not Path(geometry).is_file():
            raise FileNotFoundError(f"--geometry {geometry}: no such file")
        geometry = Path(geometry).resolve()
        kwargs["geometry_fingerprint"] = (geometry.stat().st_size, geometry.stat().st_mtime_ns)
    return IngestConfig(
        seed=seed,
        dataset=dataset,
        files=tuple(map(str, paths)),
        fingerprints=prints,
        labels=str(Path(labels).resolve()) if labels else "",
        geometry=str(geometry) if geometry else "",
        **kwargs,
    )


def _fingerprint(path: Path) -> tuple[int, int]:
    """(size, mtime in ns) of a file; of a run directory, the sum of its files' sizes and their latest mtime."""
    if path.is_dir():
        stats = [f.stat() for f in sorted(path.glob("*.h5"))]
        return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)
    return path.stat().st_size, path.stat().st_mtime_ns


def read_labels(path: str) -> dict[tuple[str, int], int]:
    """``{(file name, frame): label}`` from a CSV with columns file, frame, label.

    Raises:
        ValueError: naming the file and line, for missing columns or values that are not integers.
    """
    out = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"file", "frame", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: needs columns file, frame, label; missing {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                frame, label = int(row["frame"]), int(row["label"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: frame and label must be integers, got {row}") from None
            if not 0 <= label <= 4:
                raise ValueError(f"{path}, line {line}: label must be 0-4 (particles, 4 = 4 or more), got {label}")
            out[(Path(row["file"]).name, frame)] = label
    return out


def _hash01(*parts) -> float:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


class IngestSource:
    """Units of frames of the input files (see the module docstring); an example per kept frame."""

    kind = "cxi"

    def __init__(self, config: IngestConfig):
        self.config = config
        self.labels = read_labels(config.labels) if config.labels else None
        names = [Path(f).name for f in config.files]
        if len(set(names)) != len(names):
            raise ValueError("input file names must be unique (labels and keys use the file name)")
        if self.labels is not None:
            unknown = {name for name, _ in self.labels} - set(names)
            if unknown:
                raise ValueError(f"{config.labels} labels files that are not inputs: {sorted(unknown)[:5]}")
        self.counts, self.shapes, self.geometries = [], set(), []
        for f in config.files:
            with config.open(f) as frames:
                self.counts.append(len(frames))
                self.shapes.add(frames.frame_shape)
                self.geometries.append(frames.geometry(0) if len(frames) else None)
        if len(self.shapes) != 1:
            raise ValueError(f"all files must have frames of one shape, got {sorted(self.shapes)}")

    def units(self) -> list[tuple[int, int, int, int]]:
        """(unit index, file index, first frame, stop)."""
        out, size = [], self.config.unit_size
        for i, n in enumerate(self.counts):
            for start in range(0, n, size):
                out.append((len(out), i, start, min(start + size, n)))
        return out

    def split(self, unit) -> str:
        _, file_index, start, _ = unit
        u, acc = _hash01("split", self.config.seed, Path(self.config.files[file_index]).name, start), 0.0
        names = list(self.config.dataset.splits)
        for name in names:
            acc += self.config.dataset.splits[name]
            if u < acc:
                return name
        return names[-1]

    def examples(self, unit, chash: str):
        unit_index, file_index, start, stop = unit
        path = self.config.files[file_index]
        name = Path(path).name
        examples, images, classes = [], [], {}
        with self.config.open(path) as frames:
            batch = frames.read(start, stop)
        for offset, image in enumerate(batch):
            frame = start + offset
            label = -1
            if self.labels is not None:
                if (name, frame) not in self.labels:
                    continue
                label = self.labels[(name, frame)]
                classes[label] = classes.get(label, 0) + 1
            feats = schema.example_features(
                image,
                key=f"{chash}/{name}/{frame}",
                model_index=unit_index,
                label=label,
                params={"file": name, "frame": np.int64(frame)},
            )
            examples.append(schema.encode_example(feats))
            images.append(image)
        counts = {"split": self.split(unit), "patterns": len(examples), "examples": len(examples), "classes": classes}
        return examples, counts, images

    def image_shape(self) -> list[int]:
        return list(next(iter(self.shapes)))

    def sampling(self) -> dict[str, list[float]]:
        """The pixel angles and photon energies the files record (each left out unless every file has it)."""
        out = {}
        for key, of in (
            ("pixel_angle_rad", lambda g: g.pixel_angle_rad),
            ("photon_energy_eV", lambda g: g.photon_energy_eV),
        ):
            values = [of(g) if g is not None else None for g in self.geometries]
            if values and None not in values:
                out[key] = [min(values), max(values)]
        return out

    def describe(self) -> dict:
        return to_dict(self.config)


def units_per_split(source: IngestSource, unit_size: int | None = None) -> dict[str, int]:
    """How many units each split of ``source`` gets (with ``unit_size`` frames per unit in place of the
    config's): known before any work, as for :func:`spizoo.beam_pipelines.generate.units_per_split`."""
    if unit_size is not None:
        source = copy.copy(source)
        source.config = dataclasses.replace(source.config, unit_size=unit_size)
    counts = dict.fromkeys(source.config.dataset.splits, 0)
    for unit in source.units():
        counts[source.split(unit)] += 1
    return counts


def small_split_warning(source: IngestSource) -> str | None:
    """One line if a split (of non-zero share) gets fewer than two units of ``unit_size`` frames, saying what
    that does and the ``--unit-size`` that gives every split at least three; else ``None``."""
    config = source.config
    counts = units_per_split(source)
    small = {name: n for name, n in counts.items() if n < MIN_SPLIT_UNITS and config.dataset.splits[name] > 0}
    if not small:
        return None
    got = ", ".join(f"split {name!r} gets {'none' if n == 0 else 'only 1'}" for name, n in small.items())
    size = config.unit_size // 2
    while size >= 1 and min(units_per_split(source, size)[name] for name in small) < SUGGESTED_SPLIT_UNITS:
        size //= 2
    fix = f"--unit-size {size} gives every split at least {SUGGESTED_SPLIT_UNITS}" if size >= 1 else (
        "give the small splits larger shares in --splits"
    )  # fmt: skip
    return (
        f"{got} of the {sum(counts.values())} blocks of --unit-size {config.unit_size} frames: an empty split stops "
        f"spizoo train (training, validation) or evaluate (test), a split of one block measures it alone; {fix}"
    )


def run(config: IngestConfig, out: str | Path, beam_args: list[str] = (), *, overwrite: bool = False):
    """Ingests into ``out``; returns (``dataset_info``, Beam counters)."""
    return run_source(IngestSource(config), out, beam_args, overwrite=overwrite)
