"""One task per registered model, and the labels it names."""

import pytest

from spizoo.core import labels
from spizoo.core.task import ORIENTATION_SIZE, PARTICLE_COUNT, SINGLE_HIT, TASKS
from spizoo.models import registry


def test_every_registered_model_has_its_task():
    assert registry.task("resnet10_classifier") is PARTICLE_COUNT
    assert registry.task("resnet34_regressor") is ORIENTATION_SIZE
    assert registry.task("vgg16_features") is SINGLE_HIT
    assert set(TASKS.values()) >= {registry.task(name) for name in registry.names()}
    with pytest.raises(ValueError, match="unknown model 'resnet11'"):
        registry.task("resnet11")


def test_tasks_and_labels_agree():
    assert PARTICLE_COUNT.labels[labels.SINGLE] == SINGLE_HIT.labels[labels.SINGLE] == "single"
    assert ORIENTATION_SIZE.is_regression and not PARTICLE_COUNT.is_regression
    assert labels.names_for(5) == labels.CLASS_NAMES and labels.names_for(2) == labels.BINARY_NAMES
    with pytest.raises(ValueError, match="3 classes"):
        labels.names_for(3)
    assert all(" " not in name for name in labels.CLASS_NAMES + labels.BINARY_NAMES)  # labels.txt is split()
