import json

import numpy as np
import pytest

from spizoo import experiment, simulate
from spizoo.beam_pipelines import ingest
from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.data import schema, tfrecord
from spizoo.data.cxi import read_extras
from spizoo.data.frames import FrameFile
from spizoo.models import training

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
DATASET = DatasetConfig(
    name="real", splits={"train": 0.6, "validation": 0.2, "test": 0.2}, shards={"train": 2, "validation": 1, "test": 1}
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    config = experiment.load("configs/quickstart.yaml", ["sim.detector.pixels=[32,32]", "sim.patterns_per_model=4"])
    out = []
    for i, n in enumerate((40, 24)):
        simulate.run(config.__class__(**{**config.__dict__, "seed": i}), n, root / f"run_{i}", workers=1)
        target = root / f"run_{i:04d}.cxi"
        (root / f"run_{i}" / "patterns.cxi").rename(target)
        out.append(target)
    return out


def _labels_csv(files, path, keep=lambda i: i % 3 != 0):
    rows = ["file,frame,label"]
    expected = {}
    for f in files:
        with FrameFile(f) as frames:
            n = len(frames)
        for i in range(n):
            if keep(i):
                label = int(read_extras(f, i)["label"])
                rows.append(f"{f.name},{i},{label}")
                expected[(f.name, i)] = label
    path.write_text("\n".join(rows) + "\n")
    return expected


def _key(ex):
    name = ex["param/file"][0]
    return (name.decode() if isinstance(name, bytes) else name), int(ex["param/frame"][0])


def _records(directory):
    out = {}
    for shard in sorted(directory.glob("real-*.tfrecord-*")):
        with open(shard, "rb") as f:
            for record in tfrecord.read_records(f, shard):
                ex = schema.decode_example(record)
                out[_key(ex)] = ex
    return out


def test_labelled_frames_become_the_training_schema_reproducibly(files, tmp_path):
    expected = _labels_csv(files, tmp_path / "labels.csv")
    config = ingest.make_config(files, labels=str(tmp_path / "labels.csv"), dataset=DATASET, unit_size=8)
    info, counters = ingest.run(config, tmp_path / "a", IN_MEMORY)
    assert sum(s["examples"] for s in info["splits"].values()) == len(expected)
    assert sum(v for k, v in counters.items() if k.startswith("examples_")) == len(expected)
    assert info["kind"] == "cxi" and info["image_shape"] == [32, 32] and (tmp_path / "a" / "train_mean.npy").exists()
    records = _records(tmp_path / "a")
    assert set(records) == set(expected)
    for (name, frame), ex in list(records.items())[:10]:
        assert ex[schema.LABEL] == expected[(name, frame)]
        with FrameFile(next(f for f in files if f.name == name)) as frames:
            np.testing.assert_array_equal(ex[schema.IMAGE].reshape(32, 32), frames.frame(frame))
    # Units of 8 consecutive frames go to one split each.
    by_unit = {}
    for split, s in info["splits"].items():
        for shard in s["files"]:
            for name, frame in _records_of(tmp_path / "a" / shard):
                by_unit.setdefault((name, frame // 8), set()).add(split)
    assert all(len(v) == 1 for v in by_unit.values())
    # A rerun gives the same bytes; the run trains like simulated data.
    ingest.run(config, tmp_path / "b", IN_MEMORY)
    for shard in sorted((tmp_path / "a").glob("real-*")):
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes()
    train_config = experiment.load(
        "configs/quickstart.yaml",
        [
            "data.crop=24",
            "data.batch_size=8",
            "train.epochs=1",
            "train.mixed_precision=float32",
            "model.options={stack_blocks: [1, 1]}",
        ],
    )
    summary = training.train(train_config, tmp_path / "a", tmp_path / "run")
    assert 0 <= summary["final"]["accuracy"] <= 1


def _records_of(shard):
    with open(shard, "rb") as f:
        for record in tfrecord.read_records(f, shard):
            ex = schema.decode_example(record)
            yield _key(ex)


def test_unlabelled_ingest_keeps_every_frame(files, tmp_path):
    config = ingest.make_config(files, labels=None, dataset=DATASET)
    info, _ = ingest.run(config, tmp_path / "u", IN_MEMORY)
    records = _records(tmp_path / "u")
    assert len(records) == 64 and {ex[schema.LABEL] for ex in records.values()} == {-1}
    assert json.loads((tmp_path / "u" / "dataset_info.json").read_text())["config"]["labels"] == ""


def test_bad_labels_and_inputs_are_named(files, tmp_path):
    bad = tmp_path / "bad.csv"
    for text, message in (
        ("file,frame\nx,1\n", "missing \\['label'\\]"),
        ("file,frame,label\nrun_0000.cxi,one,1\n", "line 2: frame and label must be integers"),
        ("file,frame,label\nrun_0000.cxi,1,7\n", "label must be 0-4"),
        ("file,frame,label\nother.cxi,1,1\n", "not inputs: \\['other.cxi'\\]"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            ingest.IngestSource(ingest.make_config(files, labels=str(bad), dataset=DATASET))
    with pytest.raises(FileNotFoundError, match="no such file"):
        ingest.make_config([tmp_path / "none.cxi"], labels=None, dataset=DATASET)
