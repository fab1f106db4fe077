"""The ``spizoo`` command line: one verb per area (``spizoo <verb> --help`` shows an example)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from spizoo import __version__
from spizoo.config import ConfigError


def _simulate(args: argparse.Namespace) -> int:
    from spizoo import experiment, simulate

    overrides = [*args.set, *([f"seed={args.seed}"] if args.seed is not None else [])]
    config = experiment.load(args.config, overrides)
    summary = simulate.run(config, args.n, args.out, workers=args.workers, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spizoo", description="XFEL single-particle-imaging model zoo and data layer."
    )
    parser.add_argument("--version", action="version", version=f"spizoo {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    sim = verbs.add_parser(
        "simulate",
        help="simulate diffraction patterns into a CXI file with a PNG contact sheet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Simulate patterns 0..N-1 of a config into OUT/patterns.cxi (CXI layout, SI units, labels and
            parameters under /entry_1/spizoo), OUT/contact_sheet.png and OUT/config.yaml (resolved config).

            example:
              spizoo simulate configs/quickstart.yaml -n 64 --out out/sim
              spizoo simulate configs/sim_spi.yaml -n 1000 --out out/spi --set sim.detector.distance_m=[0.4,0.5]
            """
        ),
    )
    sim.add_argument("config", help="YAML config file")
    sim.add_argument("-n", type=int, default=64, help="number of patterns (default 64)")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    sim.add_argument("--seed", type=int, default=None, help="override the config's seed")
    sim.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing OUT/patterns.cxi")
    sim.set_defaults(func=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"spizoo {args.verb}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
