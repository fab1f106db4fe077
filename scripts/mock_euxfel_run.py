"""A mock European XFEL run that holds simulated patterns: for trying spizoo's run and stream paths offline.

    python scripts/mock_euxfel_run.py out/agipd/patterns.cxi out/r0238 [--trains 4]

EXtra-data's own ``make_spb_run`` writes the run (calibrated AGIPD-1M: 16 module files of 64 trains of
64 frames, with its real layout and indexes); the first ``--trains`` trains' frames are then filled,
frame by frame and module by module, with the module-stacked patterns of a ``spizoo simulate`` CXI file
made on AGIPD-1M (``configs/sim_spi_agipd.yaml``), repeated as needed, and their masks. The other trains
stay empty (zeros).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

DET = "SPB_DET_AGIPD1M-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("patterns", help="a spizoo simulate CXI file of AGIPD-1M frames (n, 16, 512, 128)")
    parser.add_argument("out", help="the run directory to create")
    parser.add_argument("--trains", type=int, default=4, help="trains to fill with the patterns (of 64)")
    args = parser.parse_args()
    from extra_data.tests import make_examples

    with h5py.File(args.patterns, "r") as f:
        data = f["entry_1/instrument_1/detector_1/data"]
        if data.shape[1:] != (16, 512, 128):
            raise SystemExit(f"{args.patterns}: frames of shape {data.shape[1:]}, not AGIPD-1M's (16, 512, 128)")
        frames = data[()]
        masks = f["entry_1/instrument_1/detector_1/mask"][()]
    out = Path(args.out)
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new directory")
    out.mkdir(parents=True)
    make_examples.make_spb_run(str(out), raw=False)
    n = 64 * min(args.trains, 64)
    order = np.arange(n) % len(frames)
    for m in range(16):
        with h5py.File(out / f"CORR-R0238-AGIPD{m:02d}-S00000.h5", "r+") as f:
            group = f[f"INSTRUMENT/{DET}/DET/{m}CH0:xtdf/image"]
            group["data"][:n] = frames[order, m]
            group["mask"][:n] = masks[order, m]
    print(f"wrote {out}: {n} frames of {args.patterns} in trains 10000-{10000 + n // 64 - 1} (of 64 trains)")


if __name__ == "__main__":
    main()
