"""``spizoo evaluate``: a trained run against a split, as a JSON report and the papers' plots."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from spizoo import plots
from spizoo.commands._common import add_precision, input_dir, json_text, load_run, model_reference, output_dir, quoted
from spizoo.core.labels import CLASS_NAMES
from spizoo.data.pipeline import load_dataset_info, load_examples, preprocess
from spizoo.models import zoo
from spizoo.models.evaluation import binary_report, classifier_report, physics_report, regressor_report
from spizoo.models.precision import resolve_precision
from spizoo.models.training import pipeline_config, predict_dataset

DESCRIPTION = """\
    Evaluate RUN_DIR/best.keras (or a zoo model, zoo:NAME) on the records matching DATA into
    RUN_DIR/evaluation/ (or --out DIR): report.json
    (classifiers: accuracy, confusion matrix, the good/bad table of seed 000 section 5.2 (Han & Li:
    single hit = good), false-negative and false-positive rates per particle geometry, the
    single-hit threshold for --target-fpr, and the accuracy by class, by photons in the model's
    view, by particle size and by fluence: where the physics makes classes hard to tell apart;
    regressors: the mean and maximum relative errors of
    seed 001 appendix C (Stielow et al., MLST 1 045007 (2020)) and the mean error of each of
    q0, q1, q2, q3 (the orientation quaternion) and radius, by name) and PNGs (confusion matrix or error
    histograms, training curves, misclassified patterns, accuracy by physics, t-SNE of VGG16 features),
    and patterns.csv: each pattern's label, output and physics, in the order of --data.

    example:
      spizoo evaluate out/quick_run --data 'out/quick_ds/*-test.tfrecord-*' --target-fpr 0.01
      spizoo generate configs/experiments/e1_resnet10_hits.yaml --out out/e1_test --set dataset.patterns=300 \\
          --set sim.patterns_per_model=10 --set 'dataset.splits={test: 1.0}' --set 'dataset.shards={test: 1}'
      spizoo evaluate zoo:hits-resnet10 --data 'out/e1_test/*-test.tfrecord-*' --out out/zoo_eval
    """
GRID_EXAMPLES = 24  # misclassified patterns shown
TARGETS = ("q0", "q1", "q2", "q3", "radius")  # the regressor's outputs: quaternion (w, x, y, z) and radius
INTERRUPTED = "interrupted; the report was not written (the same command starts afresh)"
TSNE_EXAMPLES = 2000  # patterns embedded by t-SNE (its cost grows as n log n)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=model_reference, help="run directory made by spizoo train, or zoo:NAME")
    parser.add_argument("--data", required=True, help="glob of TFRecord shards, e.g. 'DIR/*-test.tfrecord-*'")
    parser.add_argument(
        "--out", help="report directory (default: RUN_DIR/evaluation; a zoo model's must be given: it is read-only)"
    )
    parser.add_argument(
        "--target-fpr", type=float, default=0.01, help="false-positive rate for the single-hit threshold"
    )
    add_precision(parser, "auto")


def run(args: argparse.Namespace) -> dict:
    return evaluate(args.run_dir, args.data, target_fpr=args.target_fpr, out=args.out, precision=args.precision)


def summary_line(report: dict) -> str:
    if "accuracy" in report:
        point = report["operating_point"]
        return (
            f"accuracy {report['accuracy']:.3f} on {report['patterns']} patterns; single-hit threshold "
            f"{point['threshold']:.3f} keeps {point['true_positive_rate']:.1%} of single hits at "
            f"{point['false_positive_rate']:.1%} false positives; report {report['report']}"
        )
    return (
        f"mean relative error {report['mean_relative_error']['mean']:.2%} "
        f"(max {report['max_relative_error']['mean']:.2%}) on {report['patterns']} patterns; report {report['report']}"
    )


def summary_rows(report: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    out = Path(report["report"]).parent
    rows = [("report", report["report"]), ("figures", ", ".join(p.name for p in sorted(out.glob("*.png"))))]
    if "confusion_matrix" in report:
        rows.append(("confusion", confusion_table(report["confusion_matrix"])))
    if "good_bad" in report:
        gb = report["good_bad"]
        rows.append(
            (
                "single hits",
                f"{gb['good_good']} found, {gb['good_bad']} missed; {gb['bad_good']} other patterns called single, "
                f"{gb['bad_bad']} not (at the model's own decision)",
            )
        )
        point = report["operating_point"]
        rows.append(
            (
                "threshold",
                f"{point['threshold']:.3f}: false positives {point['false_positive_rate']:.1%} (target "
                f"{point['target']:.1%}), single hits kept {point['true_positive_rate']:.1%}",
            )
        )
    if "mean_error_by_parameter" in report:
        errors = report["mean_error_by_parameter"]
        rows.append(("mean error", ", ".join(f"{name} {value:.2%}" for name, value in errors.items())))
        mean, worst = report["mean_relative_error"], report["max_relative_error"]
        rows.append(
            (
                "relative error",
                f"mean {mean['mean']:.2%} (median {mean['median']:.2%}), max {worst['mean']:.2%} (seed 001 appendix C)",
            )
        )
    name = "sizes" if "mean_error_by_parameter" in report else "hits"
    rows.append(("next", f"spizoo export {quoted(args.run_dir)} --name {name} --base-path out/models"))
    return rows


def confusion_table(confusion: dict) -> str:
    """The confusion matrix as a few aligned rows: true classes down, predicted across."""
    names, counts = confusion["rows_true_columns_predicted"], confusion["counts"]
    width = max(len(str(c)) for row in counts for c in row)
    width = max(width, *(len(n) for n in names))
    head = "true \\ predicted"
    lines = [f"{head:<{len(head)}} " + " ".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, counts, strict=True):
        lines.append(f"{name:<{len(head)}} " + " ".join(f"{c:>{width}}" for c in row))
    return "\n".join(lines)


def evaluate(
    run_dir: str | Path,
    pattern: str,
    *,
    target_fpr: float = 0.01,
    batch_size: int = 64,
    out: str | Path | None = None,
    precision: str = "auto",
) -> dict:
    """Evaluates ``run_dir/best.keras``, computing in ``precision`` as ``spizoo classify`` does
    (:func:`spizoo.models.inference.load_for_inference`), on the records matching ``pattern``; writes ``out``
    (default ``run_dir/evaluation/``)."""
    from spizoo.models.inference import load_for_inference  # loads Keras: only when a model is evaluated

    run_dir = Path(run_dir)
    if out is None and zoo.is_zoo(run_dir):
        raise ValueError(
            f"{run_dir.name} is a zoo model, whose files are read-only: give the report directory, --out DIR"
        )
    out = Path(out) if out is not None else run_dir / "evaluation"
    if run_dir.exists():  # a missing one: load_run says to train first
        input_dir(run_dir, "RUN_DIR", hint="give the run directory of `spizoo train … --out RUN_DIR`")
    if not 0 <= target_fpr < 1:
        raise ValueError(f"target false-positive rate must be in [0, 1), got {target_fpr}")
    if Path(pattern).is_dir():
        raise IsADirectoryError(
            f"--data {pattern} is a directory; give a glob of its shards in quotes, "
            f"e.g. '{Path(pattern)}/*-test.tfrecord-*'"
        )
    output_dir(out, "the report directory")
    config, task = load_run(run_dir)
    images, labels, targets, shapes, params = load_examples(pattern, config.data.crop)  # before TensorFlow loads
    model = load_for_inference(run_dir / "best.keras", precision)
    predict = _predictor(config, run_dir, images, batch_size)
    outputs = predict(model).astype(np.float64)
    out.mkdir(parents=True, exist_ok=True)
    if task.report == "regressor":
        report = regressor_report(outputs, targets)
        per = report.pop("_per_pattern")
        report["mean_error_by_parameter"] = dict(zip(TARGETS, report["per_parameter_mean_error"], strict=True))
        plots.error_histograms(per["mean"], per["max"], out / "relative_errors.png")
    else:
        if task.report == "binary":
            report = binary_report(outputs, labels, shapes, target_fpr)
            wrong = (outputs >= 0.5) != (labels == 1)
            calls = np.where(outputs >= 0.5, "single", "not single")
            titles = [f"true {CLASS_NAMES[t]}, p(single) {p:.2f}" for t, p in zip(labels, outputs, strict=True)]
        else:
            report = classifier_report(outputs, labels, shapes, target_fpr)
            counts = np.array(report["confusion_matrix"]["counts"])
            plots.confusion_matrix(counts, CLASS_NAMES, out / "confusion_matrix.png")
            predicted = outputs.argmax(axis=1)
            wrong = predicted != labels
            calls = np.array(CLASS_NAMES)[predicted]
            titles = [f"true {CLASS_NAMES[t]} → {CLASS_NAMES[p]}" for t, p in zip(labels, predicted, strict=True)]
        photons = images.sum(axis=(1, 2), dtype=np.float64)  # in the model's view
        report["accuracy_by"] = physics_report(~wrong, labels, photons, params)
        plots.accuracy_by(report["accuracy_by"], out / "accuracy_by_physics.png")
        write_patterns(out / "patterns.csv", labels, outputs, calls, photons, shapes, params)
        shown = np.flatnonzero(wrong)[:GRID_EXAMPLES]
        report["misclassified"] = int(wrong.sum())
        if len(shown):
            plots.contact_sheet(
                images[shown],
                [titles[i] for i in shown],
                out / "misclassified.png",
                indices=shown,
                title=f"{len(shown)} of {int(wrong.sum())} misclassified patterns (#: index in --data), "
                "log10(1 + photons)",
            )
        if "features" in [layer.name for layer in model.layers]:
            _tsne(model, predict, labels, out)
    history = run_dir / "history.csv"
    if history.exists():
        rows = list(csv.DictReader(history.open()))
        plots.training_curves(rows, out / "training_curves.png")
    report["data"] = pattern
    report["precision"] = resolve_precision(precision)
    (out / "report.json").write_text(json_text(report))  # rows of the confusion matrix on a line each
    report["report"] = str(out / "report.json")
    return report


def write_patterns(path: Path, labels, outputs, calls, photons, shapes, params: dict) -> None:
    """One row a pattern: its index in --data, label, the model's call and scores, and its physics."""
    scores = outputs if outputs.ndim == 2 else outputs[:, None]
    heads = [f"p_{n}" for n in CLASS_NAMES] if scores.shape[1] == len(CLASS_NAMES) else ["p_single"]
    columns = ["index", "label", "predicted", *heads, "photons", "shape"]
    names = sorted(set(params) - set(columns))  # param/label is the label column already
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns + names)
        for i in range(len(labels)):
            row = [i, CLASS_NAMES[labels[i]], calls[i], *(f"{v:.5f}" for v in scores[i])]
            writer.writerow(row + [f"{photons[i]:.6g}", shapes[i], *(f"{params[n][i]:.6g}" for n in names)])
    tmp.replace(path)


