"""Where a dataset pipeline's files live: local paths and URLs (``s3://``, ``gs://``, … any scheme Beam's
``FileSystems`` has a file system for) through one set of calls, and how a finished output is published.

A local or shared file system has an atomic rename: a file is written under a temporary name of its own and
renamed, and a finished output directory is renamed into place in one step, so ``OUT`` exists only complete.
An object store has neither directories nor a rename (Beam's ``rename`` copies and deletes), but an upload is
atomic: an object appears whole or not at all. There a file is uploaded under its final name, and an output
is published by copying its files into ``OUT/`` and uploading a *completion marker* last
(``dataset_info.json``): an output on an object store is complete exactly when its marker exists, and
spizoo's readers look for that file first.

Object-store credentials and endpoints come as Beam options (``--s3_endpoint_url``, ``--s3_region_name``,
``--project`` …) or the store's own environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``GOOGLE_APPLICATION_CREDENTIALS``); :func:`configure` sets them in this process and :func:`options` carries
them to the workers, which call :func:`use` in their DoFn's ``setup``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from spizoo.core import compat
from spizoo.data.files import is_url  # noqa: F401 - part of this module's calls (generate uses storage.is_url)

_OPTION_VIEWS = ("S3Options", "GoogleCloudOptions", "AzureOptions", "HadoopFileSystemOptions")


_INSTALL = {"s3": "pip install 'spizoo[s3]' (boto3)", "gs": "pip install 'apache-beam[gcp]'"}


def check(path: str, what: str) -> None:
    """Raises ``ValueError`` naming ``what`` and ``path`` if Beam cannot write there: no file system for its
    scheme here, or the store's client library missing (with the command that installs it)."""
    if not is_url(path):
        return
    scheme = str(path).split("://", 1)[0]
    install = _INSTALL.get(scheme, "see Beam's I/O connectors for the package it needs")
    try:
        FileSystems.get_filesystem(str(path))
    except ValueError:
        raise ValueError(f"{what} {path}: Beam has no file system for {scheme}:// installed here ({install})") from None
    if scheme == "s3":
        try:
            import boto3  # noqa: F401 - Beam's S3 file system fails on first use without it
        except ImportError:
            raise ValueError(f"{what} {path}: writing to s3:// needs boto3 ({install})") from None


def configure(beam_args=()) -> None:
    """Gives Beam's file systems in this process the options of the command line's Beam arguments."""
    log = logging.getLogger("apache_beam.options.pipeline_options")
    level = log.level
    log.setLevel(logging.ERROR)  # "Discarding unparseable args": the verb reports unknown options itself
    try:
        values = _filesystem_values(PipelineOptions(list(beam_args)))
    finally:
        log.setLevel(level)
    FileSystems.set_options(PipelineOptions(**values))
    _shared_clients()


def _filesystem_values(options: PipelineOptions) -> dict:
    """The file-system options set in ``options`` (credentials, endpoints, projects), as a dict."""
    from apache_beam.options import pipeline_options as po

    values = {}
    for name in _OPTION_VIEWS:
        values.update(options.view_as(getattr(po, name)).get_all_options(drop_default=True, current_only=True))
    return values


def _shared_clients() -> None:
    try:
        compat.beam_s3_shared_clients()
    except ImportError:  # Beam without its AWS module: s3:// is refused by check()
        pass


def options() -> dict:
    """The file-system options set in this process (:func:`configure`), to carry to a pipeline's workers."""
    current = FileSystems._pipeline_options
    return {} if current is None else _filesystem_values(current)


def use(values: dict) -> None:
    """In a worker (a DoFn's ``setup``): the file-system options of :func:`options`, unless some are set."""
    if FileSystems._pipeline_options is None:
        FileSystems.set_options(PipelineOptions(**values))
    _shared_clients()


def join(base: str, *parts: str) -> str:
    return FileSystems.join(str(base), *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(str(path))


def read(path: str) -> bytes:
    with FileSystems.open(str(path), compression_type="uncompressed") as f:
        return f.read()


def write(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically: on a local file system under a temporary name of this writer's
    own, then renamed (two writers of the same file, such as a task and its retry, never mix their bytes); on
    an object store in one upload."""
    path = str(path)
    if is_url(path):
        with FileSystems.create(path, compression_type="uncompressed") as f:
            f.write(data)
        return
    tmp = f"{path}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def makedirs(path: str) -> None:
    """A directory and its parents (local paths; an object store has none to make)."""
    if not is_url(path):
        os.makedirs(path, exist_ok=True)


def files(pattern: str) -> list[str]:
    """The sorted paths of the files matching a glob (``*`` within a name; on an object store ``**`` spans
    ``/``); none is an empty list."""
    if not is_url(pattern):
        import glob

        return sorted(p for p in glob.glob(str(pattern)) if os.path.isfile(p))
    return sorted(m.path for m in FileSystems.match([str(pattern)])[0].metadata_list)


def remove(path: str) -> None:
    """Removes a file or a whole directory (on an object store: every object under ``path/``); what is not
    there is no error."""
    path = str(path)
    if not is_url(path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        return
    found = files(join(path, "**"))
    if exists(path):
        found.append(path)
    if found:
        FileSystems.delete(found)


def publish(root: str, out: str, keep: list[str], marker: str, data: bytes) -> None:
    """Makes the work directory ``root`` the finished output ``out``: its files ``keep`` (names relative to
    ``root``) and ``marker`` holding ``data``, nothing else of ``root``.

    Locally the rest of ``root`` is removed, the marker written, and ``root`` renamed to ``out`` in one step.
    On an object store the ``keep`` files are copied into ``out/``, the marker is uploaded last (an ``out``
    without it is unfinished, and the same call completes it), then ``root`` is removed.
    """
    if not is_url(out):
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.name not in keep:
                    remove(entry.path)
        write(join(root, marker), data)
        os.replace(root, out)
        return
    sources = [join(root, name) for name in keep if exists(join(root, name))]
    if sources:
        FileSystems.copy(sources, [join(out, os.path.basename(s)) for s in sources])
    write(join(out, marker), data)
    remove(root)
