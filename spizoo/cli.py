"""The ``spizoo`` command line: one verb per area (``spizoo <verb> --help`` shows an example)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from spizoo import __version__
from spizoo.classify import ModelOutputError
from spizoo.config import ConfigError
from spizoo.serving.client import ServingClientError


def _simulate(args: argparse.Namespace) -> int:
    from spizoo import experiment, simulate

    overrides = [*args.set, *([f"seed={args.seed}"] if args.seed is not None else [])]
    config = experiment.load(args.config, overrides)
    summary = simulate.run(config, args.n, args.out, workers=args.workers, overwrite=args.overwrite)
    if args.augment:
        summary["augment"] = str(simulate.augment_sheet(config, args.out))
    print(json.dumps(summary, indent=2))
    return 0


def _fit_pattern(args: argparse.Namespace) -> int:
    from spizoo import experiment, fit

    config = experiment.load(args.config, args.set)
    report = fit.run(config, args.cxi, args.index, args.out, starts=args.starts, iterations=args.iterations)
    print(json.dumps({k: v for k, v in report.items() if k != "error_vs_simulations"}, indent=2))
    return 0


def _fit_summary(args: argparse.Namespace) -> int:
    from spizoo import fit

    summary = fit.summarise(args.directory, args.model)
    summary.pop("curve")
    summary.get("network", {}).pop("per_pattern", None)
    print(json.dumps(summary, indent=2))
    return 0


def _generate(args: argparse.Namespace, beam_args: list[str]) -> int:
    from spizoo import experiment
    from spizoo.beam_pipelines import generate

    config = experiment.load(args.config, args.set)
    info, counters = generate.run(config, args.out, beam_args, overwrite=args.overwrite)
    print("Beam counters:")
    for name, value in counters.items():
        print(f"  {name:<24}{value:>12,}")
    print(
        json.dumps(
            {
                "out": args.out,
                "splits": {k: {"examples": v["examples"], "models": v["models"]} for k, v in info["splits"].items()},
            },
            indent=2,
        )
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    from spizoo import experiment
    from spizoo.models import training

    config = experiment.load(args.config, args.set)
    summary = training.train(config, args.data, args.out)
    print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spizoo.models import evaluation

    report = evaluation.evaluate(args.run_dir, args.data, target_fpr=args.target_fpr)
    print(json.dumps(report, indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from spizoo.serving import export

    path = export.export(
        args.run_dir, args.base_path, args.name, version=args.version, config_base_path=args.config_base_path
    )
    print(
        json.dumps(
            {**export.summary(path), "models_config": str(Path(args.base_path) / export.MODELS_CONFIG)}, indent=2
        )
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from spizoo.serving.batching import BatchingParameters, read_batching_parameters
    from spizoo.serving.server import Server, manager_from_args

    batching = None
    if args.enable_batching:
        batching = (
            read_batching_parameters(args.batching_parameters_file)
            if args.batching_parameters_file
            else (BatchingParameters())
        )
    elif args.batching_parameters_file:
        raise ValueError("--batching-parameters-file needs --enable-batching")
    manager = manager_from_args(
        args.model_config_file,
        args.model_name,
        args.model_base_path,
        poll_seconds=args.file_system_poll_wait_seconds,
        batching=batching,
    )
    server = Server(
        manager, host=args.host, rest_port=args.rest_api_port, grpc_port=args.port, max_body_bytes=args.max_body_bytes
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        loaded = {name: sorted(v) for name, v in manager.loaded.items()}
        print(
            f"spizoo serve: versions {loaded} on REST http://{args.host}:{server.rest_port} "
            f"and gRPC {args.host}:{server.grpc_port}" + (" with batching" if batching else ""),
            flush=True,
        )
        stop.wait()
    print("spizoo serve: stopped", flush=True)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from spizoo.serving import predict

    rows = predict.predict_file(args.server, args.model, args.file, batch_size=args.batch_size, out=args.out)
    if not args.out:
        print(json.dumps(rows, indent=2))
        return 0
    summary = {"frames": len(rows), "out": args.out}
    if rows and "classes" in rows[0]:
        classes = [r["classes"] for r in rows]
        summary["frames_per_class"] = {str(c): classes.count(c) for c in sorted(set(classes))}
    print(json.dumps(summary))
    return 0


def _ingest(args: argparse.Namespace, beam_args: list[str]) -> int:
    import yaml

    from spizoo.beam_pipelines import ingest
    from spizoo.beam_pipelines.config import DatasetConfig

    def mapping(text: str, option: str) -> dict:
        value = yaml.safe_load(text)
        if not isinstance(value, dict):
            raise ValueError(f"{option} must be a mapping such as '{{train: 0.8, validation: 0.2}}', got {text!r}")
        return value

    splits = mapping(args.splits, "--splits")
    shards = mapping(args.shards, "--shards") if args.shards else {k: 4 if k == "train" else 1 for k in splits}
    dataset = DatasetConfig(name=args.name, splits=splits, shards=shards, compression=args.compression)
    config = ingest.make_config(
        args.files,
        labels=args.labels,
        dataset=dataset,
        seed=args.seed,
        image_dataset=args.dataset or "",
        unit_size=args.unit_size,
    )
    info, counters = ingest.run(config, args.out, beam_args, overwrite=args.overwrite)
    summary = {k: {"examples": v["examples"], "classes": v["classes"]} for k, v in info["splits"].items()}
    print(json.dumps({"out": args.out, "image_shape": info["image_shape"], "splits": summary}, indent=2))
    return 0


def _classify(args: argparse.Namespace) -> int:
    from spizoo import classify

    predictor = classify.load_predictor(args.model, args.threshold)
    summary = classify.classify_files(predictor, args.files, args.out, batch_size=args.batch_size, dataset=args.dataset)
    print(json.dumps(summary, indent=2))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from spizoo import classify
    from spizoo.monitor import Monitor

    out = args.out or f"spizoo-monitor-{Path(args.directory).resolve().name}"
    monitor = Monitor(
        classify.load_predictor(args.model, args.threshold),
        args.directory,
        out,
        pattern=args.pattern,
        window=args.window,
        batch_size=args.batch_size,
        retries=args.retries,
        dataset=args.dataset,
    )
    monitor.run(args.interval, once=args.once)
    return 0


def _verb(verbs, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows ``description`` (with its example) as written."""
    return verbs.add_parser(
        name,
        help=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(description),
    )


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    """MODEL and the options of the commands that run it on experiment files (classify, monitor)."""
    parser.add_argument("model", help="run directory, SavedModel directory, or server URL with the model name")
    parser.add_argument("--dataset", help="image stack inside the files (default: the CXI locations)")
    parser.add_argument("--threshold", type=float, help="single-hit score threshold")
    parser.add_argument("--batch-size", type=int, default=64, help="frames per model call")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spizoo", description="XFEL single-particle-imaging model zoo and data layer."
    )
    parser.add_argument("--version", action="version", version=f"spizoo {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    sim = _verb(
        verbs,
        "simulate",
        "simulate diffraction patterns into a CXI file with a PNG contact sheet",
        """\
            Simulate patterns 0..N-1 of a config into OUT/patterns.cxi (CXI layout, SI units, labels and
            parameters under /entry_1/spizoo), OUT/contact_sheet.png and OUT/config.yaml (resolved config).

            With --augment, also OUT/augment.png: pattern 0 under each filter of the config's augmentation
            policy (seed 001 appendix D), side by side.

            example:
              spizoo simulate configs/quickstart.yaml -n 64 --out out/sim
              spizoo simulate configs/sim_msft.yaml -n 32 --out out/msft --augment
              spizoo simulate configs/sim_spi.yaml -n 1000 --out out/spi --set sim.detector.distance_m=[0.4,0.5]
            """,
    )
    sim.add_argument("config", help="YAML config file")
    sim.add_argument("-n", type=int, default=64, help="number of patterns (default 64)")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    sim.add_argument("--seed", type=int, default=None, help="override the config's seed")
    sim.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing OUT/patterns.cxi")
    sim.add_argument("--augment", action="store_true", help="also write OUT/augment.png (the augmentation filters)")
    sim.set_defaults(func=_simulate)

    fit = _verb(
        verbs,
        "fit-pattern",
        "reconstruct orientation and size of one MSFT pattern by Monte-Carlo simplex (the baseline)",
        """\
            Fit (orientation, radius) of frame INDEX of a CXI file made with a kind: msft config, by Nelder-Mead
            from STARTS random points, ITERATIONS steps each, every step running the forward simulator
            (seed 001 section 3). Writes OUT/fit_INDEX.json (parameters, errors against the stored truth if
            present, forward simulations, seconds) and OUT/fit_INDEX.png (pattern, best fit, convergence).

            example:
              spizoo simulate configs/sim_msft.yaml -n 4 --out out/msft
              spizoo fit-pattern configs/sim_msft.yaml out/msft/patterns.cxi --index 2 --out out/fit
            """,
    )
    fit.add_argument("config", help="YAML config with sim.kind: msft (the forward model)")
    fit.add_argument("cxi", help="CXI file holding the pattern")
    fit.add_argument("--index", type=int, default=0, help="frame to fit (default 0)")
    fit.add_argument("--starts", type=int, default=50, help="random starting points (default 50)")
    fit.add_argument("--iterations", type=int, default=50, help="simplex iterations per start (default 50)")
    fit.add_argument("--out", required=True, help="output directory")
    _add_set(fit)
    fit.set_defaults(func=_fit_pattern)

    summ = _verb(
        verbs,
        "fit-summary",
        "seed 001 fig. 4b: forward-fit error against simulations over many patterns, against the network",
        """\
            Gather DIRECTORY/fit_<i>/fit_<i>.json (spizoo fit-pattern on DIRECTORY/patterns.cxi) into
            DIRECTORY/summary.json and DIRECTORY/error_vs_simulations.png: median and central 90 % of the
            best fit's mean relative error against forward simulations, and the wall time per pattern. With
            --model, the regressor predicts the same patterns and is drawn and timed alongside.

            example:
              spizoo simulate configs/sim_msft.yaml -n 3 --out out/fits
              for i in 0 1 2; do spizoo fit-pattern configs/sim_msft.yaml out/fits/patterns.cxi \\
                --index $i --starts 5 --out out/fits/fit_$i; done
              spizoo fit-summary out/fits --model out/msft_run
            """,
    )
    summ.add_argument("directory", help="directory with patterns.cxi, config.yaml and fit_<i>/ reports")
    summ.add_argument("--model", default=None, help="regressor run directory, SavedModel or server URL")
    summ.set_defaults(func=_fit_summary)

    gen = _verb(
        verbs,
        "generate",
        "generate a sharded TFRecord dataset with Apache Beam",
        """\
            Simulate dataset.patterns patterns of CONFIG, augment the splits in dataset.augment_splits, and
            write OUT/NAME-SPLIT.tfrecord-00000-of-00016 shards with OUT/dataset_info.json (splits, class
            counts, schema, resolved config) and OUT/train_mean.npy, train_std.npy (per-pixel statistics).
            Work happens under OUT.incomplete/; OUT appears only when the pipeline succeeds, and running
            the same command again after a failure resumes where it stopped. Every option this command
            does not know is passed to Beam; without --runner it runs locally on all cores (DirectRunner).

            example:
              spizoo generate configs/data_spi_hits.yaml --out out/spi_hits --set dataset.patterns=2000
              spizoo generate configs/data_msft.yaml --out gs://bucket/msft --runner DataflowRunner \\
                  --project P --region R --temp_location gs://bucket/tmp
            """,
    )
    gen.add_argument("config", help="YAML config with sim, augment and dataset sections")
    gen.add_argument("--out", required=True, help="output directory")
    _add_set(gen)
    gen.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    gen.set_defaults(func=_generate, passes_unknown=True)

    tr = _verb(
        verbs,
        "train",
        "train a registered model on a generated dataset",
        """\
            Fit config.model on DATA's training split, validating on its validation split, into OUT:
            config.yaml, dataset statistics, backup/ (the same command after a crash resumes from the last
            finished epoch), best.keras, last.keras, history.csv, logs/ (TensorBoard), training.json.
            VGG16 feature models (model.name: vgg16_features) are fitted by logistic regression instead
            and give best.keras and training.json.

            example:
              spizoo generate configs/quickstart.yaml --out out/quick_ds
              spizoo train configs/quickstart.yaml --data out/quick_ds --out out/quick_run
            """,
    )
    tr.add_argument("config", help="YAML config with model, train and data sections")
    tr.add_argument("--data", required=True, help="dataset directory made by spizoo generate")
    tr.add_argument("--out", required=True, help="run directory (reused to resume)")
    _add_set(tr)
    tr.set_defaults(func=_train)

    ev = _verb(
        verbs,
        "evaluate",
        "evaluate a trained run on a dataset split: JSON report and plots",
        """\
            Evaluate RUN_DIR/best.keras on the records matching DATA into RUN_DIR/evaluation/: report.json
            (classifiers: accuracy, confusion matrix, good/bad table, false-negative and false-positive
            rates per particle geometry, the single-hit threshold for --target-fpr; regressors: mean and
            maximum relative errors) and PNGs (confusion matrix or error histograms, training curves,
            misclassified patterns, t-SNE of VGG16 features).

            example:
              spizoo evaluate out/quick_run --data 'out/quick_ds/*-test.tfrecord-*' --target-fpr 0.01
            """,
    )
    ev.add_argument("run_dir", help="run directory made by spizoo train")
    ev.add_argument("--data", required=True, help="glob of TFRecord shards, e.g. 'DIR/*-test.tfrecord-*'")
    ev.add_argument("--target-fpr", type=float, default=0.01, help="false-positive rate for the single-hit threshold")
    ev.set_defaults(func=_evaluate)

    ex = _verb(
        verbs,
        "export",
        "export a trained run as a TF Serving SavedModel version",
        """\
            Write BASE_PATH/NAME/VERSION/ (next version when not given): a SavedModel taking raw detector
            images (float32 [batch, H, W] photon counts) with the training preprocessing in its graph, its
            assets and warm-up requests; add or update NAME in BASE_PATH/models.config (label "stable" on
            this version) and write BASE_PATH/monitoring.config.

            example:
              spizoo export out/quick_run --name hits --base-path out/models
              spizoo serve --model-config-file out/models/models.config
            """,
    )
    ex.add_argument("run_dir", help="run directory made by spizoo train")
    ex.add_argument("--name", required=True, help="model name (the URL's /v1/models/NAME)")
    ex.add_argument("--base-path", required=True, help="directory holding one folder per model")
    ex.add_argument("--version", type=int, help="version number (default: next)")
    ex.add_argument(
        "--config-base-path", help="base path written into models.config instead of BASE_PATH (e.g. /models)"
    )
    ex.set_defaults(func=_export)

    sv = _verb(
        verbs,
        "serve",
        "serve exported models over TF Serving's REST and gRPC APIs",
        """\
            Serve the models of a models.config (or one --model-name/--model-base-path) as TF Serving does:
            REST on --rest-api-port (/v1/models/NAME[:predict|:classify|:regress|/metadata]), gRPC
            PredictionService and ModelService on --port, Prometheus metrics at
            /monitoring/prometheus/metrics. New versions under a base path are loaded while serving.
            Stop with Ctrl-C.

            example:
              spizoo serve --model-config-file out/models/models.config --rest-api-port 8501 --port 8500
              curl -d '{"instances": [[[0, 1], [2, 3]]]}' localhost:8501/v1/models/hits:predict
            """,
    )
    sv.add_argument("--model-config-file", help="models.config (text ModelServerConfig)")
    sv.add_argument("--model-name", help="name of the one model served from --model-base-path")
    sv.add_argument("--model-base-path", help="directory of numbered SavedModel versions")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    sv.add_argument("--rest-api-port", type=int, default=8501, help="REST port (default 8501)")
    sv.add_argument("--enable-batching", action="store_true", help="batch concurrent requests on the server")
    sv.add_argument("--batching-parameters-file", help="TF Serving batching parameters (text proto)")
    sv.add_argument(
        "--file-system-poll-wait-seconds", type=float, default=1.0, help="how often base paths are polled (0: never)"
    )
    sv.add_argument("--max-body-bytes", type=int, default=64 * 2**20, help="largest request accepted")
    sv.set_defaults(func=_serve)

    pr = _verb(
        verbs,
        "predict",
        "send the frames of a CXI/HDF5 file to a model server",
        """\
            Send every frame of FILE (its /entry_1/data_1/data) to SERVER's serving_default signature and
            print one row per frame (or write them as CSV with --out).

            example:
              spizoo predict --server http://127.0.0.1:8501 --model hits out/spi/patterns.cxi
              spizoo predict --server grpc://127.0.0.1:8500 --model hits out/spi/patterns.cxi --out pred.csv
            """,
    )
    pr.add_argument("file", help="CXI or HDF5 file of frames")
    pr.add_argument("--server", required=True, help="http://HOST:PORT (REST) or grpc://HOST:PORT")
    pr.add_argument("--model", required=True, help="model name on the server")
    pr.add_argument("--batch-size", type=int, default=16, help="frames per request")
    pr.add_argument("--out", help="CSV file for the results")
    pr.set_defaults(func=_predict)

    ing = _verb(
        verbs,
        "ingest",
        "turn frames of experiment CXI/HDF5 files into a TFRecord dataset (Apache Beam)",
        """\
            Write the frames of FILES in the dataset schema of spizoo generate (sharded TFRecords,
            dataset_info.json, training statistics), so that spizoo train trains or fine-tunes on real data.
            --labels: CSV with columns file,frame,label (0-4 particles); only labelled frames are kept.
            Without it every frame is kept, unlabelled (-1). Frames go to splits in blocks of --unit-size.
            Options spizoo does not know are passed to Beam (e.g. --runner=FlinkRunner).

            example:
              spizoo ingest run_0042.cxi run_0043.cxi --labels diffusion_map_labels.csv --out out/real
              spizoo train configs/train_resnet10_hits.yaml --data out/real --out out/real_run
            """,
    )
    ing.add_argument("files", nargs="+", help="CXI or HDF5 files")
    ing.add_argument("--out", required=True, help="dataset directory (OUT.incomplete/ until done)")
    ing.add_argument("--labels", help="CSV of file,frame,label")
    ing.add_argument("--name", default="real", help="shard file prefix (default: real)")
    ing.add_argument("--splits", default="{train: 0.8, validation: 0.1, test: 0.1}", help="YAML mapping")
    ing.add_argument("--shards", help="YAML mapping of shards per split (default: 4 for train, else 1)")
    ing.add_argument("--compression", default="none", choices=("none", "gzip"))
    ing.add_argument("--dataset", help="image stack inside the files (default: the CXI locations)")
    ing.add_argument("--unit-size", type=int, default=256, help="consecutive frames per unit (and split block)")
    ing.add_argument("--seed", type=int, default=0, help="seeds the split assignment")
    ing.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    ing.set_defaults(func=_ingest, passes_unknown=True)

    cl = _verb(
        verbs,
        "classify",
        "classify every frame of CXI/HDF5 files into a results file",
        """\
            Run MODEL on every frame of FILES (read only, a batch at a time) and write, per file and frame,
            the model's outputs (class probabilities, class, single-hit score and flag; or orientation and
            size) to OUT (.h5 or .csv), a PNG of the hit rate over frames, and a summary.

            MODEL: a run directory, an exported SavedModel (version or base path), or a server URL naming
            the model (http://HOST:8501/NAME, grpc://HOST:8500/NAME). The single-hit threshold is
            --threshold, else the run's evaluated operating point, else 0.5.

            example:
              spizoo classify out/quick_run run_0042.cxi run_0043.cxi --out results/run_42_43.h5
            """,
    )
    _add_model_args(cl)
    cl.add_argument("files", nargs="+", help="CXI or HDF5 files")
    cl.add_argument("--out", required=True, help="results file (.h5 or .csv); never overwritten")
    cl.set_defaults(func=_classify)

    mo = _verb(
        verbs,
        "monitor",
        "classify frames as the DAQ writes them and show the hit rate",
        """\
            Watch DIRECTORY for CXI/HDF5 files (also files still growing), classify new frames every
            --interval seconds, append them to OUT/monitor.csv, print the hit rate and single-hit fraction
            of the last --window frames, and refresh OUT/monitor.png. A half-written file is retried, a
            corrupt one reported and skipped; restarted, it continues without classifying a frame twice.
            MODEL as for spizoo classify.

            example:
              spizoo monitor out/quick_run /data/run_0042 --out monitor_0042 --interval 2
            """,
    )
    _add_model_args(mo)
    mo.add_argument("directory", help="directory the DAQ writes files into")
    mo.add_argument("--out", help="results directory (default: ./spizoo-monitor-<DIRECTORY name>)")
    mo.add_argument("--pattern", default="*.cxi", help="file names to watch (default *.cxi)")
    mo.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    mo.add_argument("--window", type=int, default=500, help="frames in the running hit rate")
    mo.add_argument("--retries", type=int, default=5, help="failed reads before a file is skipped as corrupt")
    mo.add_argument("--once", action="store_true", help="scan once and exit")
    mo.set_defaults(func=_monitor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown and not getattr(args, "passes_unknown", False):
        build_parser().error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args, unknown) if getattr(args, "passes_unknown", False) else args.func(args)
    except (ConfigError, ValueError, OSError, ServingClientError, ModelOutputError) as err:
        print(f"spizoo {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not type(err).__module__.startswith("tensorflow"):
            raise
        # A TensorFlow runtime error (e.g. a shard failing its checksum): its message, not a graph traceback.
        lines = [ln.strip() for ln in getattr(err, "message", str(err)).splitlines()]
        lines = [
            ln for ln in lines if ln and not ln.startswith(("[[", "{{", "Detected at node", "File ", "Graph execution"))
        ]
        print(f"spizoo {args.verb}: error: {lines[-1] if lines else type(err).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
