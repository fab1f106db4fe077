"""``spizoo ingest``: frames of experiment CXI/HDF5 files into the dataset schema of ``spizoo generate``, run
in a session of its own as generate is (:mod:`spizoo.commands._session`)."""

from __future__ import annotations

import argparse
import sys

import yaml

from spizoo.beam_pipelines import generate, ingest, storage
from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.commands._common import Progress
from spizoo.commands._session import in_own_session, resumable
from spizoo.commands._view import add_run_args, add_view_args
from spizoo.core.config import to_dict
from spizoo.data.euxfel import format_trains

PASSES_TO_BEAM = True
DESCRIPTION = """\
    Write the frames of FILES in the dataset schema of spizoo generate (sharded TFRecords,
    dataset_info.json, training statistics), so that spizoo train trains or fine-tunes on real data.
    --labels: CSV with columns file,frame,label (0-4 particles); only labelled frames are kept.
    Without it every frame is kept, unlabelled (-1). Frames go to splits in blocks of --unit-size.
    Module-stacked frames (n, modules, ss, fs) are summed through their detector geometry (--geometry,
    else FILE.geom beside each file) into --pixels images of --bin x --bin pixels around the beam: use
    the bin and pixels of the model the data will train.
    Options of Apache Beam's pipeline are passed to Beam (e.g. --runner=FlinkRunner).

    example:
      spizoo ingest run_0042.cxi run_0043.cxi --labels diffusion_map_labels.csv --out out/real
      spizoo train configs/train_resnet10_hits.yaml --data out/real --out out/real_run
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="CXI or HDF5 files, or European XFEL run directories")
    parser.add_argument("--out", required=True, help="dataset directory (OUT.incomplete/ until done)")
    parser.add_argument("--labels", help="CSV of file,frame,label")
    parser.add_argument("--name", default="real", help="shard file prefix (default: real)")
    parser.add_argument("--splits", default="{train: 0.8, validation: 0.1, test: 0.1}", help="YAML mapping")
    parser.add_argument("--shards", help="YAML mapping of shards per split (default: 4 for train, else 1)")
    parser.add_argument("--compression", default="none", choices=("none", "gzip"))
    parser.add_argument("--dataset", help="image stack inside the files (default: the CXI locations)")
    parser.add_argument("--unit-size", type=int, default=256, help="consecutive frames per unit (and split block)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split assignment")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_view_args(parser, model=False)
    add_run_args(parser)


def _mapping(text: str, option: str) -> dict:
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a mapping such as '{{train: 0.8, validation: 0.2}}', got {text!r}")
    return value


def run(args: argparse.Namespace, beam_args: list[str]) -> dict:
    splits = _mapping(args.splits, "--splits")
    shards = _mapping(args.shards, "--shards") if args.shards else {k: 4 if k == "train" else 1 for k in splits}
    dataset = DatasetConfig(name=args.name, splits=splits, shards=shards, compression=args.compression)
    config = ingest.make_config(
        args.files,
        labels=args.labels,
        dataset=dataset,
        seed=args.seed,
        image_dataset=args.dataset or "",
        unit_size=args.unit_size,
        geometry=args.geometry or "",
        bin=args.bin or 1,
        pixels=tuple(args.pixels or (128, 128)),
        source=args.source or "",
        trains=format_trains(args.trains),
    )
    out = str(args.out)
    storage.configure(beam_args)
    generate.check_out(out, args.overwrite)
    source = ingest.IngestSource(config)
    warning = ingest.small_split_warning(source)
    if warning:
        print(f"spizoo ingest: warning: {warning}", file=sys.stderr, flush=True)
    request = {"pipeline": "ingest", "config": to_dict(config), "out": out, "beam_args": list(beam_args)}
    request.update(overwrite=args.overwrite, verbose=args.verbose)
    progress = Progress(total=len(source.units()), desc="ingest", unit="block", initial=generate.units_done(out))
    with progress:
        result = in_own_session(
            request, lambda: progress.set(generate.units_done(out)), lambda: resumable(out, "block")
        )
    info = result["info"]
    splits = {k: {"examples": v["examples"], "classes": v["classes"]} for k, v in info["splits"].items()}
    return {"out": args.out, "image_shape": info["image_shape"], "splits": splits}


def summary_line(summary: dict) -> str:
    splits = ", ".join(f"{v['examples']:,} {k}" for k, v in summary["splits"].items())
    return f"wrote {summary['out']}: {splits} frames of {summary['image_shape'][0]}x{summary['image_shape'][1]}"
