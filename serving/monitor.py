"""Classify frames as the DAQ writes them, and show the hit rate while the beam is on
(seed 000 §2: "know the quality of their dataset in real time and optimize their experiment parameters").

Every ``interval`` seconds the watched directory is scanned; each file's new frames (files grow while the
DAQ writes) are classified and appended to ``OUT/monitor.csv``, and ``OUT/monitor_state.json`` records, per
file, how many frames are done and how many bytes of results are complete. A file that cannot be opened
yet (half written) is retried; after ``retries`` failures it is reported as corrupt and skipped until it
changes. A restart truncates the results to the recorded length and continues, so no frame is classified
twice and none is lost. The terminal gets one line per scan with new frames; ``OUT/monitor.png`` the
running hit rate and single-hit fraction. Module-stacked files go through their detector's view.

:class:`BridgeMonitor` does the same for a live karabo-bridge stream (European XFEL's online data): each
train's detector modules are stacked (EXtra-data's ``stack_detector_data``), put through the view and
classified; ``OUT/monitor.csv`` holds a row per frame with its train, pulse and memory cell, and
``OUT/monitor_state.json`` the last train done, so a restart never classifies a train twice (a bridge that
replays from the start is skipped up to where the last run stopped). A stream that pauses or a bridge that
restarts is waited for: after ``timeout`` seconds without a train the client reconnects and says so.
:class:`RunMonitor` does the same for a European XFEL run directory the DAQ is still writing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from spizoo.data.euxfel import RunFrames, is_run_directory
from spizoo.data.frame_check import FrameGeometry, FrameMismatchError
from spizoo.data.frames import FrameFile, ViewFinder
from spizoo.serving.client import ServingClientError
from spizoo.serving.predictor import ModelOutputError, Predictor

RESULTS, STATE, PLOT = "monitor.csv", "monitor_state.json", "monitor.png"
COLUMNS = ["file", "frame", "class", "single_hit_score", "single_hit"]
BRIDGE_COLUMNS = ["train_id", "pulse_id", "cell_id", "class", "single_hit_score", "single_hit"]
HISTORY = 100_000  # frames kept for the plot


class Monitor:
    """Watches ``directory`` for files matching ``pattern`` and classifies their new frames into ``out``.

    ``plot(classes, single_hit, path, window=..., times=...)``, when given, draws ``OUT/monitor.png`` after
    each scan with new frames (``spizoo monitor`` passes its hit-rate figure); ``times`` are the POSIX seconds
    at which each frame was classified (NaN for frames classified before a restart). Each file's first frames
    are checked against what the model was trained on (:mod:`spizoo.data.frame_check`): a note if unlike them,
    with ``strict`` the file is refused (and skipped, as a damaged file is).
    """

    def __init__(
        self,
        predictor: Predictor,
        directory: str | Path,
        out: str | Path,
        *,
        pattern: str = "*.cxi",
        window: int = 500,
        batch_size: int = 64,
        retries: int = 5,
        dataset: str | None = None,
        plot: Callable | None = None,
        view: ViewFinder | None = None,
        strict: bool = False,
    ):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"{self.directory} is not a directory")
        self.pattern, self.retries, self.dataset, self.view = pattern, retries, dataset, view
        self._open(predictor, out, COLUMNS, {"results_bytes": 0, "files": {}}, window, batch_size, plot, strict)

    def _open(self, predictor, out, columns, state, window, batch_size, plot, strict) -> None:
        """Results, state and history in ``out``, resumed from what a previous run left."""
        self.predictor, self.out, self.columns = predictor, Path(out), columns
        self.window, self.batch_size, self._plot = window, batch_size, plot
        self._warnings: list[str] = []  # the frame check's, given with the next scan's notes
        self.checker = predictor.frame_checker(strict=strict, warn=self._warnings.append)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = self.out / RESULTS
        self.state = state
        if (self.out / STATE).exists():
            self.state = json.loads((self.out / STATE).read_text())
        self.history: deque = deque(maxlen=HISTORY)  # (class, single hit) per frame, in processing order
        self.times: deque = deque(maxlen=HISTORY)  # when each frame of the history was classified (for the plot)
        self._resume()

    def _resume(self) -> None:
        """Drops results written after the last saved state (a crash between the two), reloads the history."""
        if not self.results.exists():
            self.results.write_text(",".join(self.columns) + "\n")
            self.state["results_bytes"] = self.results.stat().st_size
            self._save_state()
            return
        with open(self.results, "r+b") as f:
            f.truncate(self.state["results_bytes"])
        with open(self.results, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != self.columns:
                raise ValueError(
                    f"{self.results} holds results of another kind of monitor (columns {reader.fieldnames}); "
                    "give another --out"
                )
            for row in reader:
                self.history.append((int(row["class"]), row["single_hit"] == "1"))
                self.times.append(np.nan)  # not recorded in the results

    def _save_state(self) -> None:
        partial = self.out / (STATE + ".partial")
        partial.write_text(json.dumps(self.state, indent=1))
        os.replace(partial, self.out / STATE)

    def poll(self) -> dict:
        """One scan: classifies what is new; returns {new frames, notes about files}."""
        new, notes = 0, []
        for path in sorted(self.directory.glob(self.pattern)):
            name = path.name
            entry = self.state["files"].setdefault(name, {"done": 0, "failures": 0, "corrupt": False, "mtime": 0})
            mtime = path.stat().st_mtime
            if entry["corrupt"] and mtime == entry["mtime"]:
                continue
            entry["mtime"] = mtime
            try:
                with FrameFile(path, self.dataset, view=self.view) as frames:
                    entry["corrupt"] = False
                    for first, batch in frames.batches(self.batch_size, entry["done"]):
                        self.checker.check(name, batch, frames.geometry)
                        self._classify(name, first, batch)
                        new += len(batch)
                        entry["done"] = first + len(batch)
                        entry["failures"] = 0
                        self._save_state()
            except ServingClientError as err:
                if not err.bad_input:  # the model server, not the file: wait for it, and try again next scan
                    notes.append(f"waiting for the model server (the files are fine), retrying next scan: {err}")
                    break
                self._failed(name, entry, err, notes)  # the server refused these frames
            except (OSError, ValueError) as err:  # half written, still growing, damaged, or refused (strict)
                self._failed(name, entry, err, notes)
        return {"new_frames": new, "notes": self._taken_warnings() + notes}

    def _taken_warnings(self) -> list[str]:
        out = [f"warning: {w}" for w in self._warnings]
        self._warnings.clear()
        return out

    def _failed(self, name: str, entry: dict, err: Exception, notes: list[str]) -> None:
        """Counts a failed read of file ``name``; after ``retries`` of them it is skipped until it changes."""
        entry["failures"] += 1
        if entry["failures"] >= self.retries:
            entry["corrupt"] = True
            notes.append(f"skipping {name} after {entry['failures']} failed reads: {err}")
        else:
            notes.append(f"cannot read {name} yet (try {entry['failures']} of {self.retries}): {err}")
        self._save_state()

    def _classify(self, name: str, first: int, frames: np.ndarray) -> None:
        self._append([[name, first + i] for i in range(len(frames))], frames)

    def _append(self, keys: list[list], frames: np.ndarray) -> None:
        """Classifies ``frames`` and appends a results row per frame: its ``keys``, class, score, flag."""
        outputs = self.predictor.predict(frames)
        if "single_hit_score" not in outputs:
            raise ModelOutputError(f"spizoo monitor needs a hit classifier; this model gives {sorted(outputs)}")
        classes = np.asarray(outputs["classes"])
        scores = np.asarray(outputs["single_hit_score"])
        single = scores >= self.predictor.threshold
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        now = time.time()
        for i, key in enumerate(keys):
            writer.writerow([*key, int(classes[i]), f"{scores[i]:.6f}", int(single[i])])
            self.history.append((int(classes[i]), bool(single[i])))
            self.times.append(now)
        data = buffer.getvalue().encode()
        with open(self.results, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self.state["results_bytes"] += len(data)

    def rates(self) -> dict:
        """Frames done, and hit rate and single-hit fraction over the last ``window`` frames."""
        recent = list(self.history)[-self.window :]
        done = self.frames_done()
        if not recent:
            return {"frames": done, "hit_rate": 0.0, "single_hit_fraction": 0.0}
        classes = np.array([c for c, _ in recent])
        return {
            "frames": done,
            "hit_rate": float((classes >= 1).mean()),
            "single_hit_fraction": float(np.mean([s for _, s in recent])),
        }

    def frames_done(self) -> int:
        return sum(e["done"] for e in self.state["files"].values())

    def describe(self) -> str:
        """What is watched, for the first line of :meth:`run`."""
        return f"{self.directory}/{self.pattern}"

    def plot(self) -> Path | None:
        if not self.history or self._plot is None:
            return None
        classes = np.array([c for c, _ in self.history])
        single = np.array([s for _, s in self.history])
        return self._plot(classes, single, self.out / PLOT, window=self.window, times=np.array(self.times, float))

    def run(self, interval: float = 2.0, *, once: bool = False) -> None:
        """Scans every ``interval`` seconds until interrupted (or once), printing a line per scan with news."""
        self.interval = interval
        print(f"spizoo monitor: watching {self.describe()} with {self.predictor.description}")
        print(f"  results {self.results}, plot {self.out / PLOT}; Ctrl-C to stop", flush=True)
        try:
            while True:
                start = time.perf_counter()
                result = self.poll()
                for note in result["notes"]:
                    print(f"  {note}", flush=True)
                if result["new_frames"]:
                    self.plot()
                    r = self.rates()
                    rate = result["new_frames"] / max(time.perf_counter() - start, 1e-9)
                    print(
                        f"[{time.strftime('%H:%M:%S')}] {r['frames']:,} frames (+{result['new_frames']}, "
                        f"{rate:.0f}/s) | last {min(self.window, len(self.history))}: hit rate "
                        f"{r['hit_rate']:.2f}, single hits {r['single_hit_fraction']:.2f}",
                        flush=True,
                    )
                if once or self.finished():
                    return
                time.sleep(max(0.0, interval - (time.perf_counter() - start)))
        except KeyboardInterrupt:
            print("spizoo monitor: stopped; the same command continues where it left off", flush=True)

    def finished(self) -> bool:
        """Whether there is nothing more to watch (a file monitor watches until stopped)."""
        return False


class BridgeMonitor(Monitor):
    """Classifies the frames of a karabo-bridge stream at ``endpoint`` into ``out`` as trains arrive (see
    the module docstring).

    Args:
        view: the views of the stacked modules (:class:`~spizoo.data.frames.ViewFinder`, asked once).
        timeout: seconds without a train before the client reconnects.
        max_trains: stop after this many new trains (default: run until stopped).
        client: a function of (endpoint, timeout) that returns a karabo-bridge client (default: a REQ
            ``karabo_bridge.Client``).
    """

    def __init__(
        self,
        predictor: Predictor,
        endpoint: str,
        out: str | Path,
        *,
        view: ViewFinder,
        window: int = 500,
        batch_size: int = 64,
        plot: Callable | None = None,
        timeout: float = 10.0,
        max_trains: int | None = None,
        client: Callable | None = None,
        strict: bool = False,
    ):
        self.endpoint, self.timeout, self.max_trains = endpoint, timeout, max_trains
        self._client_factory = client or _bridge_client
        self._views, self._view, self.new_trains = view, None, 0
        self._open(predictor, out, BRIDGE_COLUMNS, {"results_bytes": 0, "last_train": -1, "frames": 0},
                   window, batch_size, plot, strict)  # fmt: skip
        self.client = self._client_factory(endpoint, timeout)

    def describe(self) -> str:
        return f"the karabo bridge at {self.endpoint}"

    def frames_done(self) -> int:
        return self.state["frames"]

    def finished(self) -> bool:
        return self.max_trains is not None and self.new_trains >= self.max_trains

    def poll(self, seconds: float | None = None) -> dict:
        """Trains for up to ``seconds`` (default: the interval of :meth:`run`, else 2 s): each new one
        classified; returns {new frames, notes}."""
        from extra_data import stack_detector_data  # EXtra-data (pandas, xarray): only for a live stream

        new, notes, skipped, last = 0, [], 0, None
        deadline = time.monotonic() + (seconds if seconds is not None else getattr(self, "interval", 2.0))
        while time.monotonic() < deadline and not self.finished():
            try:
                data, meta = self.client.next()
            except TimeoutError:
                notes.append(f"no train from {self.endpoint} for {self.timeout:g} s; reconnecting")
                self.client = self._client_factory(self.endpoint, self.timeout)
                break
            train = _train_id(meta)
            if train <= self.state["last_train"]:
                skipped, done_up_to = skipped + 1, self.state["last_train"]  # a replay of what was classified
                continue
            frames = stack_detector_data(data, "image.data")  # a new (pulses, modules, ss, fs) array: zeroed in place
            source = next(s for s in data if "image.data" in data[s])
            np.nan_to_num(frames, copy=False, nan=0.0)  # modules missing from the train
            if "image.mask" in data[source]:  # EuXFEL's bad-pixel bits: any of them, as for runs (RunFrames)
                frames[stack_detector_data(data, "image.mask", fillvalue=0) != 0] = 0.0
            view = self._view_of(frames)
            images = view(frames)
            self.checker.check(self.endpoint, images, FrameGeometry.of_view(view))  # strict: stops the monitor
            pulses = np.asarray(data[source].get("image.pulseId", np.arange(len(images)))).reshape(-1)
            cells = np.asarray(data[source].get("image.cellId", np.full(len(images), -1))).reshape(-1)
            for start in range(0, len(images), self.batch_size):
                stop = min(start + self.batch_size, len(images))
                keys = [[train, int(pulses[i]), int(cells[i])] for i in range(start, stop)]
                self._append(keys, images[start:stop])
            self.state["last_train"], self.state["frames"] = train, self.state["frames"] + len(images)
            self._save_state()  # after the rows: a crash in between replays this train, never skips it
            new, last = new + len(images), (train, len(images))
            self.new_trains += 1
        if skipped:
            notes.append(f"skipped {skipped} trains up to {done_up_to} classified before")
        if last is not None:
            recent = list(self.history)[-last[1] :]
            hits = np.mean([c >= 1 for c, _ in recent])
            notes.append(f"train {last[0]}: {last[1]} frames, hit rate {hits:.2f}")
        return {"new_frames": new, "notes": self._taken_warnings() + notes}

    def _view_of(self, frames: np.ndarray):
        if self._view is None:
            self._view = self._views(None)
            if self._view is None:
                raise ValueError(f"{self.endpoint}: give the detector geometry of the stream (--geometry FILE.geom)")
        shape = tuple(frames.shape[1:])
        if self._view.geometry.shape != shape:
            raise ValueError(
                f"{self.endpoint}: trains of {shape[0]} modules of {shape[1]}x{shape[2]} pixels do not match the "
                f"{self._view.geometry.name} geometry ({self._view.geometry.shape[0]} modules of "
                f"{self._view.geometry.shape[1]}x{self._view.geometry.shape[2]})"
            )
        return self._view


class RunMonitor(Monitor):
    """Classifies the frames of a European XFEL run directory while the DAQ writes it (new trains in new
    sequence files) into ``out``: each scan reopens the run (EXtra-data) and classifies the trains after the
    last one done, a row per frame with its train, pulse and memory cell as :class:`BridgeMonitor` writes.

    The run's newest train waits while the run's files are still changing (its modules may not all be
    written yet): it is classified once a newer train appears or a scan finds the files unchanged (or at
    once, with ``once``). A run that cannot be read yet is retried at the next scan and said so; a restart
    never classifies a train twice (``OUT/monitor_state.json`` keeps the last train done).

    Args:
        run: the run directory (it may have no files yet).
        source, trains: the detector and the trains by index, as for :class:`~spizoo.data.euxfel.RunFrames`.
        view: the view of the detector's modules (:class:`~spizoo.data.frames.ViewFinder`).
    """

    def __init__(
        self,
        predictor: Predictor,
        run: str | Path,
        out: str | Path,
        *,
        view: ViewFinder,
        source: str | None = None,
        trains: slice = slice(None),
        window: int = 500,
        batch_size: int = 64,
        plot: Callable | None = None,
        strict: bool = False,
    ):
        self.run_dir, self.source, self.trains, self.view = Path(run), source, trains, view
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"{self.run_dir} is not a directory")
        self._files: tuple | None = None  # the run's files at the last scan
        self._once = False
        self._open(predictor, out, BRIDGE_COLUMNS, {"results_bytes": 0, "last_train": -1, "frames": 0},
                   window, batch_size, plot, strict)  # fmt: skip

    def describe(self) -> str:
        return f"the European XFEL run {self.run_dir}" + (f" ({self.source})" if self.source else "")

    def frames_done(self) -> int:
        return self.state["frames"]

    def run(self, interval: float = 2.0, *, once: bool = False) -> None:
        self._once = once
        super().run(interval, once=once)

    def _run_files(self) -> tuple:
        """(name, size, mtime) of each of the run's files: whether the DAQ changed them since the last scan."""
        stats = [(p.name, p.stat()) for p in sorted(self.run_dir.glob("*.h5"))]
        return tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats)

    def poll(self) -> dict:
        """One scan: the trains after the last one done (the newest held back while the files change)."""
        files = self._run_files()
        settled, self._files = files == self._files or self._once, files
        if not is_run_directory(self.run_dir):
            return {"new_frames": 0, "notes": [f"no run files in {self.run_dir} yet"]}
        new = 0
        try:
            frames = RunFrames(self.run_dir, source=self.source, view=self.view, trains=self.trains)
            start = frames.first_frame_after(self.state["last_train"])
            stop = len(frames) if settled else frames.newest_train_start
            geometry = FrameGeometry.of_view(frames.view)
            for first, batch in frames.batches(self.batch_size, start, max(start, stop)):
                ids = frames.frame_ids(first, first + len(batch))
                self.checker.check(str(self.run_dir), batch, geometry)
                keys = [[int(ids[k][i]) for k in ("train_id", "pulse_id", "cell_id")] for i in range(len(batch))]
                self._append(keys, batch)
                self.state["last_train"] = int(ids["train_id"][-1])
                self.state["frames"] += len(batch)
                self._save_state()  # after the rows: a crash in between replays these trains, never skips them
                new += len(batch)
        except ServingClientError as err:
            if err.bad_input:
                raise
            return {"new_frames": new, "notes": [f"waiting for the model server, retrying next scan: {err}"]}
        except (OSError, ValueError) as err:  # a file the DAQ is still writing, or refused (strict)
            self._files = None  # read it again, and its newest train with it, at the next scan
            if isinstance(err, FrameMismatchError):
                raise
            return {"new_frames": new, "notes": [*self._taken_warnings(), f"cannot read the run yet: {err}"]}
        return {"new_frames": new, "notes": self._taken_warnings()}


def _train_id(meta: dict) -> int:
    for entry in meta.values():
        for key in ("timestamp.tid", "trainId"):
            if key in entry:
                return int(entry[key])
    raise ValueError("a karabo-bridge message without a train ID (timestamp.tid)")


def _bridge_client(endpoint: str, timeout: float):
    from karabo_bridge import Client  # ZeroMQ: only for a live stream

    return Client(endpoint, timeout=timeout)
