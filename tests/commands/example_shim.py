"""``spizoo`` as ``tests/commands/test_examples.py`` runs the examples: the real CLI, with less work.

It only lowers counts that set how long a command runs, never what it does: at most :data:`MAX_PATTERNS`
simulated patterns, :data:`MAX_DATASET` dataset patterns (MSFT: the fewest that give every split one unit),
one training epoch, and fits of 2 starts x 4 iterations. ``spizoo serve`` runs in the background, as in the
examples' second terminal, on the test's ports; the server started before it is stopped first, as Ctrl-C would.
Environment: ``EXAMPLE_SERVERS`` (a file of server process ids), ``EXAMPLE_REST_PORT``, ``EXAMPLE_GRPC_PORT``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MAX_PATTERNS = 64
MAX_DATASET = 1000
READY_SECONDS = 180  # a server's start: TensorFlow and the models load


def option(argv: list[str], name: str, default: str | None = None) -> str | None:
    """The last value of option ``name`` (argparse's rule)."""
    value = default
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def shrunk(argv: list[str]) -> list[str]:
    """``argv`` with options appended that make its work small (a later option wins)."""
    verb, extra = argv[0] if argv else "", []
    if "--help" in argv or "-h" in argv:
        return argv
    if verb == "simulate" and int(option(argv, "-n", "64")) > MAX_PATTERNS:
        extra += ["-n", str(MAX_PATTERNS)]
    if verb == "fit-pattern":
        extra += ["--starts", "2", "--iterations", "4"]
    if verb in ("generate", "train"):
        from spizoo.experiment import load  # the config says how much work it is

        config = load(argv[1], [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--set"])
        if config.sim.kind == "spi":
            cap = MAX_DATASET
        else:  # MSFT patterns take longest: the fewest that give every split a unit (training needs two)
            from spizoo.beam_pipelines.generate import patterns_filling_splits

            cap = patterns_filling_splits(config, at_least=1)
        if verb == "generate" and config.dataset.patterns > cap:
            extra += ["--set", f"dataset.patterns={cap}"]
        if verb == "train" and config.train.epochs > 1:
            extra += ["--set", "train.epochs=1"]
    return [*argv, *extra]


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by whoever inherited it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop(pid: int, sig: int = signal.SIGINT, seconds: float = 60) -> None:
    """Sends ``sig`` to server ``pid`` and waits until it is gone (SIGKILL after ``seconds``)."""
    for signum in (sig, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + seconds
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not running(pid):
            return


def serve(command: list[str]) -> int:
    """Starts ``spizoo serve`` in the background and returns once it serves (1 if it ended instead)."""
    servers = Path(os.environ["EXAMPLE_SERVERS"])
    for pid in servers.read_text().split() if servers.exists() else []:
        stop(int(pid))
    log = Path(f"serve-{len(servers.read_text().split()) if servers.exists() else 0}.log")
    ports = ["--rest-api-port", os.environ["EXAMPLE_REST_PORT"], "--port", os.environ["EXAMPLE_GRPC_PORT"]]
    with open(log, "w") as out:
        server = subprocess.Popen(
            [*command, *ports], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    with open(servers, "a") as f:
        f.write(f"{server.pid}\n")
    deadline = time.monotonic() + READY_SECONDS
    while "spizoo serve: versions" not in log.read_text() and time.monotonic() < deadline:
        if server.poll() is not None:
            print(log.read_text(), file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(log.read_text(), end="")
    return 0


def main() -> int:
    argv = shrunk(sys.argv[1:])
    command = [sys.executable, "-m", "spizoo.cli", *argv]
    if argv and argv[0] == "serve" and "--help" not in argv:
        return serve(command)
    os.execv(sys.executable, command)


if __name__ == "__main__":
    sys.exit(main())
