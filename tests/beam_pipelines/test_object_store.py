"""spizoo generate into an S3 object store: a real S3 server (moto's, on 127.0.0.1, started and stopped here)
gets the bytes a local run writes; the completion marker (dataset_info.json) comes last, an unfinished
publish is completed by the rerun, and objects spizoo did not leave are never replaced."""

import pytest
from conftest import CLASSIFIER, IN_MEMORY

from spizoo import cli
from spizoo.beam_pipelines import generate, storage
from spizoo.experiment import load

boto3 = pytest.importorskip("boto3")  # the dev extra installs both; a bare install has neither
moto_server = pytest.importorskip("moto.server")

BUCKET = "spizoo-test"


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch):
    """An empty bucket; credentials in the environment (as on a cluster), the endpoint a Beam option."""
    for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client, [f"--s3_endpoint_url={endpoint}"]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _objects(client, prefix: str) -> dict[str, bytes]:
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    return {k[len(prefix) :]: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def _local(root) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ds"
    generate.run(load("configs/quickstart.yaml", CLASSIFIER), out, IN_MEMORY)
    return _local(out)


def test_generate_into_s3_writes_the_bytes_of_a_local_run(s3, reference, capsys):
    client, options = s3
    sets = [arg for override in CLASSIFIER for arg in ("--set", override)]
    argv = ["generate", "configs/quickstart.yaml", "--out", f"s3://{BUCKET}/spi/ds", *sets, *options]
    assert cli.main(argv) == 0  # the default multi-process DirectRunner: its workers write the chunks
    assert _objects(client, "spi/ds/") == reference
    assert _objects(client, "spi/ds.incomplete/") == {}
    assert f"wrote s3://{BUCKET}/spi/ds" in capsys.readouterr().out

    assert cli.main(argv) == 2  # a finished dataset is not replaced without --overwrite
    assert "holds a dataset; add --overwrite" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0
    assert _objects(client, "spi/ds/") == reference


def test_a_publish_stopped_before_its_marker_is_finished_by_the_rerun(s3, reference, monkeypatch):
    client, options = s3
    out = f"s3://{BUCKET}/ds"
    config = load("configs/quickstart.yaml", CLASSIFIER)
    write = storage.write

    def killed_at_the_marker(path, data):
        if path == f"{out}/dataset_info.json":
            raise KeyboardInterrupt  # as a SIGKILL would stop it: the shards copied, the marker not yet written
        write(path, data)

    monkeypatch.setattr(storage, "write", killed_at_the_marker)
    with pytest.raises(KeyboardInterrupt):
        generate.run(config, out, [*IN_MEMORY, *options])
    copied = _objects(client, "ds/")
    assert copied and "dataset_info.json" not in copied  # readers see no dataset (they look for the marker)
    assert {k: v for k, v in reference.items() if k in copied} == copied
    monkeypatch.setattr(storage, "write", write)

    _, counters = generate.run(config, out, [*IN_MEMORY, *options])  # the same command again
    assert counters["units_resumed"] == sum(1 for _ in generate.units(config))  # no unit simulated twice
    assert _objects(client, "ds/") == reference
    assert _objects(client, "ds.incomplete/") == {}


def test_objects_that_spizoo_did_not_leave_are_not_replaced(s3, capsys):
    client, options = s3
    client.put_object(Bucket=BUCKET, Key="theirs/notes.txt", Body=b"keep me")
    argv = ["generate", "configs/quickstart.yaml", "--out", f"s3://{BUCKET}/theirs", *options]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"s3://{BUCKET}/theirs holds objects but no dataset_info.json" in err and "Traceback" not in err
    assert _objects(client, "theirs/") == {"notes.txt": b"keep me"}


def test_training_from_s3_is_refused_with_the_fix(s3, capsys):
    _, options = s3
    assert cli.main(["train", "configs/quickstart.yaml", "--data", f"s3://{BUCKET}/ds", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "has no file system for s3://" in err and f"aws s3 sync s3://{BUCKET}/ds DIR" in err
    assert "Traceback" not in err
