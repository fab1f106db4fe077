"""The model zoo: the shipped hit classifier reaches its card on data regenerated from the card's config,
every verb that takes a run directory takes ``zoo:NAME``, and a model that ships as its card alone says
how to obtain it."""

import json
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest

from spizoo import cli
from spizoo.models import zoo

NAME = "hits-resnet10"
CARD_ONLY = "orientation-resnet34"
REPO = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("entry", zoo.entries(), ids=lambda e: e.name)
def test_every_card_is_of_the_repository_config_and_its_test_figures_add_up(entry):
    """A config changed after its model was trained fails here until the card is made again."""
    card = entry.card
    assert zoo.config_hash(REPO / card["data"]["config"]) == card["data"]["config_sha256"]
    assert zoo.config_hash(entry.path / "data_config.yaml") == card["data"]["config_sha256"]
    metric = "mean_relative_error" if "mean_relative_error" in card["test"]["seeds"][0] else "accuracy"
    values = [s[metric] for s in card["test"]["seeds"]]
    assert card["test"]["mean"] == pytest.approx(np.mean(values))
    assert card["test"]["spread"] == pytest.approx(np.ptp(values))
    assert entry.shipped == ("not_shipped" not in card) == ("check" in card)


def test_a_card_only_model_says_why_and_how_to_obtain_it(tmp_path, capsys):
    entry = zoo.entry(f"zoo:{CARD_ONLY}")
    assert not entry.shipped and entry.card["model"] == "resnet34_regressor"
    for command in entry.card["obtain"]["commands"]:  # each one a valid spizoo command line
        verb, *argv = shlex.split(command.removeprefix("spizoo "))
        cli.build_parser(verb).parse_args([verb, *argv])  # exits on an unknown option
    with pytest.raises(KeyError, match="ships as its model card only") as err:
        zoo.path(CARD_ONLY)
    assert entry.card["obtain"]["commands"][1] in err.value.args[0]
    assert cli.main(["zoo", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert any(f"zoo:{CARD_ONLY}" in line and line.endswith("(card only)") for line in listed)
    assert cli.main(["zoo", "show", CARD_ONLY]) == 0
    out = capsys.readouterr().out
    assert "card only: 26 million weights" in out and "obtain      spizoo train" in out
    assert cli.main(["zoo", "show", CARD_ONLY, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shipped"] == {CARD_ONLY: False}
    for argv in (  # every verb that takes a model: a usage error with the card's commands
        ["classify", f"zoo:{CARD_ONLY}", str(tmp_path / "x.cxi"), "--out", str(tmp_path / "r.h5")],
        ["fit-summary", str(tmp_path), "--model", f"zoo:{CARD_ONLY}"],
        ["emc", str(tmp_path / "r.h5"), "--regressor", f"zoo:{CARD_ONLY}", "--out", str(tmp_path / "emc")],
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "ships as its model card only" in capsys.readouterr().err


def test_a_shipped_model_without_its_weights_is_named(tmp_path, monkeypatch):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.yaml").write_text("summary: a classifier\n")
    monkeypatch.setattr(zoo, "ZOO", tmp_path)
    assert zoo.entry("broken").shipped
    with pytest.raises(KeyError, match="broken/best.keras is missing"):
        zoo.path("zoo:broken")


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


def test_zoo_entry_makes_a_card_only_entry_from_evaluated_regressor_runs(tmp_path, monkeypatch, capsys):
    """scripts/zoo_entry.py --card-only: the card's test table from each run's report, no weights copied."""
    import runpy

    config = REPO / "configs/experiments/e4_resnet34_msft.yaml"
    runs = []
    for seed, error in ((0, 0.05), (1, 0.07)):
        run = tmp_path / f"run{seed}"
        (run / "evaluation").mkdir(parents=True)
        (run / "config.yaml").write_text(config.read_text().replace("seed: 0", f"seed: {seed}"))
        report = {"patterns": 40, "mean_relative_error": {"mean": error}, "max_relative_error": {"mean": 3 * error}}
        (run / "evaluation" / "report.json").write_text(json.dumps(report))
        (run / "best.keras").write_bytes(b"not copied")
        runs.append(str(run))
    monkeypatch.setattr(zoo, "ZOO", tmp_path / "zoo")
    argv = [
        "zoo_entry.py", *runs, "--name", "regressor", "--config", str(config), "--card-only",
        "--summary", "a regressor", "--command", "spizoo train …", "--not-shipped", "too large",
        "--obtain", "spizoo train A", "--obtain", "spizoo train B", "--obtain-time", "an hour",
    ]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    runpy.run_path(str(REPO / "scripts/zoo_entry.py"), run_name="__main__")
    entry = zoo.entry("regressor")
    assert not entry.shipped and sorted(p.name for p in entry.path.iterdir()) == ["card.yaml", "data_config.yaml"]
    test = entry.card["test"]
    assert [s["mean_relative_error"] for s in test["seeds"]] == [0.05, 0.07] and test["seeds"][1]["seed"] == 1
    assert test["mean"] == pytest.approx(0.06) and test["spread"] == pytest.approx(0.02)
    assert entry.card["data"]["patterns"].startswith("6000 patterns in blocks of 50; splits train 0.7")
    assert entry.card["ranges"]["circumradius_nm"] == [30.0, 160.0]
    with pytest.raises(KeyError, match="too large.*spizoo train A; spizoo train B"):
        zoo.path("regressor")
    monkeypatch.setattr("sys.argv", [a for a in argv if a != "--card-only"])  # a regressor's entry is its card
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts/zoo_entry.py"), run_name="__main__")
    assert exit_.value.code == 2 and "regressor runs make a card-only entry" in capsys.readouterr().err
