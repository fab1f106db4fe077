"""``spizoo export``: a trained run as a TF Serving SavedModel version, with the server's config files."""

from __future__ import annotations

import argparse
from pathlib import Path

from spizoo.commands._common import add_precision, input_dir, load_run, model_reference, output_dir, quoted
from spizoo.serving import export

DESCRIPTION = """\
    Write BASE_PATH/NAME/VERSION/ (next version when not given): a SavedModel taking raw detector
    images (float32 [batch, H, W] photon counts) with the training preprocessing in its graph, its
    assets and warm-up requests; add or update NAME in BASE_PATH/models.config (label "stable" on
    this version) and write BASE_PATH/monitoring.config.

    example:
      spizoo export out/quick_run --name hits --base-path out/models
      spizoo serve --model-config-file out/models/models.config
    """
INTERRUPTED = "interrupted; no version was written (the same command starts afresh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=model_reference, help="run directory made by spizoo train, or zoo:NAME")
    parser.add_argument("--name", required=True, help="model name (the URL's /v1/models/NAME)")
    parser.add_argument("--base-path", required=True, help="directory holding one folder per model")
    parser.add_argument("--version", type=int, help="version number (default: next)")
    parser.add_argument(
        "--config-base-path", help="base path written into models.config instead of BASE_PATH (e.g. /models)"
    )
    add_precision(parser, "float32")


def run(args: argparse.Namespace) -> dict:
    if Path(args.run_dir).exists():  # a missing one: load_run says to train first
        input_dir(args.run_dir, "RUN_DIR", hint="give the run directory of `spizoo train … --out RUN_DIR`")
    output_dir(args.base_path, "--base-path")
    path = export_run(
        args.run_dir,
        args.base_path,
        args.name,
        version=args.version,
        config_base_path=args.config_base_path,
        precision=args.precision,
    )
    return {**export.summary(path), "models_config": str(Path(args.base_path) / export.MODELS_CONFIG)}


def export_run(run_dir: str | Path, base_path: str | Path, name: str, **options) -> Path:
    """:func:`spizoo.serving.export.export` of a run directory with its own config's data section and task."""
    config, task = load_run(run_dir)
    return export.export(run_dir, base_path, name, data=config.data, task=task, **options)


def summary_line(summary: dict) -> str:
    return f"exported {summary['path']}; serve it with: spizoo serve --model-config-file {summary['models_config']}"


def summary_rows(summary: dict, args: argparse.Namespace) -> list[tuple[str, str]]:
    shape = "×".join(str(n) for n in summary["image_shape"])
    labels = summary.get("labels")
    return [
        ("version", f"{summary['path']} (SavedModel: raw {shape} frames in, the training preprocessing in its graph)"),
        ("outputs", f"classes {', '.join(labels)}" if labels else "quaternion, radius_nm"),
        ("server config", f"{summary['models_config']}, {Path(summary['models_config']).parent / 'monitoring.config'}"),
        ("next", f"spizoo serve --model-config-file {quoted(summary['models_config'])}"),
    ]
