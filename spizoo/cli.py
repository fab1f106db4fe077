"""The ``spizoo`` command line: a dispatcher over the verbs of :mod:`spizoo.commands`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import logging
import os
import sys
import textwrap

from spizoo import __version__
from spizoo.commands import VERBS
from spizoo.core import compat
from spizoo.core.config import ConfigError
from spizoo.core.errors import tensorflow_message
from spizoo.serving.client import ServingClientError
from spizoo.serving.predictor import ModelOutputError


def _module(verb: str):
    return importlib.import_module(f"spizoo.commands.{verb.replace('-', '_')}")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``spizoo``; only ``verb``'s module is imported and its arguments added."""
    parser = argparse.ArgumentParser(
        prog="spizoo", description="XFEL single-particle-imaging model zoo and data layer."
    )
    parser.add_argument("--version", action="version", version=f"spizoo {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, help_text in VERBS.items():
        sub = verbs.add_parser(name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == verb:
            parser.verb_parser = sub
            module = _module(name)
            sub.description = textwrap.dedent(module.DESCRIPTION)
            module.add_arguments(sub)
            sub.add_argument("--json", action="store_true", help="print the whole summary as JSON")
            sub.add_argument(
                "--verbose", action="store_true", help="show library log lines (TensorFlow, Beam) as they come"
            )
    return parser


def _check_beam_args(parser: argparse.ArgumentParser, verb: str, unknown: list[str]) -> None:
    """Unknown options must be Beam's: anything else is an error naming it and the nearest valid option."""
    from spizoo.beam_pipelines.generate import unknown_options  # Beam loads in seconds: only for these verbs

    bad, beam_options = unknown_options(unknown)
    if not bad:
        return
    own = [o for action in parser.verb_parser._actions for o in action.option_strings]
    hints = []
    for arg in bad:
        close = difflib.get_close_matches(arg.split("=", 1)[0], own + beam_options, n=1) if arg.startswith("-") else []
        hints.append(f"{arg} (did you mean {close[0]}?)" if close else arg)
    parser.error(f"unrecognized arguments: {' '.join(hints)} (neither spizoo {verb}'s nor Apache Beam's options)")


def _quiet_logging() -> None:
    """Libraries' INFO lines stay off the terminal; their warnings stay (but the start-up noise that
    :func:`spizoo.core.compat.quiet_stderr` drops)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:%(name)s:%(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv
    if not verbose:
        _quiet_logging()
    with contextlib.nullcontext() if verbose else compat.quiet_stderr():
        return _main(argv)


def _main(argv: list[str]) -> int:
    verb = next((a for a in argv if a in VERBS), None)
    parser = build_parser(verb)
    args, unknown = parser.parse_known_args(argv)
    module = _module(args.verb)
    beam = getattr(module, "PASSES_TO_BEAM", False)
    if unknown and not beam:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if beam:
            if unknown:
                _check_beam_args(parser, args.verb, unknown)
            summary = module.run(args, unknown)
        else:
            summary = module.run(args)
    except (ConfigError, ValueError, OSError, ServingClientError, ModelOutputError) as err:
        print(f"spizoo {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spizoo {args.verb}: interrupted; the same command resumes or starts afresh", file=sys.stderr)
        return 130
    except Exception as err:
        if not type(err).__module__.startswith("tensorflow"):
            raise
        print(f"spizoo {args.verb}: error: {tensorflow_message(err)}", file=sys.stderr)
        return 2
    print(
        json.dumps(summary, indent=2) if args.json else f"spizoo {args.verb}: {module.summary_line(summary)}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
