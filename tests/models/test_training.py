import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from spizoo.beam_pipelines import generate
from spizoo.data.pipeline import load_dataset_info, make_dataset
from spizoo.experiment import load
from spizoo.models import load_model, precision, registry, training

DATA = [
    "dataset.patterns=160",
    "sim.patterns_per_model=8",
    "sim.detector.pixels=[32,32]",
    "dataset.shards={train: 2, validation: 1, test: 1}",
    "dataset.splits={train: 0.7, validation: 0.15, test: 0.15}",
    "data.crop=32",
    "data.batch_size=16",
]
TRAIN = [*DATA, "train.mixed_precision=float32", "train.deterministic=true", "model.options={stack_blocks: [1, 1]}"]
IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "ds"
    generate.run(load("configs/quickstart.yaml", DATA), out, IN_MEMORY)
    return out


def test_a_run_directory_holds_everything_to_reproduce_and_resume(data_dir, tmp_path):
    config = load("configs/quickstart.yaml", [*TRAIN, "train.epochs=2"])
    summary = training.train(config, data_dir, tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "dataset_info.json",
        "train_mean.npy",
        "best.keras",
        "last.keras",
        "history.csv",
        "training.json",
    ):
        assert (run / name).exists(), name
    assert (run / "backup" / "training_metadata.json").exists() and list((run / "logs").iterdir())
    assert load(run / "config.yaml") == config
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1] and "val_accuracy" in rows[0]
    assert summary["policy"] == "float32" and summary["epochs"] == 2 and summary["resumed_from_epoch"] == 0
    _assert_final_is_last_row(summary, rows)
    assert json.loads((run / "training.json").read_text()) == summary
    model = load_model(run / "last.keras")
    mean = np.load(data_dir / "train_mean.npy")
    np.testing.assert_allclose(model.get_layer("standardize").mean.numpy()[..., 0], mean)  # normalisation in the graph
    # last.keras is the model validated last: its accuracy on the validation split is the summary's val_accuracy.
    data_cfg, in_graph = training.pipeline_config(config.data)
    info = load_dataset_info(data_dir)
    assert in_graph
    val = make_dataset(str(data_dir / "*-validation.tfrecord-*"), data_cfg, training=False, info=info)
    outputs, labels = training.predict_dataset(model, val, "validation")
    assert len(labels) == info["splits"]["validation"]["examples"] > 0
    assert (outputs.argmax(1) == labels).mean() == pytest.approx(summary["final"]["val_accuracy"], abs=1e-6)
    # fit ran the precise batch-norm callback before that validation: the saved moving statistics are the average
    # over the first BATCH_NORM_BATCHES training batches shuffled with seed + 1 (not Keras' momentum-0.99 lag),
    # so measuring them again on those batches with the saved weights changes nothing.
    norms = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    assert norms
    saved = [(la.moving_mean.numpy().copy(), la.moving_variance.numpy().copy()) for la in norms]
    batches = make_dataset(
        str(data_dir / "*-train.tfrecord-*"), data_cfg, training=True, seed=config.seed + 1, info=info, epochs=(0, 1)
    )
    callback = training.batch_norm_statistics_callback(batches, training.BATCH_NORM_BATCHES)
    callback.set_model(model)
    for la in norms:  # forget them first, so that agreement cannot come from leaving them as they were
        la.moving_mean.assign(np.zeros(la.moving_mean.shape, np.float32))
        la.moving_variance.assign(np.ones(la.moving_variance.shape, np.float32))
    callback.on_test_begin()
    for la, (mean_, variance) in zip(norms, saved, strict=True):
        np.testing.assert_allclose(mean_, la.moving_mean.numpy(), rtol=1e-4, atol=1e-5, err_msg=la.name)
        np.testing.assert_allclose(variance, la.moving_variance.numpy(), rtol=1e-4, atol=1e-5, err_msg=la.name)
    # The same command with more epochs continues from the backup.
    more = training.train(load("configs/quickstart.yaml", [*TRAIN, "train.epochs=3"]), data_dir, run)
    assert more["resumed_from_epoch"] == 2
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    _assert_final_is_last_row(more, rows)
    assert json.loads((run / "training.json").read_text()) == more
    # Run again once finished: nothing to do, the summary comes back.
    again = training.train(load("configs/quickstart.yaml", [*TRAIN, "train.epochs=3"]), data_dir, run)
    assert again["resumed_from_epoch"] == 2 and again["epochs"] == 3 and again == more
    assert keras.mixed_precision.global_policy().name == "float32"  # the global policy is left as found
    # Another config, or another dataset, is refused and changes nothing in the run directory.
    before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
    other = load("configs/quickstart.yaml", [*TRAIN, "train.epochs=3", "train.learning_rate=0.01"])
    with pytest.raises(ValueError, match=r"another config: train.learning_rate \(0.001 there, 0.01 here\)"):
        training.train(other, data_dir, run)
    info = json.loads((data_dir / "dataset_info.json").read_text())
    elsewhere = tmp_path / "other_dataset"
    shutil.copytree(data_dir, elsewhere)
    (elsewhere / "dataset_info.json").write_text(json.dumps({**info, "config_hash": "0123456789ab"}))
    with pytest.raises(ValueError, match="trained on another dataset .*0123456789ab"):
        training.train(load("configs/quickstart.yaml", [*TRAIN, "train.epochs=3"]), elsewhere, run)
    assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before


