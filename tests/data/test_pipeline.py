import dataclasses
import shutil

import numpy as np
import pytest
import tensorflow as tf

from spizoo.beam_pipelines import generate
from spizoo.data import schema, tfrecord
from spizoo.data.pipeline import DataConfig, load_dataset_info, make_dataset, preprocess
from spizoo.experiment import load

OVERRIDES = [
    "dataset.patterns=64",
    "sim.patterns_per_model=8",
    "sim.detector.pixels=[40,40]",
    "dataset.shards={train: 2, validation: 1, test: 1}",
    "dataset.splits={train: 0.7, validation: 0.15, test: 0.15}",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ds"
    generate.run(
        load("configs/quickstart.yaml", OVERRIDES), out, ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
    )
    return out


def raw_train(out):
    with_order = []
    for f in sorted(out.glob("*-train.tfrecord-*")):
        with open(f, "rb") as fh:
            with_order += [schema.decode_example(r) for r in tfrecord.read_records(fh)]
    return with_order


def collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_evaluation_batches_are_cropped_normalised_images(dataset):
    cfg = DataConfig(crop=32, batch_size=16)
    x, y = collect(make_dataset(str(dataset / "*-train.tfrecord-*"), cfg, training=False))
    raw = raw_train(dataset)
    assert x.shape == (len(raw), 32, 32, 1) and x.dtype == np.float32
    info = load_dataset_info(dataset)
    mean, std = info["mean_image"][4:36, 4:36], info["std_image"][4:36, 4:36]
    expected = (np.stack([r["image"][4:36, 4:36] for r in raw]) - mean) / np.maximum(std, 1e-6)
    # Files are interleaved; match each output to its example.
    order = [int(np.argmin(np.abs(expected - img[..., 0]).reshape(len(raw), -1).max(axis=1))) for img in x]
    assert sorted(order) == list(range(len(raw)))
    np.testing.assert_allclose(x[..., 0], expected[order], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(y, [raw[i]["label"] for i in order])


def test_training_shuffles_and_flips_reproducibly(dataset):
    cfg = DataConfig(crop=40, batch_size=8, normalize="none", deterministic=True, shuffle_buffer=64)
    pattern = str(dataset / "*-train.tfrecord-*")
    a, la = collect(make_dataset(pattern, cfg, training=True, seed=3))
    b, lb = collect(make_dataset(pattern, cfg, training=True, seed=3))
    np.testing.assert_array_equal(a, b)
    c, _ = collect(make_dataset(pattern, cfg, training=True, seed=4))
    assert not np.array_equal(a, c)
    originals = [r["image"] for r in raw_train(dataset)]
    variants = {v.tobytes(): i for i, o in enumerate(originals) for v in (o, o[:, ::-1], o[::-1], o[::-1, ::-1])}
    found = [variants.get(np.ascontiguousarray(img[..., 0]).tobytes()) for img in a]
    assert None not in found and sorted(found) == list(range(len(originals)))  # each pattern once, maybe flipped
    assert any(not np.array_equal(img[..., 0], originals[i]) for img, i in zip(a, found, strict=True))


def test_log_and_vgg_views(dataset):
    pattern = str(dataset / "*-test.tfrecord-*")
    x, _ = collect(make_dataset(pattern, DataConfig(crop=40, normalize="log"), training=False))
    raw = np.stack(
        [r["image"] for f in sorted(dataset.glob("*-test.tfrecord-*")) for r in raw_train_file(f)]
    )  # one file
    np.testing.assert_allclose(x[..., 0], np.log10(1 + raw), rtol=1e-5, atol=1e-6)
    v, _ = collect(make_dataset(pattern, DataConfig(crop=32, view="vgg", batch_size=4), training=False))
    assert v.shape[1:] == (224, 224, 3)
    assert v[..., 2].min() >= -123.7 and v[..., 0].max() <= 255 - 103.9 + 1e-3  # clipped at 10 photons, 0-255


def raw_train_file(f):
    with open(f, "rb") as fh:
        return [schema.decode_example(r) for r in tfrecord.read_records(fh)]


def test_errors_name_the_pattern_the_directory_and_the_broken_file(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="no files match .*nothing"):
        make_dataset(str(tmp_path / "nothing*"), DataConfig(), training=False)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(next(dataset.glob("*-train.tfrecord-*")), bare)
    with pytest.raises(FileNotFoundError, match="no dataset_info.json in"):
        make_dataset(str(bare / "*"), DataConfig(), training=False)
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    shard = sorted(broken.glob("*-train.tfrecord-*"))[0]
    intact = shard.read_bytes()
    shard.write_bytes(intact[: len(intact) // 2])  # truncated, as by an interrupted copy
    cfg = DataConfig(crop=32, normalize="none")
    pattern = str(broken / "*-train.tfrecord-*")
    with pytest.raises(ValueError, match=f"{shard.name} is truncated or corrupt: {len(intact) // 2} bytes"):
        make_dataset(pattern, cfg, training=False)
    total = len(raw_train(dataset))
    x, _ = collect(make_dataset(pattern, dataclasses.replace(cfg, skip_corrupt=True), training=False))
    assert 0 < len(x) < total
    flipped = bytearray(intact)
    flipped[len(intact) // 2] ^= 0xFF  # same size, a bad checksum in the middle
    shard.write_bytes(bytes(flipped))
    with pytest.raises(tf.errors.OpError, match="expected to contain"):
        collect(make_dataset(pattern, cfg, training=False))
    x, _ = collect(make_dataset(pattern, dataclasses.replace(cfg, skip_corrupt=True), training=False))
    assert 0 < len(x) < total


def test_preprocess_is_the_pipeline_s_deterministic_part():
    info = {"mean_image": np.full((12, 12), 2.0, np.float32), "std_image": np.full((12, 12), 4.0, np.float32)}
    x = preprocess(np.full((1, 12, 12), 10.0, np.float32), DataConfig(crop=8), info).numpy()
    assert x.shape == (1, 8, 8, 1) and np.allclose(x, 2.0)
    with pytest.raises(ValueError, match=r"smaller than the model's input, their central 16x16 pixels"):
        preprocess(np.zeros((1, 12, 12), np.float32), DataConfig(crop=16), info)


def test_bad_data_config_names_the_key():
    with pytest.raises(ValueError, match="normalize must be one of dataset, log, none"):
        DataConfig(normalize="zscore")


def test_a_record_that_is_not_an_example_is_named_by_file_and_record(tmp_path):
    from spizoo.data.pipeline import load_examples

    path = tmp_path / "bad.tfrecord-00000-of-00001"
    path.write_bytes(tfrecord.frame(b"\x0a\x00") + tfrecord.frame(b"not a protobuf \xff"))
    with pytest.raises(schema.ExampleError, match=r"bad.tfrecord-00000-of-00001, record 0: "):
        load_examples(str(path), 8)


def test_a_dataset_at_a_url_reads_as_it_does_locally(dataset):
    """Through TensorFlow's file systems (its in-memory ram:// here, as gs:// on a cloud): the same info,
    statistics, batches, examples and checked records."""
    from spizoo.data.pipeline import check_records, load_examples

    url = "ram://spizoo-test/ds"
    for path in dataset.iterdir():
        tf.io.gfile.copy(str(path), f"{url}/{path.name}", overwrite=True)
    local, remote = load_dataset_info(dataset), load_dataset_info(url)
    assert remote["splits"] == local["splits"]
    np.testing.assert_array_equal(remote["mean_image"], local["mean_image"])
    cfg = DataConfig(crop=32, batch_size=8, deterministic=True)

    def batches(root):
        ds = make_dataset(f"{root}/*-train.tfrecord-*", cfg, training=True, seed=3, info=local)
        return [(x.numpy(), y.numpy()) for x, y in ds]

    for (xa, ya), (xb, yb) in zip(batches(dataset), batches(url), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    here, there = (load_examples(f"{root}/*-test.tfrecord-*", 32) for root in (dataset, url))
    for a, b in zip(here[:4], there[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    assert here.params.keys() == there.params.keys() and "circumradius_nm" in here.params
    for name, values in here.params.items():
        np.testing.assert_array_equal(values, there.params[name])
    check_records(f"{url}/*.tfrecord-*", local)


def test_a_scheme_tensorflow_cannot_read_is_an_error_with_the_fix():
    with pytest.raises(ValueError, match=r"s3://bucket/ds: TensorFlow .* has no file system for s3://.*aws s3 sync"):
        load_dataset_info("s3://bucket/ds")
    with pytest.raises(ValueError, match=r"has no file system for s3://"):
        make_dataset("s3://bucket/ds/*-train.tfrecord-*", DataConfig(), training=False)
