"""The process pool of sim/parallel.py: a Ctrl-C while its workers start is not lost."""

import os
import signal

import pytest

from spizoo.sim import parallel


def test_a_ctrl_c_while_workers_start_is_raised_once_they_have_started():
    # Before: SIGINT was ignored while the workers started (seconds on a loaded machine), and a Ctrl-C then
    # was lost: the run went on to the end. Now it is held back and raised when the window closes.
    reached_end = False
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, wherever pytest runs
    with pytest.raises(KeyboardInterrupt):
        with parallel._children_ignore_sigint():
            os.kill(os.getpid(), signal.SIGINT)  # as the terminal sends it, to the whole process group
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # what the started workers inherit
        reached_end = True
    assert not reached_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    signal.signal(signal.SIGINT, previous)
