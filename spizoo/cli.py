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
    if args.augment:
        summary["augment"] = str(simulate.augment_sheet(config, args.out))
    print(json.dumps(summary, indent=2))
    return 0


def _fit_pattern(args: argparse.Namespace) -> int:
    from spizoo import experiment, fit

    config = experiment.load(args.config, args.set)
    report = fit.run(config, args.cxi, args.index, args.out, starts=args.starts, iterations=args.iterations)
    print(json.dumps({k: v for k, v in report.items() if k != "error_vs_simulations"}, indent=2))
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

            With --augment, also OUT/augment.png: pattern 0 under each filter of the config's augmentation
            policy (seed 001 appendix D), side by side.

            example:
              spizoo simulate configs/quickstart.yaml -n 64 --out out/sim
              spizoo simulate configs/sim_msft.yaml -n 32 --out out/msft --augment
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
    sim.add_argument("--augment", action="store_true", help="also write OUT/augment.png (the augmentation filters)")
    sim.set_defaults(func=_simulate)

    fit = verbs.add_parser(
        "fit-pattern",
        help="reconstruct orientation and size of one MSFT pattern by Monte-Carlo simplex (the baseline)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Fit (orientation, radius) of frame INDEX of a CXI file made with a kind: msft config, by Nelder-Mead
            from STARTS random points, ITERATIONS steps each, every step running the forward simulator
            (seed 001 section 3). Writes OUT/fit_INDEX.json (parameters, errors against the stored truth if
            present, forward simulations, seconds) and OUT/fit_INDEX.png (pattern, best fit, convergence).

            example:
              spizoo simulate configs/sim_msft.yaml -n 4 --out out/msft
              spizoo fit-pattern configs/sim_msft.yaml out/msft/patterns.cxi --index 2 --out out/fit
            """
        ),
    )
    fit.add_argument("config", help="YAML config with sim.kind: msft (the forward model)")
    fit.add_argument("cxi", help="CXI file holding the pattern")
    fit.add_argument("--index", type=int, default=0, help="frame to fit (default 0)")
    fit.add_argument("--starts", type=int, default=50, help="random starting points (default 50)")
    fit.add_argument("--iterations", type=int, default=50, help="simplex iterations per start (default 50)")
    fit.add_argument("--out", required=True, help="output directory")
    fit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    fit.set_defaults(func=_fit_pattern)
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
