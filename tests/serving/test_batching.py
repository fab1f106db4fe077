import threading

import numpy as np
import pytest

from spizoo.serving.batching import Batcher, BatchingParameters


def test_concurrent_requests_merge_into_batches_and_split_back():
    sizes = []

    def fn(inputs):
        sizes.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    batcher = Batcher(fn, BatchingParameters(max_batch_size=8, batch_timeout_micros=50_000, num_batch_threads=1))
    results = {}

    def call(i):
        results[i] = batcher.submit({"x": np.full((1, 3), float(i))})["y"]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    batcher.close()
    assert all(np.array_equal(results[i], np.full((1, 3), 2.0 * i)) for i in range(16))
    assert max(sizes) > 1 and sum(sizes) == 16 and max(sizes) <= 8


def test_a_failing_batch_fails_its_requests_only():
    def fn(inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"]}

    batcher = Batcher(fn, BatchingParameters(max_batch_size=4, batch_timeout_micros=0))
    with pytest.raises(ValueError, match="negative"):
        batcher.submit({"x": np.array([-1.0])})
    assert batcher.submit({"x": np.array([3.0])})["y"].tolist() == [3.0]
    big = batcher.submit({"x": np.arange(10.0)})  # larger than max_batch_size: runs alone
    assert big["y"].tolist() == list(range(10))
    batcher.close()
    with pytest.raises(ValueError, match="must be positive"):
        BatchingParameters(max_batch_size=0)
