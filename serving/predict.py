"""``spizoo predict``: the frames of a CXI/HDF5 file through a model server, batch by batch."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spizoo.data.frames import FrameFile
from spizoo.serving.client import Client


def predict_file(
    server: str, model: str, path: str | Path, *, batch_size: int = 16, out: str | Path | None = None
) -> list[dict]:
    """One row per frame of ``path``: frame index and the model's outputs (vectors as lists).

    With ``out``, the rows are also written as CSV (to ``out.partial``, renamed when complete).
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    client = Client(server)
    rows = []
    with FrameFile(path) as stack:
        for start, frames in tqdm(stack.batches(batch_size), desc="predict", unit="batch", leave=False):
            outputs = client.predict(frames, model)
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
