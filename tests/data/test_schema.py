import numpy as np
import pytest
import tensorflow as tf

from spizoo.data import schema, tfrecord


def example(image=None):
    image = np.arange(12, dtype=np.float32).reshape(3, 4) if image is None else image
    return schema.example_features(
        image,
        key="cafe/7/3",
        model_index=7,
        label=2,
        augmentation="blur",
        params={
            "shape": "soccer",
            "radius_nm": np.float32(41.5),
            "quaternions": np.ones((2, 4), np.float32),
            "shift": -3,
        },
    )


def test_round_trip_keeps_every_feature():
    feats = example()
    back = schema.decode_example(schema.encode_example(feats))
    np.testing.assert_array_equal(back["image"], np.arange(12, dtype=np.float32).reshape(3, 4))
    assert back["label"] == 2 and back["model_index"] == 7 and back["key"] == "cafe/7/3"
    assert back["augmentation"] == "blur" and back["param/shape"] == ["soccer"]
    np.testing.assert_array_equal(back["param/quaternions"], np.ones(8))
    np.testing.assert_array_equal(back["param/shift"], [-3])
    np.testing.assert_array_equal(back["target"], np.zeros(5))


def test_images_ending_in_zero_bytes_survive():
    image = np.zeros((4, 4), np.float32)
    image[0, 0] = 1.0  # the rest is zero bytes, which numpy's bytes type would strip
    np.testing.assert_array_equal(schema.decode_example(schema.encode_example(example(image)))["image"], image)


def test_tensorflow_parses_the_hand_encoded_protobuf():
    serialized = schema.encode_example(example())
    ex = tf.train.Example.FromString(serialized)
    assert ex.features.feature["label"].int64_list.value == [2]
    parsed = tf.io.parse_single_example(serialized, schema.feature_spec())
    assert parsed["model_index"].numpy() == 7
    np.testing.assert_array_equal(tf.io.decode_raw(parsed["image"], tf.float32).numpy(), np.arange(12))


def test_encoding_is_deterministic_and_rejects_bad_images():
    assert schema.encode_example(example()) == schema.encode_example(example())
    with pytest.raises(ValueError, match="image must be 2D"):
        schema.example_features(np.zeros(3), key="k", model_index=0)


def test_tfrecord_framing_is_read_by_tensorflow_and_checked_here(tmp_path):
    records = [schema.encode_example(example()), b"", b"x" * 1000]
    path = tmp_path / "f.tfrecord"
    path.write_bytes(b"".join(tfrecord.frame(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records
    with open(path, "rb") as f:
        assert list(tfrecord.read_records(f, str(path))) == records
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    with open(path, "rb") as f, pytest.raises(tfrecord.CorruptRecordError, match=r"f\.tfrecord: truncated record"):
        list(tfrecord.read_records(f, str(path)))
    path.write_bytes(data[:20] + b"\x00" + data[21:])
    with open(path, "rb") as f, pytest.raises(tfrecord.CorruptRecordError, match="bad data checksum"):
        list(tfrecord.read_records(f, str(path)))
