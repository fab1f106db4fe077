import csv
import json

import numpy as np
import pytest

from spizoo import cli
from spizoo.beam_pipelines import generate
from spizoo.commands import evaluate
from spizoo.experiment import load
from spizoo.models import evaluation, training

DATA = [
    "dataset.patterns=160",
    "sim.patterns_per_model=8",
    "sim.detector.pixels=[32,32]",
    "dataset.shards={train: 2, validation: 1, test: 1}",
    "dataset.splits={train: 0.6, validation: 0.2, test: 0.2}",
    "data.crop=32",
    "data.batch_size=16",
]


def test_operating_point_keeps_false_positives_at_or_below_target():
    rng = np.random.default_rng(0)
    single = rng.random(1000) < 0.5
    scores = np.clip(np.where(single, 0.7, 0.3) + 0.2 * rng.normal(size=1000), 0, 1)
    op = evaluation.operating_point(scores, single, 0.05)
    assert op["false_positive_rate"] <= 0.05
    lower = scores[scores < op["threshold"]].max()  # the next threshold down would break the target
    assert (scores[~single] >= lower).mean() > 0.05
    assert 0.4 < op["true_positive_rate"] < 1
    assert evaluation.operating_point(scores, single, 0.0)["false_positive_rate"] == 0.0


def test_accuracy_by_bins_of_equal_counts_and_by_category():
    values = np.arange(100.0)
    correct = values >= 50  # wrong in the lower half, right in the upper
    bins = evaluation.accuracy_by(correct, values)
    assert [b["patterns"] for b in bins] == [25, 25, 25, 25]
    assert [b["accuracy"] for b in bins] == [0.0, 0.0, 1.0, 1.0]
    assert bins[0]["low"] == 0 and bins[-1]["high"] == 99 and bins[1]["low"] == bins[0]["high"]
    # Ties on a bin edge: every pattern lands in exactly one bin.
    tied = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 20)
    assert sum(b["patterns"] for b in evaluation.accuracy_by(np.ones(100, bool), tied)) == 100
    groups = evaluation.accuracy_by(np.array([True, False, True]), np.array(["ico", "ico", "soccer"]))
    assert groups == [
        {"value": "ico", "patterns": 2, "accuracy": 0.5},
        {"value": "soccer", "patterns": 1, "accuracy": 1.0},
    ]
    labels = np.array([0, 1, 1, 4])
    physics = evaluation.physics_report(np.array([1, 0, 1, 1], bool), labels, np.arange(4.0), {"other": labels})
    assert [g["value"] for g in physics["class"]] == [evaluation.CLASS_NAMES[i] for i in (0, 1, 4)]
    assert set(physics) == {"class", "photons"}


def test_classifier_report_tables_add_up():
    labels = np.array([0, 1, 1, 2, 3, 4, 1, 1])
    probs = np.eye(5)[[0, 1, 2, 2, 3, 1, 1, 0]] * 0.9 + 0.02
    shapes = np.array(["ico", "ico", "soccer", "ico", "soccer", "ico", "soccer", "ico"])
    r = evaluation.classifier_report(probs, labels, shapes, 0.5)
    assert r["accuracy"] == pytest.approx(5 / 8)
    assert np.array(r["confusion_matrix"]["counts"]).sum() == 8
    assert r["good_bad"] == {"good_good": 2, "bad_bad": 3, "good_bad": 2, "bad_good": 1}
    assert r["per_geometry"]["ico"]["false_negative_rate"] == pytest.approx(1 / 2)  # ico singles: 1 and 7
    assert r["per_geometry"]["ico"]["false_positive_rate"] == pytest.approx(1 / 3)  # ico 4+ called single


def test_regressor_errors_are_appendix_c_on_the_scaled_targets():
    t = np.zeros((4, 5))
    p = t.copy()
    p[0, 2] = 0.2  # a tenth of a parameter's [-1, 1] range
    r = evaluation.regressor_report(p, t)
    assert r["max_relative_error"]["mean"] == pytest.approx(0.1 / 4)
    assert r["mean_relative_error"]["mean"] == pytest.approx(0.02 / 4)


