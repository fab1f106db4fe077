"""``spizoo evaluate``: a trained run against a split, as a JSON report and the papers' plots.

Classifiers (seed 000 §5): accuracy, the confusion matrix over 0–4+ particles (five-class models), the
good/bad table of §5.2 (single hit = good), false-negative and false-positive rates of the single-hit
decision per particle geometry (the seed's icosahedron/soccer/torus table), an operating point (the
single-hit threshold whose false-positive rate on this data is at most a target: for reconstruction, a
false positive costs more than a missed hit), a grid of misclassified patterns and, for models with a
``features`` layer (VGG16), a t-SNE map of the features (fig. 14). Regressors (seed 001 fig. 4a):
histograms of the mean and maximum relative errors. Both: training curves (seed 000 fig. 8) from the
run's ``history.csv``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from spizoo.data import schema, tfrecord
from spizoo.data.pipeline import centre_crop, match_files

CLASSES = ("none", "single", "double", "triple", "4+")
GRID_EXAMPLES = 24  # misclassified patterns shown
TSNE_EXAMPLES = 2000  # patterns embedded by t-SNE (its cost grows as n log n)


def _examples(pattern: str, crop: int):
    """(cropped images, labels, targets, shapes) of every record matching ``pattern``, in file order."""
    images, labels, targets, shapes = [], [], [], []
    for path in match_files(pattern):
        with open(path, "rb") as f:
            for record in tfrecord.read_records(f, path):
                ex = schema.decode_example(record)
                images.append(centre_crop(ex[schema.IMAGE], crop).astype(np.float32))
                labels.append(ex[schema.LABEL])
                targets.append(ex[schema.TARGET])
                shapes.append((ex.get(schema.PARAM_PREFIX + "shape") or ["?"])[0])
    if not images:
        raise ValueError(f"no examples in {pattern!r}")
    return np.stack(images), np.array(labels), np.stack(targets), np.array(shapes)


def operating_point(scores: np.ndarray, is_single: np.ndarray, target_fpr: float) -> dict:
    """The lowest single-hit threshold whose false-positive rate (non-single patterns called single) is at
    most ``target_fpr``, with the true-positive rate it keeps."""
    negatives = scores[~is_single]
    candidates = np.unique(np.concatenate([scores, [1.0 + 1e-6]]))
    for t in candidates:
        fpr = float((negatives >= t).mean()) if len(negatives) else 0.0
        if fpr <= target_fpr:
            tpr = float((scores[is_single] >= t).mean()) if is_single.any() else 0.0
            return {"threshold": float(t), "false_positive_rate": fpr, "true_positive_rate": tpr, "target": target_fpr}
    raise AssertionError("unreachable: a threshold above every score has no false positives")


def single_hit_report(
    scores: np.ndarray, called_good: np.ndarray, labels: np.ndarray, shapes: np.ndarray, target_fpr: float
) -> dict:
    """Seed 000 §5.2's good/bad table, the per-geometry error rates and the operating point of a single-hit
    decision (``called_good``) with its score."""
    good = labels == 1
    per_shape = {}
    for shape in sorted(set(shapes.tolist())):
        mine = shapes == shape
        per_shape[shape] = {
            "patterns": int(mine.sum()),
            "false_negative_rate": float((good & ~called_good & mine).sum() / max((good & mine).sum(), 1)),
            "false_positive_rate": float((~good & called_good & mine).sum() / max((~good & mine).sum(), 1)),
        }
    return {
        "good_bad": {
            "good_good": int((good & called_good).sum()),
            "bad_bad": int((~good & ~called_good).sum()),
            "good_bad": int((good & ~called_good).sum()),
            "bad_good": int((~good & called_good).sum()),
        },
        "per_geometry": per_shape,
        "operating_point": operating_point(scores, good, target_fpr),
    }


def classifier_report(probabilities: np.ndarray, labels: np.ndarray, shapes: np.ndarray, target_fpr: float) -> dict:
    """A five-class model: accuracy, confusion matrix and :func:`single_hit_report` (single = class 1)."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    return {
        "patterns": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "confusion_matrix": {"rows_true_columns_predicted": list(CLASSES), "counts": confusion.tolist()},
        **single_hit_report(probabilities[:, 1], predicted == 1, labels, shapes, target_fpr),
    }


def binary_report(scores: np.ndarray, labels: np.ndarray, shapes: np.ndarray, target_fpr: float) -> dict:
    """A single-hit-probability model (VGG16 + logistic regression): accuracy of good/bad at 0.5 and
    :func:`single_hit_report`."""
    called_good = scores >= 0.5
    return {
        "patterns": int(len(labels)),
        "accuracy": float((called_good == (labels == 1)).mean()),
        **single_hit_report(scores, called_good, labels, shapes, target_fpr),
    }


