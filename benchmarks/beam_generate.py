"""Patterns/s of ``spizoo generate`` (Beam, local DirectRunner on all cores) against a plain
``multiprocessing.Pool`` doing the same simulate → serialise → chunk → shard work, in one run.

    python benchmarks/beam_generate.py [--patterns 50000] [--config configs/data_spi_hits.yaml]

Both write the same shards (checked byte for byte); start-up of the workers is included in both.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import os

os.environ.update(dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"))

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from spizoo.beam_pipelines import generate  # noqa: E402
from spizoo.core.config import config_hash  # noqa: E402
from spizoo.data import tfrecord  # noqa: E402
from spizoo.experiment import load  # noqa: E402


def _pool_unit(args):
    config, unit, root = args
    examples, meta, _ = generate.unit_examples(config, unit, config_hash(config))
    path = Path(root) / f"{unit[0]:09d}.tfrecord"
    path.write_bytes(b"".join(tfrecord.frame(e) for e in examples))
    split = meta["split"]
    return (split, generate.shard_of(config, split, unit[0])), unit[0], str(path)


def pool_generate(config, out: Path, workers: int) -> None:
    chunks = out / "chunks"
    chunks.mkdir(parents=True)
    shards = defaultdict(list)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        tasks = [(config, u, str(chunks)) for u in generate.units(config)]
        for key, model, path in pool.imap_unordered(_pool_unit, tasks):
            shards[key].append((model, path))
    for (split, shard), items in shards.items():
        with open(out / generate.shard_name(config, split, shard), "wb") as f:
            for _, path in sorted(items):
                f.write(Path(path).read_bytes())
    shutil.rmtree(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patterns", type=int, default=50000)
    parser.add_argument("--config", default="configs/data_spi_hits.yaml")
    args = parser.parse_args()
    config = load(args.config, [f"dataset.patterns={args.patterns}"])
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        pool_generate(config, tmp / "pool", workers)
        pool_s = time.perf_counter() - start
        start = time.perf_counter()
        generate.run(config, tmp / "beam")
        beam_s = time.perf_counter() - start
        identical = all(
            (tmp / "beam" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "pool").glob("*.tfrecord-*")
        )
        size_gb = sum(p.stat().st_size for p in (tmp / "beam").glob("*.tfrecord-*")) / 1e9
    pool_rate, beam_rate = args.patterns / pool_s, args.patterns / beam_s
    print(f"dataset generation: {args.patterns} patterns of {args.config}, {workers} workers, {size_gb:.2f} GB written")
    print(f"{'method':<44}{'seconds':>10}{'patterns/s':>12}")
    print(f"{'multiprocessing.Pool (same work)':<44}{pool_s:>10.1f}{pool_rate:>12.0f}")
    print(f"{'spizoo generate (Beam DirectRunner)':<44}{beam_s:>10.1f}{beam_rate:>12.0f}")
    print(f"{'Beam / Pool':<44}{'':>10}{beam_rate / pool_rate:>12.2f}")
    print(f"{'shards byte-identical':<44}{str(identical):>22}")
    print(
        json.dumps(
            {
                "benchmark": "beam_generate",
                "patterns": args.patterns,
                "workers": workers,
                "pool_patterns_per_s": round(pool_rate, 1),
                "beam_patterns_per_s": round(beam_rate, 1),
                "beam_over_pool": round(beam_rate / pool_rate, 3),
                "identical": identical,
                "gigabytes": round(size_gb, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
