"""The ``spizoo`` command line: a dispatcher over the verbs of :mod:`spizoo.commands`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import logging
import os
import re
import sys
import textwrap
from pathlib import Path

from spizoo import __version__
from spizoo.commands import VERBS
from spizoo.core import compat
from spizoo.core.config import ConfigError
from spizoo.core.errors import tensorflow_message, traced_message


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The verbs' help: the description as written, and every option's default, where its help does not say
    it already (none for flags and for options without a default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or default == []
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return text
        return f"{text} (default: %(default)s)"


PAPERS = """\
"seed 000" and "seed 001" in the help texts are the two papers spizoo implements, and "§4.1", "section
4.1", "fig. 4b" and "appendix C" their parts: seed 000 is Han & Li, "Data Classification with Residual
Network for SPI Experiments" (small-angle hits, ResNet-10, VGG16 + logistic regression); seed 001 is
Stielow et al., "Fast reconstruction of single-shot wide-angle diffraction images through deep
learning", MLST 1 045007 (2020) (MSFT patterns, ResNet-34 regression, the forward-fit baseline).
"spizoo VERB --help" shows a verb's options and a runnable example."""


def _module(verb: str):
    return importlib.import_module(f"spizoo.commands.{verb.replace('-', '_')}")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``spizoo``; only ``verb``'s module is imported and its arguments added."""
    parser = argparse.ArgumentParser(
        prog="spizoo",
        description="XFEL single-particle-imaging model zoo and data layer.",
        epilog=PAPERS,
    )
    parser.add_argument("--version", action="version", version=f"spizoo {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, help_text in VERBS.items():
        sub = verbs.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        if name == verb:
            parser.verb_parser = sub
            module = _module(name)
            sub.description = textwrap.dedent(module.DESCRIPTION)
            if "seed 00" in sub.description.lower():
                sub.epilog = PAPERS.rsplit("\n", 1)[0]  # what "seed 001 fig. 4b" means
            module.add_arguments(sub)
            for action in sub._actions:  # argparse shows nothing, not even the default, for an option without help
                if action.help is None and action.option_strings and action.default not in (None, False, []):
                    action.help = "(default: %(default)s)"
            sub.add_argument("--json", action="store_true", help="print the whole summary as JSON")
            sub.add_argument(
                "--verbose", action="store_true", help="show library log lines (TensorFlow, Beam) as they come"
            )
    return parser


def _check_beam_args(parser: argparse.ArgumentParser, verb: str, unknown: list[str]) -> None:
    """Unknown options must be Beam's: anything else is an error naming it and the nearest valid option."""
    from spizoo.beam_pipelines.runners import unknown_options  # Beam loads in seconds: only for these verbs

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
        try:
            return _main(argv)
        except KeyboardInterrupt:  # before a verb started work (while its libraries load): nothing to say but that
            verb = next((a for a in argv if a in VERBS), None)
            print(f"spizoo{' ' + verb if verb else ''}: interrupted", file=sys.stderr)
            return 130


OS_ERRORS = {
    errno.ENOENT: "does not exist",
    errno.EISDIR: "is a directory, not a file",
    errno.ENOTDIR: "is not a directory (a part of its path is a file)",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "is a directory that is not empty",
    errno.EACCES: "cannot be accessed: permission denied",
    errno.EPERM: "cannot be accessed: permission denied",
    errno.ENOSPC: "cannot be written: no space left on the device",
    errno.EROFS: "is on a read-only file system",
}
"""Plain words for Python's ``[Errno N] …`` messages, said of the path."""


def _argument_for(name: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The argument (``--out``, ``CONFIG``) whose path is ``name`` or a directory above it; "" if none."""
    target = Path(name).resolve()
    best, depth = "", -1
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not isinstance(value, str) or not value or "://" in value:
            continue
        given = Path(value).resolve()
        label = action.option_strings[-1] if action.option_strings else action.dest.upper()
        if given == target:
            return label
        if given in target.parents and given != Path.cwd() and len(given.parts) > depth:
            best, depth = label, len(given.parts)
    return best


def os_error_message(err: OSError, args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """An ``OSError`` in plain words: spizoo's own messages as they are; Python's ``[Errno N] …: 'path'``
    as the argument that named the path, the path, and what is wrong with it."""
    if err.errno is None or not err.filename:
        return str(err)
    name = os.fsdecode(err.filename)
    problem = OS_ERRORS.get(err.errno) or f"cannot be used: {(err.strerror or str(err)).lower()}"
    if err.errno == errno.EEXIST and os.path.exists(name) and not os.path.isdir(name):
        problem = "is a file, not a directory"
    parent = os.path.dirname(os.path.abspath(name))
    if err.errno == errno.ENOENT and not os.path.isdir(parent):
        problem = f"cannot be made: its directory {os.path.dirname(name) or parent} does not exist"
    if err.filename2:
        return f"cannot move {name} to {os.fsdecode(err.filename2)}: {OS_ERRORS.get(err.errno, problem)}"
    what = _argument_for(name, args, parser)
    return f"{what + ' ' if what else ''}{name} {problem}"


def error_message(err: Exception, args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The one line a verb's error is printed as: OS errors in plain words, on one line, and for a file
    without an image stack at the CXI locations, the option that names one."""
    text = os_error_message(err, args, parser) if isinstance(err, OSError) else traced_message(str(err))
    text = " ".join(text.split())  # one line: libraries (h5py) put newlines into theirs
    from spizoo.serving.client import ServingClientError  # loaded with the verb already

    if isinstance(err, ServingClientError):
        text = re.sub(r"\[Errno -?\d+\] ", "", text)  # "connection refused", not "[Errno 111] Connection refused"
        urls = [v for v in vars(args).values() if isinstance(v, str) and "://" in v]
        if urls and not any(url.rstrip("/") in text for url in urls):
            text += f" (model server {urls[0]})"
    if "no image stack at" in text and "--dataset" in {o for a in parser._actions for o in a.option_strings}:
        if getattr(args, "dataset", None):
            text += "; give another --dataset"
        else:
            stacks = [s.split(" ")[0] for s in text.split("datasets are: ", 1)[-1].split(", ") if s.startswith("/")]
            text += f"; name the image stack with --dataset{', e.g. --dataset ' + stacks[0] if stacks else ''}"
    return text


def _main(argv: list[str]) -> int:
    # The errors a verb reports in one line; imported here (a second, loading the simulator) rather than at the
    # top, so that a Ctrl-C while Python loads them is one line too.
    from spizoo.serving.client import ServingClientError
    from spizoo.serving.predictor import ModelOutputError

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
        print(f"spizoo {args.verb}: error: {error_message(err, args, parser.verb_parser)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        said = str(err) or getattr(module, "INTERRUPTED", "interrupted; the same command resumes or starts afresh")
        print(f"spizoo {args.verb}: {said}", file=sys.stderr)
        return 130
    except Exception as err:
        if not type(err).__module__.startswith("tensorflow"):
            raise
        print(f"spizoo {args.verb}: error: {tensorflow_message(err)}", file=sys.stderr)
        return 2
    from spizoo.commands._common import json_text, report_text  # a verb's module has loaded it already

    if args.json:
        print(json_text(summary), flush=True)
    else:
        rows = module.summary_rows(summary, args) if hasattr(module, "summary_rows") else []
        print(report_text(f"spizoo {args.verb}: {module.summary_line(summary)}", rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
