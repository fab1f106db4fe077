import keras
import numpy as np
import pytest

from spizoo.models import registry
from spizoo.models.resnet import SPECS, ResNet

SMALL = (32, 32, 1)


def expected_params(spec: str, blocks, outputs: int, standardize: bool, hw=(32, 32)) -> int:
    """Parameter count from the architecture description alone."""
    s = SPECS[spec]
    bn = lambda c: 4 * c  # noqa: E731 - gamma, beta, moving mean, moving variance
    total = 2 * hw[0] * hw[1] if standardize else 0
    total += s["stem_kernel"] ** 2 * 1 * s["stem_filters"] + bn(s["stem_filters"])
    c_in = s["stem_filters"]
    for filters, count, stride in zip(s["stack_filters"], blocks, s["stack_strides"], strict=True):
        for b in range(count):
            total += 9 * c_in * filters + bn(filters) + 9 * filters * filters + bn(filters)
            if (b == 0 and stride != 1) or c_in != filters:
                total += c_in * filters + bn(filters)
            c_in = filters
    return total + c_in * outputs + outputs


@pytest.mark.parametrize(
    ("name", "spec", "blocks"),
    [("resnet10_classifier", "resnet10", (2, 2)), ("resnet34_regressor", "resnet34", (3, 4, 6, 4))],
)
def test_parameter_count_matches_the_architecture(name, spec, blocks):
    model = registry.build(name, input_shape=SMALL)
    assert model.count_params() == expected_params(spec, blocks, 5, True)
    n_conv = sum(isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape[0] > 1 for layer in model.layers)
    assert n_conv == 1 + 2 * sum(blocks)  # stem + two per block (1x1 projections aside)


def _weight_layers(model) -> int:
    """Convolutions wider than 1x1 (the 1x1 projections of the shortcuts aside) and dense layers."""
    return sum(
        (isinstance(x, keras.layers.Conv2D) and x.kernel.shape[0] > 1) or isinstance(x, keras.layers.Dense)
        for x in model.layers
    )


def test_resnet10_has_ten_weight_layers_and_the_seed_001_regressor_thirty_six():
    assert _weight_layers(registry.build("resnet10_classifier", input_shape=SMALL)) == 10
    # Seed 001 §3 stacks 3, 4, 6 and 4 basic blocks: ResNet-34 (3, 4, 6, 3) with one block more, 36 layers.
    assert _weight_layers(registry.build("resnet34_regressor", input_shape=SMALL)) == 1 + 2 * (3 + 4 + 6 + 4) + 1
    standard = registry.build("resnet34_regressor", input_shape=SMALL, stack_blocks=(3, 4, 6, 3))
    assert _weight_layers(standard) == 34


def test_outputs_are_distributions_or_tanh_bounded():
    x = np.random.default_rng(0).random((3, *SMALL)).astype(np.float32)
    p = registry.build("resnet10_classifier", input_shape=SMALL)(x).numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    r = registry.build("resnet34_regressor", input_shape=SMALL)(x).numpy()
    assert r.shape == (3, 5) and np.abs(r).max() <= 1


def test_config_round_trip_and_keras_file_give_identical_outputs(tmp_path):
    model = registry.build("resnet10_classifier", input_shape=SMALL, stack_blocks=(1, 1))
    model.get_layer("standardize").set_statistics(np.full(SMALL[:2], 2.0), np.full(SMALL[:2], 3.0))
    x = np.random.default_rng(1).random((2, *SMALL)).astype(np.float32)
    again = ResNet.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    np.testing.assert_allclose(loaded.get_layer("standardize").mean.numpy(), 2.0)


@pytest.mark.parametrize(
    "policy, compute", [("float32", "float32"), ("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")]
)
def test_builds_under_every_dtype_policy_with_float32_outputs(policy, compute):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = registry.build("resnet10_classifier", input_shape=SMALL, stack_blocks=(1, 1))
        out = model(np.zeros((1, *SMALL), np.float32))
        assert out.dtype == "float32"
        assert model.get_layer("stem_conv").compute_dtype == compute
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown model 'resnet50'; known models: resnet10_classifier, resnet34_regressor"
    ):
        registry.build("resnet50")
    with pytest.raises(ValueError, match="stack_blocks must give"):
        registry.build("resnet10_classifier", stack_blocks=(1,))
