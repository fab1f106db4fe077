"""The papers' evaluation reports of a model's outputs on labelled patterns (``spizoo evaluate``).

Classifiers (seed 000 §5): accuracy, the confusion matrix over 0–4+ particles (five-class models), the
good/bad table of §5.2 (single hit = good), false-negative and false-positive rates of the single-hit
decision per particle geometry (the seed's icosahedron/soccer/torus table), an operating point (the
single-hit threshold whose false-positive rate on this data is at most a target: for reconstruction, a
false positive costs more than a missed hit), a grid of misclassified patterns and, for models with a
``features`` layer (VGG16), a t-SNE map of the features (fig. 14). Regressors (seed 001 fig. 4a):
histograms of the mean and maximum relative errors. The verb draws the plots and training curves
(seed 000 fig. 8) from these reports.
"""

from __future__ import annotations

import numpy as np

from spizoo.core.labels import CLASS_NAMES, SINGLE


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
    good = labels == SINGLE
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


PHYSICS = {
    "photons": "photons in the model's view (the record's image summed over the crop)",
    "circumradius_nm": "particle circumradius (nm)",
    "fluence_photons_per_um2": "fluence (photons/µm²)",
}
"""What the physics gives the network, by which :func:`accuracy_by` splits a classifier's accuracy."""


def accuracy_by(correct: np.ndarray, values: np.ndarray, bins: int = 4, categorical: bool = False) -> list[dict]:
    """Accuracy in groups of patterns: one group per value (sorted) of ``categorical`` values, strings, or at
    most ``bins`` distinct numbers; else ``bins`` quantile bins of equal counts, each ``[low, high]``."""
    values = np.asarray(values)
    groups = []
    if categorical or values.dtype.kind in "USO" or len(np.unique(values)) <= bins:
        for v in np.unique(values):
            mine = values == v
            groups.append({"value": v.item(), "patterns": int(mine.sum()), "accuracy": float(correct[mine].mean())})
        return groups
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    for b in range(len(edges) - 1):
        mine = which == b
        if mine.any():
            low, high, accuracy = float(edges[b]), float(edges[b + 1]), float(correct[mine].mean())
            groups.append({"low": low, "high": high, "patterns": int(mine.sum()), "accuracy": accuracy})
    return groups


def physics_report(correct: np.ndarray, labels: np.ndarray, photons: np.ndarray, params: dict) -> dict:
    """Accuracy by true class, by photons in the model's view and by each simulation parameter of
    :data:`PHYSICS` the records carry: where the classes are physically hard to tell apart."""
    report = {"class": accuracy_by(correct, labels, categorical=True)}
    for group in report["class"]:
        group["value"] = CLASS_NAMES[group["value"]]
    report["photons"] = accuracy_by(correct, photons)
    for name in PHYSICS:
        if name in params and name != "photons":
            report[name] = accuracy_by(correct, params[name])
    return report


def classifier_report(probabilities: np.ndarray, labels: np.ndarray, shapes: np.ndarray, target_fpr: float) -> dict:
    """A five-class model: accuracy, confusion matrix and :func:`single_hit_report` (single = class 1)."""
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    return {
        "patterns": int(len(labels)),
        "accuracy": float((predicted == labels).mean()),
        "confusion_matrix": {"rows_true_columns_predicted": list(CLASS_NAMES), "counts": confusion.tolist()},
        **single_hit_report(probabilities[:, SINGLE], predicted == SINGLE, labels, shapes, target_fpr),
    }


def binary_report(scores: np.ndarray, labels: np.ndarray, shapes: np.ndarray, target_fpr: float) -> dict:
    """A single-hit-probability model (VGG16 + logistic regression): accuracy of good/bad at 0.5 and
    :func:`single_hit_report`."""
    called_good = scores >= 0.5
    return {
        "patterns": int(len(labels)),
        "accuracy": float((called_good == (labels == SINGLE)).mean()),
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