def test_regressor_report_against_hand_computed_errors():
    t = np.array(
        [
            [0.5, -0.5, 0.0, 1.0, -1.0],
            [-0.2, 0.3, 0.9, -0.9, 0.1],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    offsets = np.array(
        [
            [0.2, 0.0, 0.0, 0.0, 0.0],  # errors |p - t| / 2: 0.1, 0, 0, 0, 0 -> mean 0.02, max 0.1
            [-0.4, 0.4, 0.0, 0.0, -0.2],  # 0.2, 0.2, 0, 0, 0.1 -> mean 0.1, max 0.2
            [0.0, 0.0, -0.8, 0.0, 0.4],  # 0, 0, 0.4, 0, 0.2 -> mean 0.12, max 0.4
        ]
    )
    r = evaluation.regressor_report(t + offsets, t)
    assert r["patterns"] == 3
    np.testing.assert_allclose(r["_per_pattern"]["mean"], [0.02, 0.1, 0.12], atol=1e-12)
    np.testing.assert_allclose(r["_per_pattern"]["max"], [0.1, 0.2, 0.4], atol=1e-12)
    assert r["mean_relative_error"] == pytest.approx({"mean": 0.08, "median": 0.1})
    assert r["max_relative_error"] == pytest.approx({"mean": 0.7 / 3, "median": 0.2})
    # per parameter, the mean over patterns: (0.1 + 0.2 + 0) / 3, (0 + 0.2 + 0) / 3, (0 + 0 + 0.4) / 3, ...
    assert r["per_parameter_mean_error"] == pytest.approx([0.1, 0.2 / 3, 0.4 / 3, 0.0, 0.1])
    assert evaluation.regressor_report(t, t)["max_relative_error"] == {"mean": 0.0, "median": 0.0}


def _outputs(run, pattern):
    """best.keras's outputs on the records of ``pattern``, computed here (one batch of 64 at a time, as the verb
    batches), with (labels, targets, shapes)."""
    from spizoo.data.pipeline import load_dataset_info, load_examples, preprocess
    from spizoo.models import load_model

    config = load(run / "config.yaml")
    images, labels, targets, shapes, _ = load_examples(pattern, config.data.crop)
    data_cfg, _ = training.pipeline_config(config.data)
    info = load_dataset_info(run)
    model = load_model(run / "best.keras")
    batches = [preprocess(images[i : i + 64], data_cfg, info) for i in range(0, len(images), 64)]
    outputs = np.concatenate([np.asarray(model(x, training=False)) for x in batches])
    return outputs.astype(np.float64), labels, targets, shapes


def test_evaluate_a_trained_run(tmp_path, capsys):
    data = tmp_path / "ds"
    generate.run(
        load("configs/quickstart.yaml", DATA), data, ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
    )
    run = tmp_path / "run"
    training.train(
        load("configs/quickstart.yaml", [*DATA, "train.epochs=1", "train.mixed_precision=float32"]), data, run
    )
    pattern = str(data / "*-test.tfrecord-*")
    # In float32, so that best.keras's outputs recomputed below are the report's to round-off.
    assert cli.main(["evaluate", str(run), "--data", pattern, "--target-fpr", "0.1", "--precision", "float32"]) == 0
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["precision"] == "float32"
    n = json.loads((data / "dataset_info.json").read_text())["splits"]["test"]["examples"]
    assert (
        report["patterns"]
        == n
        == np.array(report["confusion_matrix"]["counts"]).sum()
        == sum(report["good_bad"].values())
    )
    assert set(report["per_geometry"]) <= {"icosahedron", "soccer"}
    assert report["operating_point"]["false_positive_rate"] <= 0.1
    # The report is the model's: recomputed here from best.keras's outputs on the test records.
    counts = np.array(report["confusion_matrix"]["counts"])
    assert report["accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
    probs, labels, _, shapes = _outputs(run, pattern)
    assert len(labels) == n
    predicted = probs.argmax(1)
    expected = np.zeros((5, 5), int)
    np.add.at(expected, (labels, predicted), 1)
    np.testing.assert_array_equal(counts, expected)
    assert report["accuracy"] == pytest.approx((predicted == labels).mean())
    assert report["misclassified"] == int((predicted != labels).sum())
    single, called = labels == 1, predicted == 1
    assert report["good_bad"] == {
        "good_good": int((single & called).sum()),
        "bad_bad": int((~single & ~called).sum()),
        "good_bad": int((single & ~called).sum()),
        "bad_good": int((~single & called).sum()),
    }
    assert {k: v["patterns"] for k, v in report["per_geometry"].items()} == {
        s: int((shapes == s).sum()) for s in set(shapes.tolist())
    }
    # The single-hit threshold is chosen on the model's class-1 probabilities.
    assert report["operating_point"] == pytest.approx(evaluation.operating_point(probs[:, 1], single, 0.1), abs=1e-5)
    assert (run / "evaluation" / "misclassified.png").exists() == (report["misclassified"] > 0)
    for png in ("confusion_matrix.png", "training_curves.png", "accuracy_by_physics.png"):
        assert (run / "evaluation" / png).stat().st_size > 5000
    # Accuracy by physics: each grouping covers every pattern, and its accuracies add up to the report's.
    by = report["accuracy_by"]
    assert {"class", "photons", "circumradius_nm", "fluence_photons_per_um2"} <= set(by)
    for groups in by.values():
        assert sum(g["patterns"] for g in groups) == n
        assert sum(g["accuracy"] * g["patterns"] for g in groups) == pytest.approx(report["accuracy"] * n)
    # patterns.csv: a row per pattern in --data's order, the model's call and its physics.
    with (run / "evaluation" / "patterns.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["predicted"] for r in rows] == [evaluation.CLASS_NAMES[p] for p in predicted]
    assert [r["label"] for r in rows] == [evaluation.CLASS_NAMES[label] for label in labels]
    assert all(float(r["photons"]) > 0 and float(r["circumradius_nm"]) > 0 for r in rows)
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "nothing"), "--data", pattern]) == 2
    assert "no best.keras" in capsys.readouterr().err


def test_train_and_evaluate_the_regressor_end_to_end(tmp_path):
    overrides = [
        "dataset.patterns=60",
        "dataset.unit_size=6",
        "sim.columns=32",
        "sim.detector.pixels=[32,32]",
        "data.crop=32",
    ]
    config = load("configs/quickstart_msft.yaml", [*overrides, "train.epochs=1", "train.mixed_precision=float32"])
    data = tmp_path / "ds"
    generate.run(config, data, ["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    summary = training.train(config, data, tmp_path / "run")
    assert {"mean_relative_error", "max_relative_error", "val_mean_relative_error"} <= set(summary["final"])
    report = evaluate.evaluate(tmp_path / "run", str(data / "*-test.tfrecord-*"), precision="float32")
    assert 0 <= report["mean_relative_error"]["mean"] <= report["max_relative_error"]["mean"] <= 1
    # The errors are the model's: recomputed here from best.keras's outputs and the records' targets.
    outputs, _, targets, _ = _outputs(tmp_path / "run", str(data / "*-test.tfrecord-*"))
    n = json.loads((data / "dataset_info.json").read_text())["splits"]["test"]["examples"]
    assert report["patterns"] == len(targets) == n > 0 and outputs.shape == targets.shape == (n, 5)
    errors = np.abs(outputs - targets) / 2
    saved = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert "_per_pattern" not in saved
    for r in (report, saved):
        assert r["mean_relative_error"]["mean"] == pytest.approx(errors.mean(), rel=1e-5)
        assert r["mean_relative_error"]["median"] == pytest.approx(np.median(errors.mean(1)), rel=1e-5)
        assert r["max_relative_error"]["mean"] == pytest.approx(errors.max(1).mean(), rel=1e-5)
        assert r["max_relative_error"]["median"] == pytest.approx(np.median(errors.max(1)), rel=1e-5)
        assert r["per_parameter_mean_error"] == pytest.approx(errors.mean(0), rel=1e-5)
    assert (tmp_path / "run" / "evaluation" / "relative_errors.png").exists()


def test_vgg16_logistic_regression_trains_folds_and_evaluates(tmp_path):
    overrides = [
        "dataset.patterns=48",
        "sim.patterns_per_model=2",
        "sim.detector.pixels=[32,32]",
        "data.crop=32",
        "train.mixed_precision=float32",
    ]
    config = load("configs/quickstart_vgg.yaml", overrides)
    data, run = tmp_path / "ds", tmp_path / "run"
    generate.run(config, data, ["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    summary = training.train(config, data, run)
    assert summary["trained_by"] == "logistic_regression" and summary["C"] == 1.0
    # Evaluating the folded model on the validation split reproduces the logistic regression's own accuracy:
    # the evaluation preprocesses exactly as the training features were made.
    report = evaluate.evaluate(run, str(data / "*-validation.tfrecord-*"), target_fpr=0.2)
    assert report["accuracy"] == pytest.approx(summary["final"]["val_accuracy"])
    assert sum(report["good_bad"].values()) == report["patterns"] > 0
    assert report["operating_point"]["false_positive_rate"] <= 0.2
    assert (run / "evaluation" / "tsne.png").stat().st_size > 5000
    assert (run / "evaluation" / "misclassified.png").exists() == (report["misclassified"] > 0)
    assert training.train(config, data, run) == summary  # a finished run is not trained again
    with pytest.raises(ValueError, match="data.view: vgg"):
        training.train(load("configs/quickstart_vgg.yaml", [*overrides, "data.view=image"]), data, tmp_path / "r2")
