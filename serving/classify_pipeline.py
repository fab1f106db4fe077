"""A whole experiment classified by a Beam pipeline (``spizoo classify MODEL INPUTS… --out-dir DIR``): each
input (a CXI/HDF5 file or a European XFEL run) becomes its own results file ``DIR/<name>.h5`` (or ``.csv``,
``.cxi``), written by :func:`~spizoo.serving.classify.classify_files` as the single-process command writes
it, on any Beam runner (a Dask cluster: ``--runner DaskRunner --dask_client_address HOST:PORT``).

A results file is complete once its summary ``DIR/<name>.h5.summary.json`` is written beside it (last,
atomically); a rerun after a crash skips every input whose summary is there and redoes the others (a
results file without its summary is replaced). Each worker loads the model once (``setup``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import apache_beam as beam

from spizoo.beam_pipelines.runners import run_pipeline
from spizoo.serving.classify import classify_files

SUMMARY = ".summary.json"
SUFFIXES = (".h5", ".csv", ".cxi")


def result_paths(inputs: list[str | Path], out_dir: str | Path, suffix: str = ".h5") -> list[tuple[str, str]]:
    """(input, its results file in ``out_dir``) per input: a file's name with ``suffix`` for its extension, a
    run directory's name with ``suffix``.

    Raises:
        ValueError: an unknown ``suffix``, or two inputs that would write the same results file (naming both).
    """
    if suffix not in SUFFIXES:
        raise ValueError(f"results files end in {', '.join(SUFFIXES)}; got {suffix!r}")
    seen: dict[str, str] = {}
    out = []
    for path in map(Path, inputs):
        name = (path.name if path.is_dir() else path.stem) + suffix
        if name in seen:
            raise ValueError(f"{seen[name]} and {path} would both write {Path(out_dir) / name}; rename one")
        seen[name] = str(path)
        out.append((str(path), str(Path(out_dir) / name)))
    return out


def summary_path(results: str | Path) -> Path:
    return Path(f"{results}{SUMMARY}")


def done(out_dir: str | Path) -> int:
    """How many inputs are classified in ``out_dir`` (their summaries written): the pipeline's progress."""
    return len(list(Path(out_dir).glob(f"*{SUMMARY}"))) if Path(out_dir).is_dir() else 0


class ClassifyInput(beam.DoFn):
    """Classifies one (input, results file) unless its summary is there; emits the summary.

    Args:
        make_predictor, make_view: functions (picklable: module-level, or ``functools.partial`` of one) that
            return the :class:`~spizoo.serving.predictor.Predictor` and the
            :class:`~spizoo.data.frames.ViewFinder`, called once per worker.
        options: the keyword arguments of :func:`~spizoo.serving.classify.classify_files` (batch size,
            dataset, source, trains, strict).
    """

    def __init__(self, make_predictor: Callable, make_view: Callable, options: dict):
        self.make_predictor, self.make_view, self.options = make_predictor, make_view, options

    def setup(self):
        self.predictor, self.view = self.make_predictor(), self.make_view()

    def process(self, item):
        path, results = item
        written = summary_path(results)
        if written.exists():  # classified by an earlier run
            yield json.loads(written.read_text())
            return
        Path(results).unlink(missing_ok=True)  # written by a run killed before its summary
        summary, _ = classify_files(self.predictor, [path], results, view=self.view, **self.options)
        partial = written.with_name(written.name + ".partial")
        partial.write_text(json.dumps(summary, indent=1))
        os.replace(partial, written)
        yield summary


def run(
    inputs: list[str | Path],
    out_dir: str | Path,
    beam_args: list[str],
    *,
    make_predictor: Callable,
    make_view: Callable,
    suffix: str = ".h5",
    **options,
) -> dict:
    """Classifies every input into ``out_dir`` (see the module docstring); returns the totals over all
    inputs: inputs, frames, frames per class, single-hit fraction, the results files."""
    items = result_paths(inputs, out_dir, suffix)
    Path(out_dir).mkdir(parents=True, exist_ok=True)

    def build(pipeline):
        (
            pipeline
            | "Inputs" >> beam.Create(items)
            | "Spread" >> beam.Reshuffle()
            | "Classify" >> beam.ParDo(ClassifyInput(make_predictor, make_view, options))
        )

    run_pipeline(build, beam_args, len(items), str(out_dir))
    summaries = [json.loads(summary_path(results).read_text()) for _, results in items]
    return totals(summaries, [results for _, results in items])


def totals(summaries: list[dict], results: list[str]) -> dict:
    """The inputs' summaries added up (frames per class, single-hit fraction over all frames)."""
    frames = sum(s["frames"] for s in summaries)
    out: dict = {"inputs": len(summaries), "frames": frames, "results": results}
    if summaries and "frames_per_class" in summaries[0]:
        per_class: dict[str, int] = {}
        for s in summaries:
            for name, n in s["frames_per_class"].items():
                per_class[name] = per_class.get(name, 0) + n
        out["frames_per_class"] = per_class
        singles = sum(s["single_hit_fraction"] * s["frames"] for s in summaries)
        out["single_hit_fraction"] = round(singles / frames, 4) if frames else 0.0
        out["threshold"] = summaries[0]["threshold"]
    out["frame_check"] = sorted({s.get("frame_check", "") for s in summaries} - {""})
    return out
