import csv
import dataclasses
import json

import numpy as np
import pytest

from spizoo import experiment
from spizoo.beam_pipelines import generate, ingest
from spizoo.beam_pipelines.config import DatasetConfig
from spizoo.commands import simulate
from spizoo.data import schema, tfrecord
from spizoo.data.cxi import read_extras
from spizoo.data.euxfel import RunFrames
from spizoo.data.frames import FrameFile
from spizoo.models import load_model, training
from spizoo.sim.geometry import Geometry, View

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
        simulate.simulate(config.__class__(**{**config.__dict__, "seed": i}), n, root / f"run_{i}", workers=1)
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
    geometries = []
    for f in files:
        with FrameFile(f) as frames:
            geometries.append(frames.geometry(0))
    angles = [g.pixel_angle_rad for g in geometries]
    assert info["sampling"]["pixel_angle_rad"] == [min(angles), max(angles)]  # each file's first frame
    assert info["stats"]["values"][2] is True and info["stats"]["values"][0] == 0.0
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
    # A rerun gives the same bytes (training on ingested data: the next test).
    ingest.run(config, tmp_path / "b", IN_MEMORY)
    for shard in sorted((tmp_path / "a").glob("real-*")):
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes()


def _training_view(directory):
    """(split, image bytes, label) of every record, in shard and record order: all that training reads."""
    out = []
    for shard in sorted(directory.glob("*.tfrecord-*")):
        split = shard.name.split(".tfrecord-")[0].rsplit("-", 1)[1]
        with open(shard, "rb") as f:
            for record in tfrecord.read_records(f, shard):
                ex = schema.decode_example(record)
                out.append((split, ex[schema.IMAGE].tobytes(), ex[schema.LABEL]))
    return out


def test_ingested_frames_train_exactly_like_the_generated_dataset_of_the_same_patterns(files, tmp_path):
    # run_0000.cxi holds patterns 0-39 of seed 0, four per particle model: `spizoo generate` of that config makes
    # the same patterns. Ingested in units of 4 frames (one particle model each), with their true labels, and an
    # ingest seed whose split of every unit is generate's split of that model (one shard per split), the two
    # datasets must present training with the same images, labels, order and statistics, so train identically.
    sim_config = experiment.load(
        "configs/quickstart.yaml",
        [
            "sim.detector.pixels=[32,32]",
            "sim.patterns_per_model=4",
            "dataset.patterns=40",
            "dataset.splits={train: 0.7, validation: 0.3}",
            "dataset.shards={train: 1, validation: 1}",
        ],
    )
    generated, _ = generate.run(sim_config, tmp_path / "generated", IN_MEMORY)
    labels = tmp_path / "labels.csv"
    assert len(_labels_csv(files[:1], labels, keep=lambda i: True)) == 40
    base = ingest.make_config(files[:1], labels=str(labels), dataset=sim_config.dataset, unit_size=4)
    source = ingest.IngestSource(base)
    assert [u[2] // 4 for u in source.units()] == list(range(10))  # unit i = particle model i
    for seed in range(10_000):
        source.config = dataclasses.replace(base, seed=seed)
        if all(source.split(u) == generate.split_of(sim_config, u[0]) for u in source.units()):
            break
    else:
        pytest.fail("no ingest seed splits the frame blocks as generate splits the particle models")
    ingested, _ = ingest.run(source.config, tmp_path / "ingested", IN_MEMORY)
    for split in ("train", "validation"):
        assert ingested["splits"][split]["files"] == generated["splits"][split]["files"]
        assert ingested["splits"][split]["classes"] == generated["splits"][split]["classes"]
        assert generated["splits"][split]["examples"] > 0
    view = _training_view(tmp_path / "ingested")
    assert len(view) == 40 and view == _training_view(tmp_path / "generated")  # byte-equal images, same labels
    for name in ("train_mean.npy", "train_std.npy"):  # Beam may merge the partial sums in another order
        np.testing.assert_allclose(np.load(tmp_path / "ingested" / name), np.load(tmp_path / "generated" / name), 1e-6)

    train_config = experiment.load(
        "configs/quickstart.yaml",
        [
            "data.crop=24",
            "data.batch_size=8",
            "train.epochs=2",
            "train.mixed_precision=float32",
            "train.deterministic=true",
            "model.options={stack_blocks: [1, 1]}",
        ],
    )
    on_generated = training.train(train_config, tmp_path / "generated", tmp_path / "run_generated")
    on_ingested = training.train(train_config, tmp_path / "ingested", tmp_path / "run_ingested")
    assert set(on_ingested["final"]) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    # The same to float tolerance (1e-4 relative: the statistics above may differ in their last bit).
    assert on_ingested["final"] == pytest.approx(on_generated["final"], rel=1e-4, abs=1e-6)
    histories = [list(csv.DictReader((tmp_path / r / "history.csv").open())) for r in ("run_generated", "run_ingested")]
    assert len(histories[1]) == 2
    for a, b in zip(*histories, strict=True):
        assert {k: float(v) for k, v in b.items()} == pytest.approx({k: float(v) for k, v in a.items()}, rel=1e-4)
    reference = load_model(tmp_path / "run_generated" / "last.keras")
    model = load_model(tmp_path / "run_ingested" / "last.keras")
    for a, b in zip(reference.weights, model.weights, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


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


def test_a_european_xfel_run_is_ingested_through_its_geometry(euxfel_run, tmp_path):
    geom = Geometry.named("AGIPD-1M").write_crystfel(tmp_path / "agipd.geom")
    config = ingest.make_config(
        [str(euxfel_run)], labels=None, dataset=DatasetConfig(name="real"), geometry=str(geom), bin=8,
        pixels=(32, 32), trains="0:2", unit_size=64,
    )  # fmt: skip
    info, _ = ingest.run(config, tmp_path / "out", IN_MEMORY)
    assert sum(s["examples"] for s in info["splits"].values()) == 128 and info["image_shape"] == [32, 32]
    assert info["sampling"] == {"pixel_angle_rad": [200e-6 * 8 / 0.5] * 2}  # 8 AGIPD pixels at the default 0.5 m
    images = {}
    for shard in sorted((tmp_path / "out").glob("*.tfrecord-*")):
        for record in tfrecord.read_records(open(shard, "rb")):
            ex = schema.decode_example(record)
            images[int(str(ex["key"]).split("/")[-1])] = ex["image"]
    frames = RunFrames(euxfel_run, view=View(Geometry.from_crystfel(geom), (32, 32), 8), trains=slice(0, 2))
    np.testing.assert_array_equal(np.stack([images[i] for i in range(128)]), frames.read(0, 128))
    with pytest.raises(ValueError, match="expected START:STOP train indices such as 0:100, got 'x'"):
        ingest.make_config([str(euxfel_run)], labels=None, dataset=DatasetConfig(name="real"), trains="x")
