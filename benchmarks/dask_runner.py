"""Patterns/s of ``spizoo generate`` on Beam's DaskRunner (a ``dask.distributed`` LocalCluster of one worker
process per core, one thread each, started before the clock runs) against the local DirectRunner
(multi-processing, one worker per core), on the same config in the same run.

    python benchmarks/dask_runner.py [--patterns 20000] [--config configs/quickstart.yaml]

Both write the same files (checked byte for byte). Prints a table, then one JSON line.
"""

from __future__ import annotations

import os

os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse  # noqa: E402
import filecmp  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from spizoo.beam_pipelines import generate  # noqa: E402
from spizoo.experiment import load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patterns", type=int, default=20000)
    parser.add_argument("--config", default="configs/quickstart.yaml")
    args = parser.parse_args()
    from distributed import LocalCluster  # dask: only for this benchmark

    logging.getLogger("distributed").setLevel(logging.ERROR)
    config = load(args.config, [f"dataset.patterns={args.patterns}"])
    workers = os.cpu_count() or 1
    units = len(generate.units(config))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        generate.run(config, tmp / "direct", [f"--direct_num_workers={workers}"])
        direct_s = time.perf_counter() - start
        with LocalCluster(
            n_workers=workers, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            start = time.perf_counter()
            generate.run(
                config, tmp / "dask", ["--runner", "DaskRunner", "--dask_client_address", cluster.scheduler_address]
            )
            dask_s = time.perf_counter() - start
        names = sorted(p.name for p in (tmp / "direct").iterdir())
        identical = names == sorted(p.name for p in (tmp / "dask").iterdir()) and all(
            filecmp.cmp(tmp / "direct" / n, tmp / "dask" / n, shallow=False) for n in names
        )
    direct_rate, dask_rate = args.patterns / direct_s, args.patterns / dask_s
    print(f"spizoo generate: {args.patterns} patterns ({units} units) of {args.config}, {workers} workers")
    print(f"{'runner':<46}{'seconds':>10}{'patterns/s':>12}")
    print(f"{'DirectRunner (multi_processing)':<46}{direct_s:>10.1f}{direct_rate:>12.0f}")
    print(f"{'DaskRunner (LocalCluster, 1 thread a process)':<46}{dask_s:>10.1f}{dask_rate:>12.0f}")
    print(f"{'Dask / Direct':<46}{'':>10}{dask_rate / direct_rate:>12.2f}")
    print(f"{'files byte-identical':<46}{str(identical):>22}")
    print(
        json.dumps(
            {
                "benchmark": "dask_runner",
                "patterns": args.patterns,
                "units": units,
                "workers": workers,
                "direct_s": round(direct_s, 1),
                "dask_s": round(dask_s, 1),
                "dask_over_direct": round(dask_rate / direct_rate, 3),
                "identical": identical,
            }
        )
    )


if __name__ == "__main__":
    main()