def _assert_final_is_last_row(summary, rows):
    """training.json's final metrics are the last epoch's row of history.csv (and the loss is a real number)."""
    last = {k: float(v) for k, v in rows[-1].items() if k != "epoch"}
    assert set(summary["final"]) == set(last) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert summary["final"] == pytest.approx(last, rel=1e-6)
    assert np.isfinite(last["loss"]) and last["loss"] > 0 and 0 <= last["val_accuracy"] <= 1


def test_precision_and_strategy_choices():
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision("auto") == ("mixed_bfloat16" if precision.cpu_has_bf16() else "float32")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        os.environ.pop("TF_CONFIG", None)
        training.make_strategy("multi_worker")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        training.TrainConfig(mixed_precision="half")


def test_missing_split_is_a_clear_error(data_dir, tmp_path):
    config = load("configs/quickstart.yaml", [*TRAIN, "train.validation_split=holdout"])
    with pytest.raises(ValueError, match="no examples in split 'holdout'"):
        training.train(config, data_dir, tmp_path / "run")


def test_cosine_schedule_decays_the_rate_to_zero_over_the_run(data_dir, tmp_path):
    tc = training.TrainConfig(epochs=4, learning_rate=1e-3, schedule="cosine")
    rate = training.learning_rate(tc, steps_per_epoch=10)
    assert [float(rate(s)) for s in (0, 20)] == pytest.approx([1e-3, 5e-4]) and float(rate(40)) < 1e-12
    assert training.learning_rate(training.TrainConfig(learning_rate=2e-3), 10) == 2e-3
    with pytest.raises(ValueError, match="schedule must be one of constant, cosine, got 'linear'"):
        training.TrainConfig(schedule="linear")
    # In a run: the saved optimizer has taken every step, and its rate has reached 0.
    config = load("configs/quickstart.yaml", [*TRAIN, "train.epochs=2", "train.schedule=cosine"])
    training.train(config, data_dir, tmp_path / "run")
    optimizer = load_model(tmp_path / "run" / "last.keras").optimizer
    assert int(optimizer.iterations.numpy()) > 0 and float(optimizer.learning_rate.numpy()) < 1e-12


