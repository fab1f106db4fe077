"""Stand-ins for benchmarks where the content does not change the cost: a run directory holding an untrained
model at full size, and a mock European XFEL AGIPD-1M run with its CrystFEL geometry."""

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


def mock_agipd_run(root: Path, frames: int = 0, mean: float = 0.03) -> tuple[Path, Path]:
    """``root/r0238``, EXtra-data's mock calibrated AGIPD-1M run (64 trains of 64 frames) with Poisson counts
    of ``mean`` in its first ``frames`` frames, and ``root/agipd.geom``, its geometry."""
    import h5py
    from extra_data.tests import make_examples

    from spizoo.sim.geometry import Geometry

    data = Path(root) / "r0238"
    data.mkdir()
    make_examples.make_spb_run(str(data), raw=False)
    rng = np.random.default_rng(0)
    for m in range(16) if frames else ():
        with h5py.File(data / f"CORR-R0238-AGIPD{m:02d}-S00000.h5", "r+") as f:
            group = f[f"INSTRUMENT/SPB_DET_AGIPD1M-1/DET/{m}CH0:xtdf/image"]
            group["data"][:frames] = rng.poisson(mean, (frames, 512, 128))
    return data, Geometry.named("AGIPD-1M").write_crystfel(Path(root) / "agipd.geom")
