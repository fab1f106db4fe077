"""``spizoo monitor --karabo-bridge`` against the bare model: sustained frames/s of a live AGIPD-1M stream.

    python benchmarks/bridge_monitor.py [--trains 8]

EXtra-data's ``karabo-bridge-serve-files`` replays a mock calibrated AGIPD-1M run (64 frames of
16 × 512 × 128 pixels per train, Poisson counts) on 127.0.0.1; :class:`spizoo.serving.monitor.BridgeMonitor`
receives, stacks, views (8 × 8 binned, 128 × 128) and classifies ``--trains`` trains with an untrained
ResNet-10 run directory. The bare rate is the same compiled model on in-memory batches in the same run.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from spizoo.commands._common import load_predictor
from spizoo.data.frames import ViewFinder
from spizoo.serving.monitor import BridgeMonitor

sys.path.insert(0, str(Path(__file__).parent))
from untrained_run import make_run, mock_agipd_run  # noqa: E402

SERVER = Path(sys.executable).with_name("karabo-bridge-serve-files")
DET = "SPB_DET_AGIPD1M-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trains", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root, 128)
        data, geom = mock_agipd_run(root, 64 * args.trains)
        rng = np.random.default_rng(1)
        predictor = load_predictor(str(run))
        batch = rng.poisson(2.0, (64, 128, 128)).astype(np.float32)
        predictor.predict(batch)
        start = time.perf_counter()
        for _ in range(args.trains):
            predictor.predict(batch)
        bare = 64 * args.trains / (time.perf_counter() - start)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [str(SERVER), str(data), f"tcp://127.0.0.1:{port}", "--source", f"{DET}/DET/*", "--key", "image.[dcmp]*"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            view = ViewFinder(geom, pixels=(128, 128), bin=8)
            monitor = BridgeMonitor(predictor, f"tcp://127.0.0.1:{port}", root / "live", view=view, timeout=120)
            monitor.max_trains = 1
            monitor.poll(seconds=600)  # the first train: the server's start-up and the view's set-up
            monitor.max_trains, monitor.new_trains = args.trains, 0
            start = time.perf_counter()
            while not monitor.finished():
                monitor.poll(seconds=600)
            live = monitor.frames_done() - 64
            live_rate = live / (time.perf_counter() - start)
        finally:
            server.kill()
            server.wait()
    ratio = live_rate / bare
    print(f"AGIPD-1M stream, {args.trains} trains of 64 frames, 8x8-binned to 128x128, untrained ResNet-10")
    print(f"{'path':<40}{'frames/s':>10}")
    print(f"{'bare model, in-memory batches of 64':<40}{bare:>10.0f}")
    print(f"{'spizoo monitor --karabo-bridge':<40}{live_rate:>10.0f}")
    print(f"{'monitor / bare':<40}{ratio:>10.2f}")
    print(f"{'trains/s (EuXFEL delivers 10)':<40}{live_rate / 64:>10.2f}")
    print(
        json.dumps(
            {
                "benchmark": "bridge_monitor",
                "trains": args.trains,
                "bare_fps": round(bare, 1),
                "monitor_fps": round(live_rate, 1),
                "ratio": round(ratio, 3),
                "trains_per_second": round(live_rate / 64, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