@pytest.mark.slow
def test_sigkill_mid_training_then_the_same_command_ends_where_an_uninterrupted_run_ends(data_dir, tmp_path):
    sets = []
    for item in [*TRAIN, "train.epochs=5"]:
        sets += ["--set", item]
    cmd = [sys.executable, "-m", "spizoo.cli", "train", "configs/quickstart.yaml", "--data", str(data_dir), *sets]
    subprocess.run([*cmd, "--out", str(tmp_path / "ref")], check=True, capture_output=True)

    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    meta = tmp_path / "run" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 300
    while (
        proc.poll() is None and time.monotonic() < deadline and not (meta.exists() and '"epoch": 2' in meta.read_text())
    ):
        time.sleep(0.05)
    time.sleep(0.3)  # into the third epoch
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([*cmd, "--out", str(tmp_path / "run")], check=True, capture_output=True)
    ref = keras.saving.load_model(tmp_path / "ref" / "last.keras")
    resumed = keras.saving.load_model(tmp_path / "run" / "last.keras")
    for a, b in zip(ref.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_corrupt_shard_during_training_is_a_one_line_error(data_dir, tmp_path, capsys):
    import shutil

    from spizoo import cli

    broken = tmp_path / "ds"
    shutil.copytree(data_dir, broken)
    shard = sorted(broken.glob("*-train.tfrecord-*"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, a bad checksum
    shard.write_bytes(bytes(data))
    sets = [item for t in [*TRAIN, "train.epochs=1"] for item in ("--set", t)]
    code = cli.main(["train", "configs/quickstart.yaml", "--data", str(broken), "--out", str(tmp_path / "run"), *sets])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"spizoo train: error: {shard}: bad data checksum at byte ")
    assert "data.skip_corrupt: true" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _consecutive_free_ports(n: int) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1."""
    for base in range(20000, 60000, 97):
        try:
            sockets = [socket.create_server(("127.0.0.1", base + i)) for i in range(n)]
        except OSError:
            continue
        for s in sockets:
            s.close()
        return base
    raise RuntimeError("no free ports")


def _slurm_task(procid: int, tasks: int, nodes: str, per_node: str) -> dict:
    return {
        "SLURM_PROCID": str(procid),
        "SLURM_STEP_NUM_TASKS": str(tasks),
        "SLURM_STEP_NODELIST": nodes,
        "SLURM_STEP_TASKS_PER_NODE": per_node,
    }


def test_tf_config_comes_from_the_slurm_job_step(monkeypatch):
    from spizoo.models import cluster

    monkeypatch.delenv("TF_CONFIG", raising=False)
    for name, value in _slurm_task(2, 4, "max-exfl[061-062]", "2(x2)").items():
        monkeypatch.setenv(name, value)
    assert cluster.ensure_tf_config() == (
        "TF_CONFIG from SLURM: worker 2 of 4 (max-exfl061:8888, max-exfl061:8889, max-exfl062:8888, max-exfl062:8889)"
    )
    assert json.loads(os.environ["TF_CONFIG"])["task"] == {"type": "worker", "index": 2}
    assert cluster.ensure_tf_config() is None  # a TF_CONFIG that is there is kept
    monkeypatch.delenv("TF_CONFIG")
    monkeypatch.delenv("SLURM_STEP_NODELIST")
    assert cluster.ensure_tf_config() is None and "TF_CONFIG" not in os.environ  # not a job step
    with pytest.raises(ValueError, match="not a task of a SLURM job step .srun.: SLURM_STEP_NODELIST not set"):
        cluster.tf_config_from_slurm()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["tf_config", "slurm"])
def test_two_workers_over_loopback_finish_with_identical_weights(data_dir, tmp_path, launcher):
    """Two workers of TF_CONFIG, or two tasks of a faked SLURM job step on one node (127.0.0.1)."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    sets = [item for t in [*TRAIN, "train.epochs=2", "train.strategy=multi_worker"] for item in ("--set", t)]
    cmd = [sys.executable, "-m", "spizoo.cli", "train", "configs/quickstart.yaml", "--data", str(data_dir)]
    procs, port_base = [], _consecutive_free_ports(2)
    for i in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
        env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
        if launcher == "slurm":
            env.update(_slurm_task(i, 2, "127.0.0.1", "2"), SPIZOO_TF_PORT_BASE=str(port_base))
        else:
            env["TF_CONFIG"] = json.dumps(tf_config)
        procs.append(
            subprocess.Popen(
                [*cmd, "--out", str(tmp_path / "run"), *sets], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    for i, p in enumerate(procs):
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-2000:]
        if launcher == "slurm":
            assert f"TF_CONFIG from SLURM: worker {i} of 2 (127.0.0.1:{port_base}, 127.0.0.1:{port_base + 1})" in (
                out.decode()
            )
    chief = load_model(tmp_path / "run" / "last.keras")
    other = load_model(tmp_path / "run" / "worker-1" / "last.keras")  # non-chief files kept apart
    initial = registry.build("resnet10_classifier", input_shape=(32, 32, 1), stack_blocks=[1, 1])
    assert not np.array_equal(chief.weights[1].numpy(), initial.weights[1].numpy())  # it trained
    # Gradients are all-reduced, so the trained weights agree bit for bit; batch norm's moving statistics are
    # each worker's own (Keras' default, unsynchronised batch norm) and the chief's are the run's.
    for a, b in zip(chief.trainable_weights, other.trainable_weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert json.loads((tmp_path / "run" / "training.json").read_text())["strategy"] == "multi_worker"


def test_worker_run_dir_keeps_non_chief_files_apart(tmp_path, monkeypatch):
    def with_task(kind, index, chief=False):
        cluster = {"worker": ["a:1", "b:2"], **({"chief": ["c:3"]} if chief else {})}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))
        return training.worker_run_dir(tmp_path, "multi_worker")

    assert with_task("worker", 0) == tmp_path
    assert with_task("worker", 1) == tmp_path / "worker-1"
    assert with_task("worker", 0, chief=True) == tmp_path / "worker-0"
    assert with_task("chief", 0, chief=True) == tmp_path
    assert training.worker_run_dir(tmp_path, "default") == tmp_path


def test_batch_norm_statistics_are_the_average_over_training_batches_before_validation():
    import tensorflow as tf

    inputs = keras.Input((3,))
    drop = keras.layers.Dropout(0.5)
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(drop(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=5.0, scale=2.0, size=(16, 3)).astype(np.float32) for _ in range(4)]
    dataset = tf.data.Dataset.from_tensor_slices((np.stack(batches), np.zeros(4))).map(lambda x, y: (x, y))
    callback = training.batch_norm_statistics_callback(dataset, 3)
    callback.set_model(model)
    callback.on_test_begin()
    np.testing.assert_allclose(norm.moving_mean.numpy(), np.mean([b.mean(0) for b in batches[:3]], 0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), np.mean([b.var(0) for b in batches[:3]], 0), rtol=1e-4)
    assert norm.momentum == 0.99 and drop.rate == 0.5  # restored; dropout was off while measuring


def test_an_empty_split_says_how_many_patterns_would_fill_it():
    info = {
        "config": {"dataset": {"splits": {"train": 0.8, "validation": 0.1, "test": 0.1}}},
        "splits": {"train": {"models": 2, "patterns": 200}, "validation": {"models": 0, "patterns": 0}},
    }
    message = training._empty_split_message(Path("ds"), info, "validation")
    assert "2 particle models (or frame blocks) of ~100" in message and "--set dataset.patterns=3000" in message


def test_a_backup_cut_off_by_a_crash_is_dropped_unless_an_earlier_one_is_beside_it(tmp_path, capsys):
    from spizoo.models.training import resume_epoch

    backup = tmp_path / "backup"
    backup.mkdir()
    with h5py.File(backup / "latest.weights.h5", "w") as f:
        f["w"] = np.zeros(1000)
    whole = (backup / "latest.weights.h5").read_bytes()
    (backup / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    assert resume_epoch(tmp_path) == 3  # readable: resumed
    (backup / "latest.weights.h5.bkp").write_bytes(whole)
    (backup / "latest.weights.h5").write_bytes(whole[:700])  # cut off mid-write
    assert resume_epoch(tmp_path) == 3 and (backup / "latest.weights.h5").exists()  # Keras falls back to .bkp
    (backup / "latest.weights.h5.bkp").unlink()
    assert resume_epoch(tmp_path) == 0 and not (backup / "latest.weights.h5").exists()
    assert "cut off while being written" in capsys.readouterr().out


def test_saved_models_are_replaced_whole_and_best_remembers_the_epochs_before_a_resume(tmp_path, monkeypatch):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n0,1.0,0.9\n1,0.8,0.5\n2,0.7,0.2\n")
    training.keep_epochs_before(history, 2)  # epoch 2 was cut off before its backup: the rerun trains it again
    assert history.read_text() == "epoch,loss,val_loss\n0,1.0,0.9\n1,0.8,0.5\n"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = training.save_model_callback(tmp_path / "best.keras", best_of="val_loss", history=history)
    best.set_model(model)
    best.on_epoch_end(2, {"val_loss": 0.7})  # worse than epoch 1's 0.5: not the best
    assert not (tmp_path / "best.keras").exists()
    best.on_epoch_end(2, {"val_loss": 0.4})
    first = (tmp_path / "best.keras").read_bytes()
    assert load_model(tmp_path / "best.keras") is not None
    model.layers[0].kernel.assign(np.ones((2, 1), np.float32))

    def killed_mid_write(path, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 cut off")
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        best.on_epoch_end(3, {"val_loss": 0.3})
    assert (tmp_path / "best.keras").read_bytes() == first  # the previous best, whole
    assert (tmp_path / "best.partial.keras").exists()  # the cut-off write, under another name