def _tsne(model, predict, labels: np.ndarray, out: Path) -> None:
    """Seed 000 fig. 14: a t-SNE map of the ``features`` layer's outputs, coloured by particle count."""
    import keras  # loaded with the model already; imported here for the sub-model only
    from sklearn.manifold import TSNE  # seconds to import: only for feature models

    features = predict(keras.Model(model.input, model.get_layer("features").output), TSNE_EXAMPLES)
    n = len(features)
    embedding = TSNE(perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=0).fit_transform(features)
    plots.tsne(embedding, labels[:n], CLASS_NAMES, out / "tsne.png")


def _predictor(config, run_dir: Path, images: np.ndarray, batch_size: int):
    """``predict(model, limit=None)``: a model's raw outputs on the first ``limit`` images, preprocessed as
    training's input pipeline did (:func:`spizoo.models.training.pipeline_config`)."""
    import tensorflow as tf  # loaded with the model already

    data_cfg, _ = pipeline_config(config.data)
    info = load_dataset_info(run_dir)

    def predict(model, limit: int | None = None) -> np.ndarray:
        chosen = images[:limit]
        ds = tf.data.Dataset.from_tensor_slices((chosen, np.zeros(len(chosen)))).batch(batch_size)
        ds = ds.map(lambda x, y: (preprocess(x, data_cfg, info), y))
        return predict_dataset(model, ds, "predict")[0]

    return predict
