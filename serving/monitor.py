"""Classify frames as the DAQ writes them, and show the hit rate while the beam is on
(seed 000 §2: "know the quality of their dataset in real time and optimize their experiment parameters").

Every ``interval`` seconds the watched directory is scanned; each file's new frames (files grow while the
DAQ writes) are classified and appended to ``OUT/monitor.csv``, and ``OUT/monitor_state.json`` records, per
file, how many frames are done and how many bytes of results are complete. A file that cannot be opened
yet (half written) is retried; after ``retries`` failures it is reported as corrupt and skipped until it
changes. A restart truncates the results to the recorded length and continues, so no frame is classified
twice and none is lost. The terminal gets one line per scan with new frames; ``OUT/monitor.png`` the
running hit rate and single-hit fraction.
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

from spizoo.data.frames import FrameFile
from spizoo.serving.client import ServingClientError
from spizoo.serving.predictor import ModelOutputError, Predictor

RESULTS, STATE, PLOT = "monitor.csv", "monitor_state.json", "monitor.png"
COLUMNS = ["file", "frame", "class", "single_hit_score", "single_hit"]
HISTORY = 100_000  # frames kept for the plot


class Monitor:
    """Watches ``directory`` for files matching ``pattern`` and classifies their new frames into ``out``.

    ``plot(classes, single_hit, path, window=..., times=...)``, when given, draws ``OUT/monitor.png`` after
    each scan with new frames (``spizoo monitor`` passes its hit-rate figure); ``times`` are the POSIX seconds
    at which each frame was classified (NaN for frames classified before a restart).
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
    ):
        self.predictor, self.directory, self.out = predictor, Path(directory), Path(out)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"{self.directory} is not a directory")
        self.pattern, self.window, self.batch_size = pattern, window, batch_size
        self.retries, self.dataset, self._plot = retries, dataset, plot
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = self.out / RESULTS
        self.state = {"results_bytes": 0, "files": {}}
        if (self.out / STATE).exists():
            self.state = json.loads((self.out / STATE).read_text())
        self.history: deque = deque(maxlen=HISTORY)  # (class, single hit) per frame, in processing order
        self.times: deque = deque(maxlen=HISTORY)  # when each frame of the history was classified (for the plot)
        self._resume()

    def _resume(self) -> None:
        """Drops results written after the last saved state (a crash between the two), reloads the history."""
        if not self.results.exists():
            self.results.write_text(",".join(COLUMNS) + "\n")
            self.state["results_bytes"] = self.results.stat().st_size
            self._save_state()
            return
        with open(self.results, "r+b") as f:
            f.truncate(self.state["results_bytes"])
        with open(self.results, newline="") as f:
            for row in csv.DictReader(f):
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
                with FrameFile(path, self.dataset) as frames:
                    entry["corrupt"] = False
                    for first, batch in frames.batches(self.batch_size, entry["done"]):
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
            except (OSError, ValueError) as err:  # half written, still growing, or damaged
                self._failed(name, entry, err, notes)
        return {"new_frames": new, "notes": notes}

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
        outputs = self.predictor.predict(frames)
        if "single_hit_score" not in outputs:
            raise ModelOutputError(f"spizoo monitor needs a hit classifier; this model gives {sorted(outputs)}")
        classes = np.asarray(outputs["classes"])
        scores = np.asarray(outputs["single_hit_score"])
        single = scores >= self.predictor.threshold
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        now = time.time()
        for i in range(len(frames)):
            writer.writerow([name, first + i, int(classes[i]), f"{scores[i]:.6f}", int(single[i])])
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
        done = sum(e["done"] for e in self.state["files"].values())
        if not recent:
            return {"frames": done, "hit_rate": 0.0, "single_hit_fraction": 0.0}
        classes = np.array([c for c, _ in recent])
        return {
            "frames": done,
            "hit_rate": float((classes >= 1).mean()),
            "single_hit_fraction": float(np.mean([s for _, s in recent])),
        }

    def plot(self) -> Path | None:
        if not self.history or self._plot is None:
            return None
        classes = np.array([c for c, _ in self.history])
        single = np.array([s for _, s in self.history])
        return self._plot(classes, single, self.out / PLOT, window=self.window, times=np.array(self.times, float))

    def run(self, interval: float = 2.0, *, once: bool = False) -> None:
        """Scans every ``interval`` seconds until interrupted (or once), printing a line per scan with news."""
        print(f"spizoo monitor: watching {self.directory}/{self.pattern} with {self.predictor.description}")
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
                if once:
                    return
                time.sleep(max(0.0, interval - (time.perf_counter() - start)))
        except KeyboardInterrupt:
            print("spizoo monitor: stopped; the same command continues where it left off", flush=True)
