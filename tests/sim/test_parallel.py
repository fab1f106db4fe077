"""Worker pools of the simulators: workers deaf to Ctrl-C, the caller never (sim/parallel.py)."""

import os
import signal
import time

import pytest

from spizoo.sim import parallel


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt here, as at a terminal (a shell's background job starts with it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _gone(pids, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_workers_ignore_ctrl_c_and_the_caller_does_not(ctrl_c_raises):
    with parallel.worker_pool(2) as pool:
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
        assert pool.apply(os.getenv, ("OMP_NUM_THREADS",)) == "1"
        pids = [p.pid for p in pool._pool]
    assert _gone(pids)


def test_ctrl_c_while_the_workers_start_is_raised_once_they_have_and_none_lingers(ctrl_c_raises, monkeypatch):
    ctx = parallel.multiprocessing.get_context("spawn")
    real_pool, started, executable = ctx.Pool, [], parallel.multiprocessing.spawn.get_executable()

    def pool_then_ctrl_c(processes):
        pool = real_pool(processes)
        started.extend(p.pid for p in pool._pool)
        os.kill(os.getpid(), signal.SIGINT)  # inside the pool's start: deferred, not lost
        return pool

    monkeypatch.setattr(ctx, "Pool", pool_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt), parallel.worker_pool(2):
        pytest.fail("the pool's user ran after a Ctrl-C")
    assert len(started) == 2 and _gone(started)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert parallel.multiprocessing.spawn.get_executable() == executable  # later spawns start Python itself
