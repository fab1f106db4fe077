"""``spizoo predict``: the frames of a CXI/HDF5 file through a model server, one row per frame."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spizoo.data.frames import FrameFile
from spizoo.serving.predictor import Predictor, from_server

DESCRIPTION = """\
    Send every frame of FILE (its /entry_1/data_1/data) to SERVER's serving_default signature and
    print one row per frame (or write them as CSV with --out). The same path as spizoo classify with
    a server URL as MODEL, which writes a results file with a summary instead.

    example:
      spizoo predict --server http://127.0.0.1:8501 --model hits out/spi/patterns.cxi
      spizoo predict --server grpc://127.0.0.1:8500 --model hits out/spi/patterns.cxi --out pred.csv
    """


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CXI or HDF5 file of frames")
    parser.add_argument("--server", required=True, help="http://HOST:PORT (REST) or grpc://HOST:PORT")
    parser.add_argument("--model", required=True, help="model name on the server")
    parser.add_argument("--batch-size", type=int, default=16, help="frames per request")
    parser.add_argument("--out", help="CSV file for the results")


def run(args: argparse.Namespace) -> dict:
    predictor = from_server(f"{args.server.rstrip('/')}/{args.model}")
    rows = predict_file(predictor, args.file, batch_size=args.batch_size, out=args.out)
    if not args.out:
        print(json.dumps(rows, indent=2))
    summary = {"frames": len(rows), "out": args.out}
    if rows and "classes" in rows[0]:
        classes = [r["classes"] for r in rows]
        summary["frames_per_class"] = {str(c): classes.count(c) for c in sorted(set(classes))}
    return summary


def summary_line(summary: dict) -> str:
    where = f" into {summary['out']}" if summary["out"] else ""
    return f"{summary['frames']} frames predicted{where}"


def predict_file(
    predictor: Predictor, path: str | Path, *, batch_size: int = 16, out: str | Path | None = None
) -> list[dict]:
    """One row per frame of ``path``: frame index and the model's outputs (vectors as lists).

    With ``out``, the rows are also written as CSV (to ``out.partial``, renamed when complete).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    rows = []
    with FrameFile(path) as stack:
        for start, frames in tqdm(stack.batches(batch_size), desc="predict", unit="batch", leave=False):
            outputs = predictor.predict(frames)
            for i in range(len(frames)):
                row = {"frame": start + i}
                for key, value in sorted(outputs.items()):
                    v = np.asarray(value[i])
                    row[key] = v.tolist() if v.ndim else v.item()
                rows.append(row)
    if out is not None:
        partial = f"{out}.partial"
        with open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["frame"])
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, out)
    return rows
