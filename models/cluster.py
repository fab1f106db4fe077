"""Where the workers of a multi-worker training run are (``train.strategy: multi_worker``): ``TF_CONFIG`` as
given, or built from the SLURM job step that ``srun`` started (TensorFlow's ``SlurmClusterResolver``), so
that an ``sbatch`` script needs no hand-written cluster description."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

PORT_BASE = 8888
"""The port of a node's first task; its other tasks take the next ones (``SPIZOO_TF_PORT_BASE`` overrides)."""
MAX_TASKS_PER_NODE = 1024
SLURM_STEP = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")


def in_slurm_step(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is a task of a SLURM job step (``srun``), with everything a cluster needs."""
    return all(environ.get(name) for name in SLURM_STEP)


def tf_config_from_slurm() -> dict:
    """``TF_CONFIG`` of this SLURM task: a ``worker`` per task of the job step, on its node at the port
    ``SPIZOO_TF_PORT_BASE`` (default 8888) plus its index among the node's tasks (nodes in sorted order, as
    TensorFlow's resolver numbers them), and this task's index from ``SLURM_PROCID``. GPUs are left as SLURM
    set them (``srun --gpus-per-task``).

    Raises:
        ValueError: outside a job step, naming the variables missing.
    """
    missing = [name for name in SLURM_STEP if not os.environ.get(name)]
    if missing:
        raise ValueError(f"not a task of a SLURM job step (srun): {', '.join(missing)} not set")
    import tensorflow as tf  # TensorFlow: only when training

    port = int(os.environ.get("SPIZOO_TF_PORT_BASE", PORT_BASE))
    # GPUs stay as SLURM set them (auto_set_gpu=False); the resolver lists a node's tasks only up to its
    # "GPUs" over GPUs per task, so it is told of one per possible task.
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port, gpus_per_node=MAX_TASKS_PER_NODE, gpus_per_task=1, auto_set_gpu=False
    )
    workers = resolver.cluster_spec().as_dict()["worker"]
    return {"cluster": {"worker": workers}, "task": {"type": resolver.task_type, "index": resolver.task_id}}


def ensure_tf_config() -> str | None:
    """Sets ``TF_CONFIG`` from the SLURM job step where it is not set; returns a line saying so (else
    ``None``)."""
    if "TF_CONFIG" in os.environ or not in_slurm_step():
        return None
    config = tf_config_from_slurm()
    os.environ["TF_CONFIG"] = json.dumps(config)
    workers = config["cluster"]["worker"]
    shown = ", ".join(workers[:4]) + (", …" if len(workers) > 4 else "")
    return f"TF_CONFIG from SLURM: worker {config['task']['index']} of {len(workers)} ({shown})"
