"""``spizoo simulate``: patterns to a CXI file plus a PNG contact sheet a person can look at."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

import numpy as np

from spizoo import experiment
from spizoo.commands._common import Progress, add_set, non_negative_int, positive_int, quoted
from spizoo.core import seeds
from spizoo.core.config import dump_config
from spizoo.core.labels import CLASS_NAMES, NUM_CLASSES
from spizoo.data.cxi import CXIWriter
from spizoo.plots import contact_sheet
from spizoo.sim import spi
from spizoo.sim.parallel import iterate_patterns

DESCRIPTION = """\
    Simulate patterns 0..N-1 of a config into OUT/patterns.cxi (CXI layout, SI units, labels and
    parameters under /entry_1/spizoo), OUT/contact_sheet.png and OUT/config.yaml (resolved config).
    On a detector geometry (sim.detector.geometry), frames are module-stacked and OUT/patterns.geom
    (CrystFEL) describes them; the contact sheet shows the model's view.

    With --augment, also OUT/augment.png: pattern 0 under each filter of the config's augmentation
    policy (seed 001 appendix D: the detector-artefact filters of Stielow et al., MLST 1 045007
    (2020)), side by side. OUT/patterns.cxi is written as patterns.cxi.partial and renamed when
    complete: an interrupted run leaves no file that looks complete.

    example:
      spizoo simulate configs/quickstart.yaml -n 64 --out out/sim
      spizoo simulate configs/sim_msft.yaml -n 32 --out out/msft --augment
      spizoo simulate configs/sim_spi.yaml -n 1000 --out out/spi --set sim.detector.distance_m=[0.4,0.5]
      spizoo simulate configs/sim_spi_agipd.yaml -n 16 --out out/agipd
    """
CONTACT_SHEET_TILES = 64
INTERRUPTED = "interrupted; no patterns.cxi was written (the same command starts afresh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("-n", type=positive_int, default=64, help="number of patterns (default 64)")
    parser.add_argument("--out", required=True, help="output directory")
    add_set(parser)
    parser.add_argument("--seed", type=non_negative_int, default=None, help="override the config's seed")
    parser.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT/patterns.cxi")
    parser.add_argument("--augment", action="store_true", help="also write OUT/augment.png (the augmentation filters)")


def run(args: argparse.Namespace) -> dict:
    overrides = [*args.set, *([f"seed={args.seed}"] if args.seed is not None else [])]
    config = experiment.load(args.config, overrides)
    summary = simulate(config, args.n, args.out, workers=args.workers, overwrite=args.overwrite)
    if args.augment:
        summary["augment"] = str(augment_sheet(config, args.out))
    return summary


def summary_line(summary: dict) -> str:
    classes = summary.get("classes")
    counts = f" ({', '.join(f'{n} {k}' for k, n in classes.items())})" if classes else ""
    return f"wrote {summary['patterns']}{counts} and {summary['contact_sheet']}"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    out = Path(summary["patterns"]).parent
    if summary.get("classes"):
        following = f"spizoo generate {quoted(args.config)} --out {quoted(f'{out}_ds')}   (a training dataset)"
    else:
        cxi = quoted(summary["patterns"])
        following = f"spizoo fit-pattern {quoted(args.config)} {cxi} --index 0 --out {quoted(out / 'fit_0')}"
    return [
        ("patterns", f"{summary['patterns']} ({args.n:,} frames)"),
        ("contact sheet", summary["contact_sheet"]),
        ("augmentation", summary.get("augment")),
        ("geometry", summary.get("geometry")),
        ("config", f"{summary['config']} (simulates the same patterns again)"),
        ("next", following),
    ]


def _record(config: experiment.Config, p) -> dict:
    """What the CXI writer stores of a pattern, and its contact-sheet title."""
    if isinstance(p, spi.Pattern):
        return {
            "mask": p.mask,
            "detector": p.model.detector,
            "photon_energy_eV": p.model.photon_energy_eV,
            "extras": p.parameters(config.sim.cluster.max_particles),
            "title": f"{CLASS_NAMES[p.label]} · {p.model.shape}",
            "label": p.label,
        }
    return {
        "mask": np.zeros(p.image.shape, dtype=np.uint32),
        "detector": p.detector,
        "photon_energy_eV": config.sim.photon_energy_eV,
        "extras": {**p.parameters(), "target": p.target(config.sim.circumradius_nm).astype(np.float32)},
        "title": f"R = {p.radius_nm:.0f} nm",
        "label": None,
    }


def simulate(
    config: experiment.Config, n: int, out: str | Path, *, workers: int | None = None, overwrite: bool = False
) -> dict:
    """Simulates ``n`` patterns into ``out/patterns.cxi``, ``out/contact_sheet.png`` and ``out/config.yaml``.

    Returns:
        Paths written and, for hit classes, the count of patterns per class.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    cxi_path = out / "patterns.cxi"
    if cxi_path.exists() and not overwrite:  # said in the command's words, before any work
        raise FileExistsError(f"{cxi_path} exists; add --overwrite to replace it, or give another --out")
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    counts = np.zeros(NUM_CLASSES, dtype=int)
    tiles, titles = [], []
    stride = max(1, n // CONTACT_SHEET_TILES)  # tiles spread over the run, so that several models show
    layout = config.sim.layout() if isinstance(config.sim, spi.SpiConfig) else None
    view = config.sim.view() if layout is not None else None
    summary = {}
    if layout is not None:  # written first: a patterns.cxi is never without its geometry
        d, b = config.sim.detector, config.sim.beam
        summary["geometry"] = str(
            layout.placed(distance_m=sum(d.distance_m) / 2).write_crystfel(
                out / "patterns.geom",
                photon_energy_eV=sum(b.photon_energy_eV) / 2,
                data_path="/entry_1/instrument_1/detector_1/data",
                mask_path="/entry_1/instrument_1/detector_1/mask",
            )
        )
    shape = layout.shape if layout is not None else tuple(config.sim.detector.pixels)
    # Exits in reverse order: on Ctrl-C or an error the partial file goes first, then the worker processes.
    with (
        contextlib.closing(iterate_patterns(config.sim, config.seed, n, workers=workers)) as patterns,
        CXIWriter(cxi_path, shape, overwrite=overwrite) as writer,
    ):
        for i, p in enumerate(Progress(patterns, total=n, desc="simulate", unit="pattern")):
            rec = _record(config, p)
            det = rec["detector"]
            writer.append(
                p.image,
                mask=rec["mask"],
                distance_m=det.distance_m,
                pixel_size_m=det.pixel_size_um * 1e-6,
                center_px=det.center if view is None else None,
                photon_energy_eV=rec["photon_energy_eV"],
                extras=rec["extras"],
            )
            if rec["label"] is not None:
                counts[rec["label"]] += 1
            if i % stride == 0 and len(tiles) < CONTACT_SHEET_TILES:
                tiles.append(p.image if view is None else view(p.image))
                titles.append(rec["title"])
    is_spi = isinstance(config.sim, spi.SpiConfig)
    shown = [k * stride for k in range(len(tiles))]  # the frame index of each tile in patterns.cxi
    sheet = contact_sheet(tiles, titles, out / "contact_sheet.png", log=is_spi, indices=shown)
    dump_config(config, out / "config.yaml")
    summary = {"patterns": str(cxi_path), **summary, "contact_sheet": str(sheet), "config": str(out / "config.yaml")}
    if is_spi:
        summary["classes"] = {CLASS_NAMES[i]: int(c) for i, c in enumerate(counts)}
    return summary


def augment_sheet(config: experiment.Config, out: str | Path) -> Path:
    """PNG of pattern 0 under each filter of the config's augmentation policy once, side by side (drawn from
    pattern 0's own augmentation stream, the one ``spizoo generate`` uses for it)."""
    first = next(iterate_patterns(config.sim, config.seed, 1))
    view = config.sim.view() if isinstance(config.sim, spi.SpiConfig) else None
    image = first.image if view is None else view(first.image)  # filters act on the model's view
    policy = dataclasses.replace(config.augment, copies=len(config.augment.filters), pick="cycle")
    filtered = policy.apply(image, seeds.augment_rng(config.seed, 0, 0))
    images = [image] + [img for _, img in filtered]
    names = ["original"] + [name for name, _ in filtered]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return contact_sheet(images, names, out / "augment.png", columns=6, log=isinstance(config.sim, spi.SpiConfig))
