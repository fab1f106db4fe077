"""``spizoo predict``: the frames of a CXI/HDF5 file through a model server, one row per frame."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

from spizoo.commands._common import Progress, add_dataset, add_strict, input_file, output_file, quoted
from spizoo.core.labels import names_for
from spizoo.data.frames import FrameFile
from spizoo.serving.classify import warn_line
from spizoo.serving.predictor import Predictor, from_server

DESCRIPTION = """\
    Send every frame of FILE (a CXI file's /entry_1/data_1/data, or --dataset in a plain HDF5 file)
    to SERVER's serving_default signature. With --out, write one row per frame as CSV; without it,
    print the first rows and the frames per class (--out for all rows). The same path as spizoo
    classify with a server URL as MODEL, which writes a results file with a summary instead.

    The frames must be of the size the model was trained on (or larger: its centre is cropped), e.g.
    the 64×64 frames of configs/quickstart.yaml for the model of `spizoo train configs/quickstart.yaml`.

    example:
      spizoo predict --server http://127.0.0.1:8501 --model hits out/sim/patterns.cxi
      spizoo predict --server grpc://127.0.0.1:8500 --model hits out/sim/patterns.cxi --out pred.csv
      spizoo predict --server http://127.0.0.1:8501 --model hits run_0042.h5 --dataset /data/frames
    """
PREVIEW_ROWS = 5  # rows printed without --out
SCHEMES = ("http://", "https://", "grpc://")
INTERRUPTED = "interrupted; no rows were written (the same command starts afresh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CXI or HDF5 file of frames")
    parser.add_argument("--server", required=True, help="http://HOST:PORT (REST) or grpc://HOST:PORT (gRPC)")
    parser.add_argument("--model", required=True, help="model name on the server")
    add_dataset(parser)
    add_strict(parser)
    parser.add_argument("--batch-size", type=int, default=16, help="frames per request")
    parser.add_argument("--out", help="CSV file for all rows, one per frame (default: print a preview)")


def run(args: argparse.Namespace) -> dict:
    input_file(args.file, "FILE", suggest="*.cxi")
    if args.out:
        output_file(args.out, "--out", example="predictions.csv")
    if not args.server.startswith(SCHEMES) or "/" in args.server.split("://", 1)[1].strip("/"):
        raise ValueError(
            f"--server {args.server}: give the server's URL, http://HOST:PORT (REST) or grpc://HOST:PORT (gRPC), "
            "e.g. http://127.0.0.1:8501, and the model's name with --model"
        )
    predictor = from_server(f"{args.server.rstrip('/')}/{args.model}")
    rows = predict_file(
        predictor, args.file, batch_size=args.batch_size, out=args.out, dataset=args.dataset, strict=args.strict
    )
    summary = {"frames": len(rows), "out": args.out}
    if rows and "classes" in rows[0]:
        classes = [r["classes"] for r in rows]
        width = len(rows[0]["probabilities"]) if isinstance(rows[0].get("probabilities"), list) else 0
        try:
            names = names_for(width)
        except ValueError:  # another kind of classifier: its class numbers
            names = None
        summary["frames_per_class"] = {
            (names[c] if names and 0 <= c < len(names) else str(c)): classes.count(c) for c in sorted(set(classes))
        }
    if not args.out:
        summary["first_rows"] = rows[:PREVIEW_ROWS]
        if not args.json:
            print(preview(rows), flush=True)
    return summary


def preview(rows: list[dict], count: int = PREVIEW_ROWS) -> str:
    """The first ``count`` rows, one compact JSON object a line (floats to 4 significant digits), and how
    many more there are."""

    def short(value):
        if isinstance(value, float):
            return float(f"{value:.4g}")
        return [short(v) for v in value] if isinstance(value, list) else value

    lines = [json.dumps({k: short(v) for k, v in row.items()}) for row in rows[:count]]
    if len(rows) > count:
        lines.append(f"… and {len(rows) - count:,} more rows; --out FILE.csv writes all {len(rows):,}")
    return "\n".join(lines)


def summary_line(summary: dict) -> str:
    where = f" into {summary['out']}" if summary["out"] else ""
    counts = summary.get("frames_per_class")
    per_class = "; frames per class: " + ", ".join(f"{c} {n:,}" for c, n in counts.items()) if counts else ""
    return f"{summary['frames']:,} frames predicted{where}{per_class}"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    model = f"{args.server.rstrip('/')}/{args.model}"
    results = Path(args.file).with_suffix(".results.h5").name
    return [
        ("server", f"{model} ({'gRPC' if model.startswith('grpc') else 'REST'})"),
        ("rows", summary["out"] or "above (a preview); --out FILE.csv writes them all"),
        (
            "next",
            f"spizoo classify {quoted(model)} {quoted(args.file)}"
            + (f" --dataset {quoted(args.dataset)}" if args.dataset else "")
            + f" --out {quoted(results)}   (a results file, its summary and a hit-rate plot)",
        ),
    ]


def predict_file(
    predictor: Predictor,
    path: str | Path,
    *,
    batch_size: int = 16,
    out: str | Path | None = None,
    dataset: str | None = None,
    strict: bool = False,
) -> list[dict]:
    """One row per frame of ``path`` (its image stack ``dataset``, default the CXI locations): frame index
    and the model's outputs (vectors as lists). The frames are checked against what the model was trained
    on (:mod:`spizoo.data.frame_check`; ``strict``: refused, else a warning).

    With ``out``, the rows are also written as CSV (to ``out.partial``, renamed when complete; nothing is
    left behind on failure).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    rows = []
    checker = predictor.frame_checker(strict=strict, warn=warn_line)
    with FrameFile(path, dataset) as stack:
        total = -(-len(stack) // batch_size)
        batches = Progress(stack.batches(batch_size), total=total, desc="predict", unit="batch", leave=False)
        for start, frames in batches:
            checker.check(str(path), frames, stack.geometry)
            outputs = predictor.predict(frames)
            for i in range(len(frames)):
                row = {"frame": start + i}
                for key, value in sorted(outputs.items()):
                    v = np.asarray(value[i])
                    row[key] = v.tolist() if v.ndim else v.item()
                rows.append(row)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(f"{out}.partial")
        try:
            with open(partial, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["frame"])
                writer.writeheader()
                writer.writerows(rows)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return rows
