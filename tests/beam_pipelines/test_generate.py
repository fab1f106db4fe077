import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spizoo.beam_pipelines import generate, runners
from spizoo.data import schema, tfrecord
from spizoo.experiment import load

IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
SMALL = [
    "dataset.patterns=96",
    "sim.patterns_per_model=8",
    "sim.detector.pixels=[32,32]",
    "data.crop=32",
    "dataset.shards={train: 3, validation: 2, test: 2}",
    "dataset.splits={train: 0.6, validation: 0.2, test: 0.2}",
]


def records(path):
    with open(path, "rb") as f:
        return [schema.decode_example(r) for r in tfrecord.read_records(f, str(path))]


@pytest.fixture(scope="module")
def spi_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "spi"
    config = load("configs/quickstart.yaml", SMALL)
    info, counters = generate.run(config, out, IN_MEMORY)
    return config, out, info, counters


def test_shards_splits_and_info(spi_dataset):
    config, out, info, counters = spi_dataset
    names = sorted(p.name for p in out.glob("*.tfrecord-*"))
    assert names == sorted(
        generate.shard_name(config, s, i) for s, n in config.dataset.shards.items() for i in range(n)
    )
    assert (
        sum(v["patterns"] for v in info["splits"].values())
        == 96
        == sum(counters[f"patterns_{s}"] for s in info["splits"])
    )
    models = {}
    for split in info["splits"]:
        examples = [r for f in sorted(out.glob(f"*-{split}.tfrecord-*")) for r in records(f)]
        assert len(examples) == info["splits"][split]["examples"]
        models[split] = {r["model_index"] for r in examples}
        labels = np.bincount([r["label"] for r in examples], minlength=5)
        assert {str(k): int(v) for k, v in enumerate(labels) if v} == info["splits"][split]["classes"]
    assert not (models["train"] & models["validation"]) and not (models["train"] & models["test"])  # no leakage
    assert info["kind"] == "spi" and info["config"]["dataset"]["patterns"] == 96
    assert json.loads((out / "dataset_info.json").read_text())["config_hash"] == info["config_hash"]
    assert not list(out.parent.glob("*.incomplete"))


def test_training_statistics_are_the_per_pixel_mean_and_std(spi_dataset):
    _, out, info, _ = spi_dataset
    images = np.stack([r["image"] for f in sorted(out.glob("*-train.tfrecord-*")) for r in records(f)]).astype(
        np.float64
    )
    np.testing.assert_allclose(np.load(out / "train_mean.npy"), images.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.load(out / "train_std.npy"), images.std(axis=0), rtol=1e-4, atol=1e-5)
    assert info["stats"]["count"] == len(images)
    # what inference checks frames against (spizoo.data.frame_check): the values and the sampling
    assert info["stats"]["values"] == [images.min(), images.max(), True]
    detector, beam = info["config"]["sim"]["detector"], info["config"]["sim"]["beam"]
    assert info["sampling"] == {
        "pixel_angle_rad": [
            detector["pixel_size_um"][0] * 1e-6 / detector["distance_m"][1],
            detector["pixel_size_um"][1] * 1e-6 / detector["distance_m"][0],
        ],
        "photon_energy_eV": beam["photon_energy_eV"],
    }


def test_examples_are_the_simulated_patterns(spi_dataset):
    config, out, _, _ = spi_dataset
    from spizoo.sim import spi

    first = records(sorted(out.glob("*-train.tfrecord-*"))[0])[0]
    model, shot = (int(v) for v in first["key"].split("/")[1:3])
    p = spi.simulate_pattern(config.sim, config.seed, model * config.sim.patterns_per_model + shot)
    np.testing.assert_array_equal(first["image"], p.image)
    assert first["label"] == p.label and first["param/shape"] == [p.model.shape]


def test_one_and_two_workers_write_byte_identical_shards(spi_dataset, tmp_path):
    config, out, _, _ = spi_dataset
    generate.run(
        config,
        tmp_path / "two",
        ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )
    for shard in sorted(out.glob("*.tfrecord-*")):
        assert (tmp_path / "two" / shard.name).read_bytes() == shard.read_bytes(), shard.name


