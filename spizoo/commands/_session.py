"""A Beam pipeline (``spizoo generate``, ``spizoo ingest``) in a child process of its own session, with Beam's
worker processes under it: a Ctrl-C at the terminal reaches the verb's process alone, which stops the whole
session and says so in one line, instead of a traceback from every Beam worker; the verb meanwhile shows the
units done, read from the chunks the pipeline has finished
(:func:`spizoo.beam_pipelines.generate.units_done`). The session's messages reach the terminal through this
process, which stops passing them on once it stops the session: what dying workers say is not shown."""

from __future__ import annotations

import builtins
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spizoo import experiment
from spizoo.beam_pipelines import generate, ingest
from spizoo.core.config import ConfigError, from_dict

STOP_SECONDS = 10  # after SIGTERM, how long the pipeline's processes get before SIGKILL
POLL_SECONDS = 0.5


def in_own_session(request: dict, poll, interrupted: Callable[[], str]) -> dict:
    """Runs the pipeline of ``request`` (``"pipeline"``: ``generate`` with its ``config`` file and ``set``
    overrides, ``ingest`` with its config as a dict, or ``classify`` with its arguments) in a child process of
    its own session, calling ``poll()`` meanwhile; returns the child's result (generate, ingest: ``{"info",
    "counters"}``; classify: ``{"summary"}``).

    On Ctrl-C (or SIGTERM) here, the child's session (the pipeline and Beam's workers) is stopped and waited
    for, and ``KeyboardInterrupt`` is raised with ``interrupted()``, what a rerun does. The child's errors
    come back as the same kinds of error (one line each); a crash (a traceback, which it prints itself) as a
    ``ChildProcessError``.
    """
    with tempfile.TemporaryDirectory(prefix=f"spizoo-{request['pipeline']}-") as tmp:
        result_file = Path(tmp) / "result.json"
        # The child reads this pipe, which nothing writes: at its end (this process gone, even by SIGKILL) the
        # child kills its session, so that no pipeline runs on unseen and meets the rerun's.
        alive, keep = os.pipe()
        request = {**request, "result": str(result_file), "parent_pipe": alive}
        (Path(tmp) / "request.json").write_text(json.dumps(request))
        previous = signal.signal(signal.SIGTERM, _interrupt)
        child = relay = None
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "spizoo.commands._session", str(Path(tmp) / "request.json")],
                start_new_session=True,  # the terminal's Ctrl-C reaches its process group, not this session
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(alive,),
            )
            os.close(alive)
            relay = _Relay(child.stderr)
            while child.poll() is None:
                poll()
                time.sleep(POLL_SECONDS)
            poll()
            relay.join()
        except KeyboardInterrupt:
            if relay is not None:
                relay.mute()  # before any signal: a worker that outlives the pipeline's process by a moment
            if child is not None:  # reports its broken connection, which is no news after a Ctrl-C
                _stop_session(child)
            raise KeyboardInterrupt(interrupted()) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            if child is None:
                os.close(alive)
            os.close(keep)
        result = json.loads(result_file.read_text()) if result_file.exists() else None
    if result is None or child.returncode not in (0, 1):  # a crash: its traceback is above, this is one line
        raise ChildProcessError(f"the pipeline's process ended with status {child.returncode} (its messages are above)")
    if "error" in result:
        raise _error(result["error"])
    return result


def resumable(out: str, unit: str) -> str:
    """What Ctrl-C left of a dataset pipeline into ``out`` whose units are ``unit``s, and what a rerun does."""
    done = generate.units_done(out)
    if not done:
        return f"interrupted; nothing was written to {out}: the same command starts it again"
    return (
        f"interrupted; nothing was written to {out} (the {done:,} {unit}s done are in {out}.incomplete/): "
        "the same command resumes from them"
    )


def _error(error: dict) -> Exception:
    """The child's error as the exception it was: its type (an ``OSError`` with its number and file names,
    which the dispatcher puts in plain words), else a ``ValueError`` with its message."""
    if error["kind"] == "ConfigError":
        return ConfigError(error["message"])
    if "errno" in error:
        kind = getattr(builtins, error["kind"], OSError)
        if error["errno"] is None:
            return kind(error["message"])
        return kind(error["errno"], error["strerror"], error["filename"], None, error["filename2"])
    return ValueError(error["message"])


class _Relay:
    """Passes what the session writes to ``stream`` on to this process's file descriptor 2, until
    :meth:`mute`."""

    def __init__(self, stream) -> None:
        self._stream, self._muted = stream, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while chunk := os.read(self._stream.fileno(), 65536):
            if not self._muted.is_set():
                sys.stderr.flush()  # this process's own lines (the progress bar) first
                os.write(2, chunk)  # file descriptor 2, as the session's own: through the start-up noise filter

    def mute(self) -> None:
        self._muted.set()

    def join(self, timeout: float = 2.0) -> None:
        """Waits for the session's last message (the end of its stderr: all its processes gone)."""
        self._thread.join(timeout)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_session(child: subprocess.Popen) -> None:
    """SIGTERM to every process of ``child``'s session, SIGKILL to those left after :data:`STOP_SECONDS`, and
    waits until none is left."""
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        _signal_session(child.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and (child.poll() is None or _session_members(child.pid)):
            time.sleep(0.05)
        if child.poll() is not None and not _session_members(child.pid):
            return


def _session_members(sid: int) -> list[int]:
    """The processes of session ``sid`` still running (from /proc; zombies are done)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            members.append(int(entry))
    return members


def _signal_session(sid: int, sig: int) -> None:
    for pid in _session_members(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _end_with_parent(pipe: int) -> None:
    """Waits for the end of the parent's pipe (the parent gone), then kills this session: the pipeline and
    Beam's workers."""
    while os.read(pipe, 1):
        pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _child(request_file: str) -> int:
    """The pipeline, in the child process: the request's config and options in, its result (or the one-line
    error) out, in the request's result file."""
    request = json.loads(Path(request_file).read_text())
    threading.Thread(target=_end_with_parent, args=(request["parent_pipe"],), daemon=True).start()
    if not request["verbose"]:
        from spizoo.cli import _quiet_logging  # the parent's logging set-up, for this process's libraries

        _quiet_logging()
    try:
        if request["pipeline"] == "classify":
            from spizoo.commands.classify import run_pipeline  # the verb's model and view loading

            result = {"summary": run_pipeline(request)}
        else:
            if request["pipeline"] == "ingest":
                config, pipeline = from_dict(ingest.IngestConfig, request["config"]), ingest
            else:
                config, pipeline = experiment.load(request["config"], request["set"]), generate
            info, counters = pipeline.run(config, request["out"], request["beam_args"], overwrite=request["overwrite"])
            result = {"info": info, "counters": counters}
    except (ValueError, OSError) as err:  # the errors the dispatcher prints as one line (ConfigError is one)
        result = {"error": {"kind": type(err).__name__, "message": str(err)}}
        if isinstance(err, OSError):
            result["error"].update(
                errno=err.errno, strerror=err.strerror, filename=err.filename, filename2=err.filename2
            )
    Path(request["result"]).write_text(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
