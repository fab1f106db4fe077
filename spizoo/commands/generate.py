"""``spizoo generate``: a config's simulated patterns into a sharded TFRecord dataset with Apache Beam."""

from __future__ import annotations

import argparse

from spizoo import experiment
from spizoo.beam_pipelines import generate
from spizoo.commands._common import add_set

PASSES_TO_BEAM = True
DESCRIPTION = """\
    Simulate dataset.patterns patterns of CONFIG, augment the splits in dataset.augment_splits, and
    write OUT/NAME-SPLIT.tfrecord-00000-of-00016 shards with OUT/dataset_info.json (splits, class
    counts, schema, resolved config) and OUT/train_mean.npy, train_std.npy (per-pixel statistics).
    Work happens under OUT.incomplete/; OUT appears only when the pipeline succeeds, and running
    the same command again after a failure resumes where it stopped. Options of Apache Beam's
    pipeline (e.g. --runner, --direct_num_workers) are passed to Beam; without --runner it runs
    locally on all cores (DirectRunner). Any other unknown option is an error.

    example:
      spizoo generate configs/data_spi_hits.yaml --out out/spi_hits --set dataset.patterns=2000
      spizoo generate configs/data_msft.yaml --out gs://bucket/msft --runner DataflowRunner \\
          --project P --region R --temp_location gs://bucket/tmp
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config with sim, augment and dataset sections")
    parser.add_argument("--out", required=True, help="output directory")
    add_set(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run(args: argparse.Namespace, beam_args: list[str]) -> dict:
    config = experiment.load(args.config, args.set)
    info, counters = generate.run(config, args.out, beam_args, overwrite=args.overwrite)
    return {
        "out": args.out,
        "splits": {k: {"examples": v["examples"], "models": v["models"]} for k, v in info["splits"].items()},
        "counters": counters,
    }


def summary_line(summary: dict) -> str:
    splits = ", ".join(f"{v['examples']:,} {k}" for k, v in summary["splits"].items())
    return f"wrote {summary['out']}: {splits} examples"
