"""The model zoo: the shipped hit classifier reaches its card on data regenerated from the card's config,
and every verb that takes a run directory takes ``zoo:NAME``."""

import json

import h5py
import numpy as np
import pytest

from spizoo import cli
from spizoo.models import zoo

NAME = "hits-resnet10"


@pytest.fixture(scope="module")
def card():
    (entry,) = [e for e in zoo.entries() if e.name == NAME]
    return entry.card


def test_the_card_names_its_data_and_its_config_is_the_one_shipped(card):
    directory = zoo.path(NAME)
    assert zoo.config_hash(directory / "data_config.yaml") == card["data"]["config_sha256"]
    test = card["test"]
    accuracies = [s["accuracy"] for s in test["seeds"]]
    assert len(accuracies) >= 2 and test["mean"] == pytest.approx(np.mean(accuracies))
    assert test["spread"] == pytest.approx(np.ptp(accuracies))
    assert card["model"] == "resnet10_classifier" and card["limits"] and card["training_command"]


def test_the_shipped_model_reaches_its_card_on_regenerated_data(card, tmp_path, capsys):
    """A simulator change that silently breaks the shipped model fails here: the check set is generated
    again from the card's own config and the model's accuracy on it must stay within the card's tolerance
    (the seeds' spread, or twice the check set's binomial standard error where that is larger)."""
    check = card["check"]
    data = tmp_path / "check"
    sets = [a for o in check["overrides"] for a in ("--set", o)]
    assert cli.main(["generate", str(zoo.path(NAME) / "data_config.yaml"), "--out", str(data), *sets]) == 0
    report = tmp_path / "report"
    args = ["evaluate", f"zoo:{NAME}", "--data", f"{data}/*.tfrecord-*", "--out", str(report)]
    assert cli.main(args) == 0
    found = json.loads((report / "report.json").read_text())
    assert sum(map(sum, found["confusion_matrix"]["counts"])) == check["patterns"]
    assert abs(found["accuracy"] - check["accuracy"]) <= check["tolerance"], (found["accuracy"], check)


def test_zoo_list_and_show(card, capsys):
    assert cli.main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    assert f"zoo:{NAME}" in out and f"{card['test']['mean']:.1%}" in out
    assert cli.main(["zoo", "show", f"zoo:{NAME}"]) == 0
    out = capsys.readouterr().out
    assert card["data"]["config_sha256"][:16] in out and card["limits"][0][:30] in out
    assert cli.main(["zoo", "show", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "no zoo model zoo:no-such-model" in err and f"zoo:{NAME}" in err


def test_verbs_take_a_zoo_name(tmp_path, capsys):
    patterns = tmp_path / "sim"
    config = "configs/experiments/e1_resnet10_hits.yaml"  # the model's own sampling: 128 x 128 flat frames
    assert cli.main(["simulate", config, "-n", "4", "--out", str(patterns), "--workers", "1"]) == 0
    results = tmp_path / "results.h5"
    assert cli.main(["classify", f"zoo:{NAME}", str(patterns / "patterns.cxi"), "--out", str(results)]) == 0
    with h5py.File(results) as f:
        assert len(f["single_hit_score"]) == 4
    assert cli.main(["export", f"zoo:{NAME}", "--name", "hits", "--base-path", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "hits" / "1" / "saved_model.pb").is_file()
    capsys.readouterr()
    # A zoo model is read-only: evaluate needs --out; an unknown name is a usage error naming the zoo's models.
    assert cli.main(["evaluate", f"zoo:{NAME}", "--data", str(tmp_path / "x*")]) == 2
    assert "read-only: give the report directory, --out DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a usage error, as argparse gives for any bad argument
        cli.main(["classify", "zoo:nope", str(patterns / "patterns.cxi"), "--out", str(tmp_path / "r.h5")])
    assert exit_.value.code == 2
    assert f"no zoo model zoo:nope; the zoo holds: zoo:{NAME}" in capsys.readouterr().err