def regressor_report(predicted: np.ndarray, targets: np.ndarray) -> dict:
    """Seed 001 appendix C on targets in [-1, 1] (each range spans 2): per-pattern mean and max errors."""
    errors = np.abs(predicted - targets) / 2.0
    mean, worst = errors.mean(axis=1), errors.max(axis=1)
    return {
        "patterns": int(len(targets)),
        "mean_relative_error": {"mean": float(mean.mean()), "median": float(np.median(mean))},
        "max_relative_error": {"mean": float(worst.mean()), "median": float(np.median(worst))},
        "per_parameter_mean_error": errors.mean(axis=0).tolist(),
        "_per_pattern": {"mean": mean, "max": worst},
    }


def evaluate(run_dir: str | Path, pattern: str, *, target_fpr: float = 0.01, batch_size: int = 64) -> dict:
    """Evaluates ``run_dir/best.keras`` on the records matching ``pattern``; writes ``run_dir/evaluation/``."""
    from spizoo import experiment, plots
    from spizoo.models import load_model

    run_dir = Path(run_dir)
    if not (run_dir / "best.keras").exists():
        raise FileNotFoundError(f"no best.keras in {run_dir}: train first with `spizoo train … --out {run_dir}`")
    if not 0 <= target_fpr < 1:
        raise ValueError(f"target false-positive rate must be in [0, 1), got {target_fpr}")
    config = experiment.load(run_dir / "config.yaml")
    model = load_model(run_dir / "best.keras")
    images, labels, targets, shapes = _examples(pattern, config.data.crop)
    predict = _predictor(config, run_dir, images, batch_size)
    outputs = predict(model).astype(np.float64)
    out = run_dir / "evaluation"
    out.mkdir(exist_ok=True)
    if model.get_config().get("head_activation") == "tanh":
        report = regressor_report(outputs, targets)
        per = report.pop("_per_pattern")
        plots.error_histograms(per["mean"], per["max"], out / "relative_errors.png")
    else:
        if outputs.ndim == 1:
            report = binary_report(outputs, labels, shapes, target_fpr)
            wrong = (outputs >= 0.5) != (labels == 1)
            titles = [f"true {CLASSES[t]}, p(single) {p:.2f}" for t, p in zip(labels, outputs, strict=True)]
        else:
            report = classifier_report(outputs, labels, shapes, target_fpr)
            counts = np.array(report["confusion_matrix"]["counts"])
            plots.confusion_matrix(counts, CLASSES, out / "confusion_matrix.png")
            predicted = outputs.argmax(axis=1)
            wrong = predicted != labels
            titles = [f"true {CLASSES[t]} → {CLASSES[p]}" for t, p in zip(labels, predicted, strict=True)]
        shown = np.flatnonzero(wrong)[:GRID_EXAMPLES]
        report["misclassified"] = int(wrong.sum())
        if len(shown):
            plots.contact_sheet(images[shown], [titles[i] for i in shown], out / "misclassified.png")
        if "features" in [layer.name for layer in model.layers]:
            import keras
            from sklearn.manifold import TSNE

            features = predict(keras.Model(model.input, model.get_layer("features").output), TSNE_EXAMPLES)
            n = len(features)
            embedding = TSNE(perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=0).fit_transform(features)
            plots.tsne(embedding, labels[:n], CLASSES, out / "tsne.png")
    history = run_dir / "history.csv"
    if history.exists():
        rows = list(csv.DictReader(history.open()))
        plots.training_curves(rows, out / "training_curves.png")
    report["data"] = pattern
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def _predictor(config, run_dir: Path, images: np.ndarray, batch_size: int):
    """``predict(model, limit=None)``: a model's outputs on the first ``limit`` images, preprocessed as
    training's input pipeline did (:func:`spizoo.models.training.pipeline_config`)."""
    import tensorflow as tf

    from spizoo.data.pipeline import load_dataset_info, preprocess
    from spizoo.models.training import pipeline_config, predict_dataset

    data_cfg, _ = pipeline_config(config.data)
    info = load_dataset_info(run_dir)

    def predict(model, limit: int | None = None) -> np.ndarray:
        chosen = images[:limit]
        ds = tf.data.Dataset.from_tensor_slices((chosen, np.zeros(len(chosen)))).batch(batch_size)
        ds = ds.map(lambda x, y: (preprocess(x, data_cfg, info), y))
        return predict_dataset(model, ds, "predict")[0]

    return predict
