"""How spizoo's Beam pipelines run (``generate``, ``ingest``, ``classify --out-dir``): options from the command
line (the local multi-processing DirectRunner by default; Beam's DaskRunner by its short name, with its
``--dask_*`` options), the work split for Dask, and a failed Dask run's tasks cancelled and named."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def _is_dask(runner) -> bool:
    return isinstance(runner, str) and runner.lower() in ("dask", "daskrunner", DASK_RUNNER.lower())


def _runner_of(beam_args: list[str]):
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # unparseable arguments: reported elsewhere
    try:
        return PipelineOptions(list(beam_args)).view_as(StandardOptions).runner
    finally:
        beam_logger.setLevel(level)


def _register_runner_options(beam_args: list[str]) -> bool:
    """Imports Beam's Dask runner if ``beam_args`` ask for it (its ``--dask_*`` options exist only once it is
    imported, and Beam knows it by its full name only); whether they do."""
    if not _is_dask(_runner_of(beam_args)):
        return False
    try:
        import apache_beam.runners.dask.dask_runner  # noqa: F401 - registers its options (DaskOptions)
    except ImportError as e:
        raise ImportError(f"--runner DaskRunner needs dask[distributed] installed ({e})") from e
    return True


def unknown_options(beam_args: list[str]) -> tuple[list[str], list[str]]:
    """(the arguments no Beam pipeline option parses, every option Beam knows). Beam itself only logs the
    first and runs without them."""
    _register_runner_options(beam_args)
    parsers = []
    beam_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)  # its "Discarding unparseable args" warning: the caller reports them
    try:
        PipelineOptions(list(beam_args)).get_all_options(add_extra_args_fn=parsers.append)
    finally:
        beam_logger.setLevel(level)
    _, unknown = parsers[0].parse_known_args(list(beam_args))
    return unknown, [o for action in parsers[0]._actions for o in action.option_strings]


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the command line; without ``--runner`` the local DirectRunner on all cores
    (multi-processing; never the Prism runner, which would download a binary). ``--runner DaskRunner`` is
    Beam's Dask runner, on the ``dask.distributed`` scheduler of ``--dask_client_address`` (else a local
    cluster of its own)."""
    if _register_runner_options(beam_args):
        options = PipelineOptions(list(beam_args))
        options.view_as(StandardOptions).runner = DASK_RUNNER
        return options
    options = PipelineOptions(beam_args)
    if not options.view_as(StandardOptions).runner:
        defaults = ["--runner=DirectRunner", "--direct_running_mode=multi_processing"]
        defaults += [f"--direct_num_workers={os.cpu_count() or 1}", "--default_sdk_harness_log_level=WARNING"]
        options = PipelineOptions(defaults + list(beam_args))
    return options


def dask_partitions(options: PipelineOptions, units: int) -> None:
    """Without ``--dask_npartitions`` or ``--dask_partition_size``, splits the units into twice as many tasks as
    the Dask cluster has threads (Beam's default puts up to 128 units in one task: no parallelism for small
    runs; and each task more costs tasks in the shuffles of the GroupByKeys)."""
    from apache_beam.runners.dask.dask_runner import DaskOptions

    view = options.view_as(DaskOptions)
    flat = view.get_all_options(drop_default=True, current_only=True)
    if flat.get("npartitions") or flat.get("partition_size"):
        return
    threads = os.cpu_count() or 1  # the local cluster the runner starts without an address
    if flat.get("address") or flat.get("scheduler_file"):
        import distributed

        connect = {k: v for k, v in flat.items() if k not in ("npartitions", "partition_size")}
        with distributed.Client(**connect, set_as_default=False) as client:
            threads = sum(client.nthreads().values()) or threads
    view.npartitions = max(1, min(units, 2 * threads))


def run_pipeline(build: Callable[[beam.Pipeline], None], beam_args: list[str], units: int, work: str) -> None:
    """Builds (``build(pipeline)``) and runs a pipeline of ``units`` units of work with ``beam_args``, until it
    finishes; a Dask run's connection is closed after.

    Raises:
        ChildProcessError: a Dask worker died (its retries spent): the run's other tasks are cancelled and
            waited for, and the message says that ``work`` keeps what was finished.
    """
    options = pipeline_options(list(beam_args))
    if options.view_as(StandardOptions).runner == DASK_RUNNER:
        dask_partitions(options, units)
    pipeline = beam.Pipeline(options=options)
    build(pipeline)
    result = pipeline.run()
    client = getattr(result, "client", None)  # a DaskRunner's connection (and the cluster it started, if any)
    try:
        result.wait_until_finish()
    except Exception as err:
        if client is None:
            raise
        _cancel_and_wait(result, client)
        if type(err).__name__ == "KilledWorker":  # distributed's: a task's workers died (SIGKILL, out of memory)
            raise ChildProcessError(
                f"a Dask worker died while running the pipeline ({err}); {work}/ keeps the units finished: the "
                "same command resumes from them"
            ) from None
        raise
    finally:
        if client is not None:
            client.close()


def _cancel_and_wait(result, client, timeout: float = 120.0) -> None:
    """Cancels a failed Dask run's remaining tasks and waits (up to ``timeout`` s) until the cluster runs none
    of them: a rerun started next then never meets a task of this run writing the same chunk."""
    result.cancel()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(client.processing().values()):
        time.sleep(0.2)
