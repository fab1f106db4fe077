"""``spizoo generate``: a config's simulated patterns into a sharded TFRecord dataset with Apache Beam, run in
a session of its own (:mod:`spizoo.commands._session`: one line on Ctrl-C, the units done meanwhile)."""

from __future__ import annotations

import argparse
import sys

from spizoo import experiment
from spizoo.beam_pipelines import generate, storage
from spizoo.commands._common import Progress, add_set, quoted
from spizoo.commands._session import in_own_session, resumable

PASSES_TO_BEAM = True
DESCRIPTION = """\
    Simulate dataset.patterns patterns of CONFIG, augment the splits in dataset.augment_splits, and
    write OUT/NAME-SPLIT.tfrecord-00000-of-00016 shards with OUT/dataset_info.json (splits, class
    counts, schema, resolved config) and OUT/train_mean.npy, train_std.npy (per-pixel statistics).
    Work happens under OUT.incomplete/; OUT appears only when the pipeline succeeds, and running
    the same command again after a failure or Ctrl-C resumes where it stopped. Splits go by whole
    particle models (sim.patterns_per_model patterns each; MSFT: blocks of dataset.unit_size), so a
    small dataset can leave a split empty: a warning says so before any work, and which
    dataset.patterns fills every split. Options of Apache Beam's pipeline (e.g. --runner,
    --direct_num_workers) are passed to Beam; without --runner it runs locally on all cores
    (DirectRunner). Any other unknown option is an error.

    example:
      spizoo generate configs/data_spi_hits.yaml --out out/spi_hits --set dataset.patterns=10100
      spizoo generate configs/data_msft.yaml --out /shared/msft --runner DaskRunner \\
          --dask_client_address tcp://10.1.2.3:8786
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with sim, augment and dataset sections")
    parser.add_argument("--out", required=True, help="output directory")
    add_set(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace, beam_args: list[str]) -> dict:
    config = experiment.load(args.config, args.set)
    out = str(args.out)
    storage.configure(beam_args)
    generate.check_out(out, args.overwrite)
    warning = generate.small_split_warning(config)
    if warning:
        print(f"spizoo generate: warning: {warning}", file=sys.stderr, flush=True)
    unit, _ = generate.unit_words(config)
    total = len(generate.units(config))
    request = {"pipeline": "generate", "config": str(args.config), "set": list(args.set), "out": out}
    request["beam_args"] = list(beam_args)
    request.update(overwrite=args.overwrite, verbose=args.verbose)
    progress = Progress(total=total, desc="generate", unit=unit, initial=generate.units_done(out))
    with progress:
        result = in_own_session(request, lambda: progress.set(generate.units_done(out)), lambda: resumable(out, unit))
    info, counters = result["info"], result["counters"]
    return {
        "out": out,
        "splits": {k: {"examples": v["examples"], "models": v["models"]} for k, v in info["splits"].items()},
        "counters": counters,
    }


def summary_line(summary: dict) -> str:
    splits = ", ".join(f"{v['examples']:,} {k}" for k, v in summary["splits"].items())
    return f"wrote {summary['out']}: {splits} examples"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    out = summary["out"]
    unit, _ = generate.unit_words(experiment.load(args.config, args.set))
    run_dir = f"{out.removesuffix('_ds')}_run" if out.endswith("_ds") else f"{out}_run"
    size = summary["counters"].get("bytes")
    splits = [
        (name, f"{v['examples']:,} examples from {v['models']:,} {unit}{'' if v['models'] == 1 else 's'}")
        for name, v in summary["splits"].items()
    ]
    return [
        ("dataset", f"{out}/ ({size / 2**20:,.1f} MiB)" if size else f"{out}/"),
        *splits,
        ("statistics", f"{out}/train_mean.npy, {out}/train_std.npy"),
        ("described in", f"{out}/dataset_info.json"),
        ("next", f"spizoo train {quoted(args.config)} --data {quoted(out)} --out {quoted(run_dir)}"),
    ]
