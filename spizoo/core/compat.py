"""Workarounds of upstream defects, each in one place, applied in a scope and undone after it.

Each names the upstream issue and the versions it was checked on; ``tests/core/test_compat.py`` checks that
the defect is still there (or the patched code still has the shape the workaround expects), so that a
release that fixes or changes it fails a test and the workaround can be dropped. TensorFlow and Keras are
imported inside the functions: the foundation loads without them.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

KERAS_CHECKED = ("3.15",)
"""Keras minor versions the workarounds were checked on (setup.py pins the same range)."""


@contextlib.contextmanager
def keras_multi_worker_fit(model, dataset) -> Iterator[None]:
    """Lets Keras 3's ``fit`` run under ``MultiWorkerMirroredStrategy`` while the scope is open.

    keras-team/keras#20585 and tensorflow/tensorflow#72388 (checked on Keras 3.15, TensorFlow 2.21, by the
    slow two-worker test). Two defects: ``fit`` builds the model from a first batch that it all-reduces
    across workers, which raises on the distributed batch, so the model is built here from a local batch
    (variable shapes do not depend on the values); and each step averages its scalar metrics "along axis 0",
    which scalars do not have, so scalar means are taken over replicas alone (the same value).
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only when used
    from keras.src.backend.tensorflow import trainer  # loads TensorFlow: only when used

    x, y = next(iter(dataset))
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=(x, y))
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):

            def mean(v):
                rank = strategy.experimental_local_results(v)[0].shape.rank
                return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None  # built above
    trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        trainer.reduce_per_replica = original
        del model._maybe_symbolic_build  # the class's method again


def keras_multi_worker_defect_present() -> bool:
    """Whether Keras still reduces multi-worker metrics with ``axis=0`` whatever their rank (the second defect
    :func:`keras_multi_worker_fit` works around)."""
    from keras.src.backend.tensorflow import trainer  # loads TensorFlow: only when used

    source = inspect.getsource(trainer.reduce_per_replica)
    return 'strategy.reduce("MEAN", v, axis=0)' in source and hasattr(trainer, "_collective_all_reduce_multi_worker")


def beam_s3_shared_clients() -> None:
    """Makes Beam's S3 file system reuse one boto3 client per set of connection settings in this process.

    Beam's ``S3FileSystem`` (checked on Beam 2.77, boto3 1.44) builds a new boto3 session and client for every
    file it opens, creates, lists, checks or deletes, each loading botocore's service models (~0.2 s): writing
    a dataset of a hundred small files took 40 s against 1 s locally. Its ``Client`` wrapper keeps per-read
    state, so it is the boto3 client beneath that is shared (boto3 clients are thread-safe; sessions are
    not, so clients are made under a lock). For the life of the process, idempotent: Beam's workers apply it
    through :func:`spizoo.beam_pipelines.storage.use`.
    """
    import types

    from apache_beam.io.aws.clients.s3 import boto3_client  # Beam: only for s3:// paths

    if boto3_client.boto3 is None or isinstance(boto3_client.boto3, types.SimpleNamespace):
        return  # boto3 missing (spizoo's own check says so), or applied already
    boto3, clients, lock = boto3_client.boto3, {}, threading.Lock()

    class SharedSession:
        def client(self, **settings):
            key = tuple(sorted(settings.items(), key=lambda kv: kv[0]))
            with lock:
                if key not in clients:
                    clients[key] = boto3.session.Session().client(**settings)
                return clients[key]

    boto3_client.boto3 = types.SimpleNamespace(session=types.SimpleNamespace(Session=SharedSession))


def beam_s3_makes_a_client_per_call() -> bool:
    """Whether Beam's S3 client wrapper still makes a boto3 session of its own (what the workaround replaces)."""
    from apache_beam.io.aws.clients.s3 import boto3_client

    return "boto3.session.Session()" in inspect.getsource(boto3_client.Client.__init__)


def set_signature_methods(saved_model_dir: str | Path, methods: dict[str, str]) -> None:
    """Sets the ``method_name`` of signatures in ``saved_model.pb`` (TF Serving's Classify and Regress APIs
    refuse a signature whose method is ``tensorflow/serving/predict``).

    ``tf.saved_model.save`` and ``keras.export.ExportArchive`` write every signature as ``predict`` and offer no
    way to choose (tensorflow/tensorflow#38081; checked on TensorFlow 2.21). The file is written beside the
    original and renamed over it, so a crash leaves the old file or the new one, never half of one; the
    fingerprint, a checksum of the old file, is removed (it is optional).
    """
    from tensorflow.core.protobuf import saved_model_pb2  # TensorFlow's protos: only when used

    pb = Path(saved_model_dir) / "saved_model.pb"
    saved = saved_model_pb2.SavedModel.FromString(pb.read_bytes())
    for meta in saved.meta_graphs:
        for key, method in methods.items():
            if key in meta.signature_def:
                meta.signature_def[key].method_name = method
    partial = pb.with_name(pb.name + ".partial")
    partial.write_bytes(saved.SerializeToString())
    os.replace(partial, pb)
    (pb.parent / "fingerprint.pb").unlink(missing_ok=True)


STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ "  # TensorFlow's C++ INFO and WARNING lines
    r"|E\d{4} .*failed call to cuInit"  # its CUDA probe on a machine without a GPU driver
    r"|To enable the following instructions:.*rebuild TensorFlow"
    r"|INFO:"  # Beam workers' INFO lines, written before their log level applies
    r"|WARNING:root:apitools not found)"
    # Beam's local workers, directly or relayed by its job service: an unset directory they do not need, and
    # the two options the DirectRunner passes its own workers without defining them.
    r"|No semi_persistent_directory found"
    r"|Discarding unparseable args: \[\\?'--(pipeline_type_check|direct_runner_use_stacked_bundle)\\?', "
    r"\\?'--(pipeline_type_check|direct_runner_use_stacked_bundle)\\?'\]"
)
"""Lines TensorFlow (2.21) and Beam's local workers (2.77) write to the process's standard error whatever the
log level: TensorFlow before its logging is initialised (``TF_CPP_MIN_LOG_LEVEL`` does not reach them), Beam's
SDK workers before they apply ``--default_sdk_harness_log_level``."""


@contextlib.contextmanager
def quiet_stderr(noise: re.Pattern = STARTUP_NOISE) -> Iterator[None]:
    """While open, lines written to file descriptor 2 (by C++ libraries and child processes) that match
    ``noise`` are dropped; every other line goes through as it comes. Python's own ``sys.stderr`` (progress
    bars, warnings, spizoo's messages) keeps writing to the terminal directly."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    python_stderr = sys.stderr
    direct = _is_fd2(python_stderr)
    if direct:
        sys.stderr = open(os.dup(terminal), "w", buffering=1, closefd=True)  # noqa: SIM115 - closed below

    def forward():
        with open(read_end, "rb") as pipe:
            for line in pipe:
                if not noise.search(line.decode(errors="replace")):
                    os.write(terminal, line)

    thread = threading.Thread(target=forward, daemon=True)
    thread.start()
    try:
        yield
    finally:
        if direct:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(terminal, 2)  # closes the pipe's last write end this process holds
        thread.join(timeout=5)
        os.close(terminal)


def _is_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False