def test_msft_training_split_is_augmented_eleven_fold(tmp_path):
    overrides = [
        "dataset.patterns=12",
        "dataset.unit_size=2",
        "sim.columns=32",
        "sim.detector.pixels=[32,32]",
        "dataset.shards={train: 1, validation: 1, test: 1}",
    ]
    config = load("configs/data_msft.yaml", overrides)
    info, _ = generate.run(config, tmp_path / "msft", [*IN_MEMORY, "--direct_num_workers=1"])
    train = info["splits"]["train"]
    assert train["examples"] == 11 * train["patterns"] > 0
    for split in ("validation", "test"):
        assert info["splits"][split]["examples"] == info["splits"][split]["patterns"]
    examples = records(next((tmp_path / "msft").glob("*-train.tfrecord-*")))
    assert [e["augmentation"] for e in examples[:11]] == list(config.augment.filters)
    assert all(e["label"] == -1 and np.abs(e["target"]).max() <= 1 for e in examples)


def test_spi_training_split_gets_one_random_artefact_per_pattern_on_the_photon_log_scale(tmp_path):
    policy = ["augment={copies: 1, pick: random, scale: log10}", "dataset.augment_splits=[train]"]
    config = load("configs/quickstart.yaml", [*SMALL, *policy])
    info, _ = generate.run(config, tmp_path / "spi", IN_MEMORY)
    assert all(s["examples"] == s["patterns"] for s in info["splits"].values())  # same size as unaugmented
    train = [e for shard in sorted((tmp_path / "spi").glob("*-train.tfrecord-*")) for e in records(shard)]
    names = {e["augmentation"] for e in train}
    assert len(names) >= 5 and names <= set(config.augment.filters)
    assert all(e["image"].min() >= 0 for e in train)  # still photon counts
    validation = records(next((tmp_path / "spi").glob("*-validation.tfrecord-*")))
    assert {e["augmentation"] for e in validation} == {"none"}


def test_gzip_shards_are_gzip(tmp_path):
    config = load("configs/quickstart.yaml", [*SMALL, "dataset.compression=gzip", "dataset.patterns=16"])
    generate.run(config, tmp_path / "gz", IN_MEMORY)
    shard = next((tmp_path / "gz").glob("*.gz"))
    assert shard.read_bytes()[:2] == b"\x1f\x8b"


def test_existing_output_needs_overwrite(spi_dataset):
    config, out, _, _ = spi_dataset
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate.run(config, out, IN_MEMORY)


def test_beam_options_reach_the_pipeline():
    options = runners.pipeline_options(["--runner=FlinkRunner", "--flink_master=localhost:8081", "--parallelism=4"])
    flat = options.get_all_options()
    assert flat["runner"] == "FlinkRunner" and flat["flink_master"] == "localhost:8081" and flat["parallelism"] == 4
    flat = runners.pipeline_options([]).get_all_options()
    assert flat["runner"] == "DirectRunner" and flat["direct_running_mode"] == "multi_processing"
    assert flat["direct_num_workers"] == (os.cpu_count() or 1)
    flat = runners.pipeline_options(["--runner=DataflowRunner", "--project=p", "--region=r"]).get_all_options()
    assert flat["runner"] == "DataflowRunner" and flat["project"] == "p"


def test_a_killed_generation_leaves_no_output_and_a_rerun_gives_the_same_bytes(spi_dataset, tmp_path):
    config, out, _, _ = spi_dataset
    cmd = [sys.executable, "-m", "spizoo.cli", "generate", "configs/quickstart.yaml", "--out", str(tmp_path / "ds")]
    for item in SMALL:
        cmd += ["--set", item]
    cmd += ["--set", "dataset.patterns=2400", *IN_MEMORY]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    chunks = tmp_path / "ds.incomplete" / "chunks"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(chunks.glob("*/*.json"))) < 5:
        time.sleep(0.1)
    assert proc.poll() is None, "generation finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "ds").exists() and (tmp_path / "ds.incomplete").exists()
    done_before = len(list(chunks.glob("*/*.json")))

    bigger = load("configs/quickstart.yaml", [*SMALL, "dataset.patterns=2400"])
    info, counters = generate.run(bigger, tmp_path / "ds", IN_MEMORY)  # the same command, resumed
    assert counters.get("units_resumed", 0) >= done_before
    reference, _ = generate.run(bigger, tmp_path / "ref", IN_MEMORY)
    for shard in sorted((tmp_path / "ref").glob("*.tfrecord-*")):
        assert (tmp_path / "ds" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    assert info["splits"] == reference["splits"]


def test_a_store_beam_cannot_write_here_is_refused_rather_than_written_to_a_local_path_of_its_name(
    tmp_path, monkeypatch
):
    config = load("configs/quickstart.yaml")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"--out gs://bucket/ds: Beam has no file system for gs:// .*apache-beam\[gcp\]"
    ):
        generate.run(config, "gs://bucket/ds", IN_MEMORY)
    assert list(tmp_path.iterdir()) == []  # no ./gs:/bucket/ds.incomplete
