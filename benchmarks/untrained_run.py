"""A run directory holding an untrained model at full size, for benchmarks where weights do not change the cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spizoo import experiment
from spizoo.core.config import dump_config
from spizoo.models import registry


def make_run(root: Path, size: int = 128, name: str = "resnet10_classifier") -> Path:
    """``root/run`` with config, identity dataset statistics and an untrained ``name`` as ``best.keras``."""
    run = Path(root) / "run"
    run.mkdir(parents=True)
    config = experiment.load("configs/quickstart.yaml", [f"data.crop={size}", "model.options={}"])
    dump_config(config, run / "config.yaml")
    np.save(run / "train_mean.npy", np.zeros((size, size), np.float32))
    np.save(run / "train_std.npy", np.ones((size, size), np.float32))
    info = {"image_shape": [size, size], "stats": {"mean": "train_mean.npy", "std": "train_std.npy"}, "splits": {}}
    (run / "dataset_info.json").write_text(json.dumps(info))
    registry.build(name, input_shape=(size, size, 1)).save(run / "best.keras")
    return run
